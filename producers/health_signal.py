"""health_signal: a kernel instance with no sign of life for longer than its timeout, or gone.

Which sign of life counts (docs/producers.md, "Liveness"):

- heartbeats (grace.heartbeat), per instance, once any instance of the kernel sent one;
- else the kernel's `health_url`: a successful probe (HTTP < 400) counts as a heartbeat,
  so a service Grace did not write is judged by the page it already serves;
- `heartbeat_timeout` applies to whichever of the two the kernel has; a kernel without a
  timeout, or with neither signal, is judged by its process alone.

A recorded pid that no longer exists (or is a zombie, or was reused) is `process_gone`
at once, for every kernel. A process stopped by Grace's own shed_load (the supervisor's
record says `suspended`) is counted as suspended and never reported, so the recovery
playbook does not restart what load shedding paused; a process stopped by anyone else
stops answering and is reported like any hung instance. Pids and instances come from
the supervisor's record (grace.kernelstate) and from heartbeats (producers/kernel_procs).
A new process gets its timeout as a grace period from its start (or from when listening
began), so a freshly restarted instance is not reported before it could speak.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar, Literal

import aiohttp
import psutil

from grace import events
from grace.config import Kernel
from producers import kernel_procs
from producers.base import CheckResult, Env
from producers.kernel_procs import Proc, Signal
from producers.probes import ProbeFailed, probe


class HealthSignal:
    NAME: ClassVar[str] = "health_signal"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env
        self.last_ok: dict[str, float] = {}  # kernel -> clock time of its last good health answer
        self.probe_errors: dict[str, str] = {}  # kernel -> why its last probe failed
        self.first_seen: dict[tuple[str, int, int], float] = {}  # (kernel, index, pid) -> clock

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        tracker = self.env.shared.heartbeats
        if not self.env.cfg.kernels:
            return CheckResult(stats={"kernels_watched": 0})
        procs = kernel_procs.instances(self.env.cfg, tracker)
        signals = {k.name: kernel_procs.judged_by(k, tracker) for k in self.env.cfg.kernels}
        res = CheckResult()
        deaf = not tracker.listening and not tracker.instances
        if deaf and any(s == "heartbeat" for s in signals.values()):
            res.notes.append("no NATS: heartbeats cannot be heard; kernels judged by heartbeat "
                             "are checked for a gone process only")
        await self._probe([k for k in self.env.cfg.kernels if signals[k.name] == "health_url"])
        now = self.env.clock()
        present = {(p.kernel, p.index, p.pid) for ps in procs.values() for p in ps}
        self.first_seen = {key: self.first_seen.get(key, now) for key in present}
        suspended = watched = 0
        for k in self.env.cfg.kernels:
            sig = signals[k.name]
            if sig != "process":
                watched += 1
            found, n = self._judge(k, sig, procs[k.name], now, deaf)
            res.findings.extend(found)
            suspended += n
        res.stats.update({"kernels_watched": watched, "kernels_suspended": suspended,
                          "instances_known": sum(len(v) for v in procs.values()),
                          "kernels_seen": sum(tracker.sends(k.name) for k in self.env.cfg.kernels),
                          "kernels_by_health_url": sum(s == "health_url" for s in signals.values())})
        return res

    async def _probe(self, kernels: list[Kernel]) -> None:
        """One GET of each kernel's health_url, concurrently; success counts as a heartbeat."""
        if not kernels:
            return
        cap = float(self.env.cfg.monitor.timeout) / 2  # the whole check must fit in monitor.timeout

        async def one(session: aiohttp.ClientSession, k: Kernel) -> None:
            try:
                await probe(session, k.health_url or "", min(cap, float(k.heartbeat_timeout or cap)))
            except ProbeFailed as exc:
                self.probe_errors[k.name] = str(exc)
                return
            self.last_ok[k.name] = self.env.clock()
            self.probe_errors.pop(k.name, None)

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(one(session, k) for k in kernels))

    def _judge(self, k: Kernel, sig: Signal, procs: list[Proc], now: float, deaf: bool
               ) -> tuple[list[events.Trigger], int]:
        """Findings about kernel `k`'s instances, and how many of them Grace suspended."""
        tracker = self.env.shared.heartbeats
        timeout = float(k.heartbeat_timeout or 0)
        severity: Literal["warning", "critical"] = "critical" if k.critical else "warning"
        out: list[events.Trigger] = []
        suspended = 0
        live: list[tuple[Proc, str]] = []
        for p in procs:
            if not p.pid or p.supervisor_state == "stopping":
                continue  # Grace is stopping it on purpose (scale-down, restart)
            st = kernel_procs.status(p.pid, p.create_time)
            if st == "gone":
                seen = tracker.of(k.name).get(p.index)
                at = seen.at if seen and seen.pid == p.pid else None
                out.append(events.KernelHeartbeatGap(
                    kernel=k.name, instance=p.index, reason="process_gone", signal="process",
                    last_seen=_wall(at, now) if at is not None else None,
                    gap_s=round(now - at, 3) if at is not None else None, timeout_s=timeout,
                    pid=p.pid, severity=severity, trigger=self.NAME))
            elif st == psutil.STATUS_STOPPED and p.suspended_by_grace:
                suspended += 1
            else:
                live.append((p, st))
        if sig == "process" or (sig == "heartbeat" and deaf):
            return out, suspended
        if not procs:  # no record and no heartbeat: judge the kernel as a whole
            last = self.last_ok.get(k.name) if sig == "health_url" else None
            gap = now - (last if last is not None else tracker.started_at)
            if gap > timeout:
                out.append(self._gap(k, sig, None, None, last, gap, now, severity))
            return out, suspended
        if sig == "health_url":
            # one URL speaks for the whole pool: when it fails, blame the instances that are
            # stopped (hung) if there are any, else every live instance
            stopped = [(p, st) for p, st in live if st == psutil.STATUS_STOPPED]
            for p, _ in stopped or live:
                last = _later(self.last_ok.get(k.name), self._started(p, now))
                if now - last > timeout:
                    out.append(self._gap(k, sig, p.index, p.pid, self.last_ok.get(k.name),
                                         now - last, now, severity))
            return out, suspended
        beats = tracker.of(k.name)
        for p, _ in live:
            seen = beats.get(p.index)
            started = self._started(p, now)
            # a heartbeat of this process (or of its child: a wrapper script), not of the
            # instance's previous process before a restart
            heard = seen.at if seen is not None and (seen.pid == p.pid or seen.at >= started) else None
            last = heard if heard is not None else started
            if now - last > timeout:
                out.append(self._gap(k, sig, p.index, p.pid, heard, now - last, now, severity))
        return out, suspended

    def _started(self, p: Proc, now: float) -> float:
        """When `p` could first have signalled, in clock time: its start (or, when later, the
        time listening began). The clock may be injected, so the process's wall-clock age
        only ever moves that time earlier than when this trigger first saw the process."""
        began = self.env.shared.heartbeats.started_at
        first = self.first_seen.get((p.kernel, p.index, p.pid), now)
        age = kernel_procs.age_s(p.create_time)
        return max(began, first if age is None else min(first, now - age))

    def _gap(self, k: Kernel, sig: Signal, index: int | None, pid: int | None, last: float | None,
             gap: float, now: float, severity: Literal["warning", "critical"]
             ) -> events.KernelHeartbeatGap:
        return events.KernelHeartbeatGap(
            kernel=k.name, instance=index, reason="heartbeat_gap", signal=sig,
            last_seen=_wall(last, now) if last is not None else None, gap_s=round(gap, 3),
            timeout_s=float(k.heartbeat_timeout or 0), pid=pid, severity=severity,
            trigger=self.NAME)


def _later(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


def _wall(at: float, now: float) -> datetime:
    """A clock reading as a UTC time (the clock may be injected, so go by the difference)."""
    return datetime.now(UTC) - timedelta(seconds=max(0.0, now - at))
