"""The runtime trigger monitor: every `monitor.interval`, all triggers concurrently.

Each run is bounded by `monitor.timeout`; a trigger that raises or times out
emits check_failed and is skipped with exponential backoff (capped at
`monitor.backoff_max`) while the others go on. Every run emits check_completed.
Each cycle also publishes snapshot_due when `snapshots.every` reached a new
slot (producers/schedule.py).
Findings go through ActiveFindings (appear / persist / clear). File triggers
also run on change notifications. Events of a run are queued and flushed with
one publish_many; a failed flush is retried next time (ids are deterministic:
cycle + run index, so a re-publish after a crash dedupes). While NATS is out of
reach the queue is the producers' outbox: it keeps events in order up to
`nats.outbox_max`, refuses newer ones with an ERROR, and records the loss as
producer_buffer_overflow once the link is back (producers/outbox.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
import nats.errors

from grace import events
from grace.bus import Bus
from grace.config import Config
from grace.errors import GraceError
from producers.base import Check, CheckError, CheckResult, Clock, make_env
from producers.findings import STATE, ActiveFindings
from producers.outbox import Outbox
from producers.registry import TRIGGERS
from producers.schedule import SnapshotSchedule
from producers.state import StateStore
from producers.watch import watch

log = logging.getLogger(__name__)
WATCHDOG = "trigger-monitor"
# a flush waits this long for broker acks (the link up, JetStream not answering) before the
# events stay in the outbox for the next cycle: the cycles go on meanwhile
FLUSH_TIMEOUT_S = 10.0


@dataclass
class Outcome:
    trigger: str
    duration_ms: float
    result: CheckResult | None = None
    error: str = ""
    timed_out: bool = False


async def run_check(name: str, check: Check, timeout: float, changed: set[Path] | None = None
                    ) -> Outcome:
    """One run of one trigger, bounded by `timeout`; never raises."""
    t0 = time.perf_counter()
    try:
        result = await asyncio.wait_for(check.check(changed), timeout)
        return Outcome(name, (time.perf_counter() - t0) * 1000, result)
    except TimeoutError:
        return Outcome(name, (time.perf_counter() - t0) * 1000,
                       error=f"{name} did not finish within monitor.timeout={timeout:g}s",
                       timed_out=True)
    except CheckError as exc:
        return Outcome(name, (time.perf_counter() - t0) * 1000, error=str(exc))
    except Exception as exc:  # a broken trigger must not stop the monitor
        log.exception("trigger %s raised", name)
        return Outcome(name, (time.perf_counter() - t0) * 1000,
                       error=f"{name} raised {type(exc).__name__}: {exc}")


class TriggerMonitor:
    """Runs the triggers, tracks findings, publishes events. Explicit wiring, no globals."""

    def __init__(self, cfg: Config, bus: Bus, state: StateStore,
                 triggers: dict[str, type[Check]] | None = None, clock: Clock = time.time) -> None:
        self.cfg, self.bus, self.state, self.clock = cfg, bus, state, clock
        self.env = make_env(cfg, state, bus, clock)
        self.checks: dict[str, Check] = {n: cls(self.env) for n, cls in (triggers or TRIGGERS).items()}
        self.interval = float(cfg.monitor.interval)
        self.findings = ActiveFindings(cfg.host, self.interval)
        saved = state.load(STATE)
        self.findings.restore(saved.get("active") or {})
        self.cycle = int(saved.get("cycle") or 0)
        self.failures: dict[str, int] = {}
        self.not_before: dict[str, float] = {}
        self.outbox = Outbox(cfg.nats.outbox_max, cfg.host, bus.source)
        self.pending = self.outbox.events
        self._runs: dict[str, int] = {}  # runs of each trigger in the current cycle
        self._locks = {n: asyncio.Lock() for n in self.checks}
        self._flush_lock = asyncio.Lock()
        self._down_since: float | None = None  # monotonic time the link was first seen down
        self.file_batches = 0  # change notifications received (the watcher is live once > 0)
        self.schedule = SnapshotSchedule(cfg, state, clock)

    # ---------------------------------------------------------------- runs

    async def run_triggers(self, names: list[str], changed: dict[str, set[Path]] | None = None
                           ) -> None:
        """Run `names` concurrently, queue their events, then flush."""
        await asyncio.gather(*(self._run(n, (changed or {}).get(n)) for n in names))
        await self.flush()

    async def _run(self, name: str, changed: set[Path] | None) -> None:
        async with self._locks[name]:
            index = self._runs.get(name, 0)
            self._runs[name] = index + 1
            outcome = await run_check(name, self.checks[name], float(self.cfg.monitor.timeout), changed)
            self._record(outcome, f"{self.cycle}.{index}")

    def _record(self, o: Outcome, run_id: str) -> None:
        now = self.clock()
        host = self.cfg.host
        if o.result is None:
            n = self.failures[o.trigger] = self.failures.get(o.trigger, 0) + 1
            backoff = min(self.interval * 2 ** n, float(self.cfg.monitor.backoff_max))
            self.not_before[o.trigger] = now + backoff
            self._queue(events.CheckFailed(trigger=o.trigger, duration_ms=round(o.duration_ms, 3),
                                           error=o.error, timed_out=o.timed_out, backoff_s=backoff,
                                           cycle=self.cycle),
                        events.derive_id(host, "check", o.trigger, run_id))
            return
        self.failures.pop(o.trigger, None)
        self.not_before.pop(o.trigger, None)
        r = o.result
        findings = [f if f.trigger else msgspec.structs.replace(f, trigger=o.trigger)
                    for f in r.findings]
        outcome: Literal["ok", "findings", "skipped"] = (
            "skipped" if r.skipped else "findings" if findings else "ok")
        self._queue(events.CheckCompleted(trigger=o.trigger, duration_ms=round(o.duration_ms, 3),
                                          outcome=outcome, findings=len(findings),
                                          reason=r.skipped or "; ".join(r.notes)[:2000],
                                          cycle=self.cycle,
                                          stats={k: float(v) for k, v in r.stats.items()}),
                    events.derive_id(host, "check", o.trigger, run_id))
        if r.errors:  # partial failure (a dead health URL): reported, no backoff
            self._queue(events.CheckFailed(trigger=o.trigger, duration_ms=round(o.duration_ms, 3),
                                           error="; ".join(r.errors)[:2000], cycle=self.cycle),
                        events.derive_id(host, "check-partial", o.trigger, run_id))
        if not r.skipped:
            # a run with partial errors could not judge every key: it clears nothing
            for payload, id_ in self.findings.update(o.trigger, findings, now, run_id,
                                                     clear=not r.errors):
                self._queue(payload, id_)

    def _queue(self, payload: events.Payload, id_: str) -> None:
        self.outbox.put(self.bus.event(payload, id=id_))

    async def flush(self) -> None:
        """Publish queued events (broker-acked), then persist the active findings."""
        async with self._flush_lock:
            if not self.pending:
                return
            if not self.bus.nc.is_connected:
                # reconnecting: a publish would wait for its ack timeout and stall the cycles;
                # the events wait here and the first flush after the reconnect sends them
                self._note_down()
                return
            batch = list(self.pending)
            try:
                await self.bus.publish_many(batch, timeout=FLUSH_TIMEOUT_S)
            except (GraceError, nats.errors.Error, OSError) as exc:  # the link is down: keep them
                log.warning("publishing %d events failed (%s); they stay in the outbox (%d of "
                            "nats.outbox_max %d) and go out in order when NATS is back",
                            len(batch), exc, len(self.pending), self.outbox.capacity)
                return
            del self.pending[: len(batch)]
            if self._down_since is not None:
                log.warning("NATS is reachable again after %.0fs: %d events from the outbox "
                            "published", time.monotonic() - self._down_since, len(batch))
                self._down_since = None
            if (lost := self.outbox.take_overflow()) is not None:
                self.pending.append(lost)  # the next flush retries it if this one fails
                with contextlib.suppress(GraceError, nats.errors.Error, OSError):
                    await self.bus.publish_many([lost])
                    self.pending.remove(lost)
            self.state.save(STATE, {"cycle": self.cycle, "active": self.findings.dump()})

    def _note_down(self) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("NATS is out of reach: events wait in the outbox (%d now, at most "
                        "nats.outbox_max %d) and go out in order when it is back",
                        len(self.pending), self.outbox.capacity)

    async def run_cycle(self, advance: bool = True) -> None:
        """One cycle: every trigger not in backoff."""
        if advance:
            self.cycle += 1
            self._runs = {}
        now = self.clock()
        due = [n for n in self.checks if self.not_before.get(n, 0.0) <= now]
        if (snapshot := self.schedule.due()) is not None:
            self._queue(*snapshot)
        await self.run_triggers(due)

    async def on_files_changed(self, routed: dict[str, set[Path]]) -> None:
        self.file_batches += 1
        names = [n for n in routed if n in self.checks and self.not_before.get(n, 0.0) <= self.clock()]
        if names:
            await self.run_triggers(names, routed)

    # ---------------------------------------------------------------- lifecycle

    async def _watch(self, stop: asyncio.Event) -> None:
        """File notifications until `stop`; a watcher failure is logged and retried."""
        while not stop.is_set():
            try:
                await watch(self.cfg, self.on_files_changed, stop)
                return
            except Exception:  # the periodic cycle still covers the files
                log.exception("file watching failed; retrying in 5s (cycles continue)")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5)

    async def run(self, stop: asyncio.Event) -> None:
        """Run cycles until `stop` is set; emits start/stop and watchdog events."""
        tracker = self.env.shared.heartbeats
        await tracker.listen(self.bus.nc)
        names = list(self.checks)
        # A cycle number is never reused after a restart unless its events never got out.
        self.cycle += 1
        self._runs = {}
        first = True
        self._queue(events.MonitorStarted(interval_s=self.interval, triggers=names), events.new_id())
        self._queue(events.WatchdogStarted(name=WATCHDOG, tier=1, interval_s=self.interval),
                    events.new_id())
        await self.flush()
        watcher = None
        if self.cfg.monitor.watch_files:
            watcher = asyncio.create_task(self._watch(stop))
        try:
            while not stop.is_set():
                started = time.monotonic()
                await self.run_cycle(advance=not first)
                first = False
                with contextlib.suppress(Exception):
                    await self.bus.heartbeat("monitor", "monitor", seq=self.cycle)
                wait = max(0.0, self.interval - (time.monotonic() - started))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            if watcher is not None:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(watcher, 5)
            await tracker.close()
            self._queue(events.MonitorStopped(), events.new_id())
            self._queue(events.WatchdogStopped(name=WATCHDOG, tier=1), events.new_id())
            await self.flush()
