"""health_signal: a kernel's heartbeat older than its timeout, or its process gone.

Heartbeats arrive on core NATS (HeartbeatTracker). A kernel never heard from
gets its timeout as a grace period from when listening began. A pid from the
last heartbeat that no longer exists (or is a zombie) is `process_gone` at once.
A kernel whose process is stopped (SIGSTOP: suspended by shed_load) sends no
heartbeats on purpose: it is counted as suspended, never reported as a gap, so
a recovery playbook does not restart what load shedding paused.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

import psutil

from grace import events
from producers.base import CheckResult, Env


def _pid_stopped(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_STOPPED)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
        return isinstance(exc, psutil.AccessDenied)


class HealthSignal:
    NAME: ClassVar[str] = "health_signal"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        tracker = self.env.shared.heartbeats
        watched = [k for k in self.env.cfg.kernels if k.heartbeat_timeout]
        if not watched:
            return CheckResult(stats={"kernels_watched": 0})
        if not tracker.listening and not tracker.kernels:
            return CheckResult(skipped="no NATS: heartbeats cannot be heard")
        now = self.env.clock()
        out: list[events.Trigger] = []
        suspended = 0
        for k in watched:
            timeout = float(k.heartbeat_timeout or 0)
            seen = tracker.kernels.get(k.name)
            if seen is not None and seen.pid > 0 and _pid_stopped(seen.pid):
                suspended += 1
                continue
            if seen is not None and seen.pid > 0 and not _pid_alive(seen.pid):
                out.append(events.KernelHeartbeatGap(
                    kernel=k.name, reason="process_gone", last_seen=_wall(seen.at, now),
                    gap_s=round(now - seen.at, 3), timeout_s=timeout, pid=seen.pid,
                    severity="critical" if k.critical else "warning", trigger=self.NAME))
                continue
            last = seen.at if seen else tracker.started_at
            gap = now - last
            if gap > timeout:
                out.append(events.KernelHeartbeatGap(
                    kernel=k.name, reason="heartbeat_gap",
                    last_seen=_wall(seen.at, now) if seen else None, gap_s=round(gap, 3),
                    timeout_s=timeout, pid=seen.pid if seen else None,
                    severity="critical" if k.critical else "warning", trigger=self.NAME))
        return CheckResult(findings=out, stats={"kernels_watched": len(watched),
                                                "kernels_suspended": suspended,
                                                "kernels_seen": sum(k.name in tracker.kernels
                                                                    for k in watched)})


def _wall(at: float, now: float) -> datetime:
    """A clock reading as a UTC time (the clock may be injected, so go by the difference)."""
    return datetime.now(timezone.utc) - timedelta(seconds=max(0.0, now - at))
