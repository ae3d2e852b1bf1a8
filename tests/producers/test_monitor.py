"""The trigger monitor against the real nats-server: cycles, failures, clearing, restart."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import ClassVar

import msgspec

from grace import config
from grace.bus import Bus
from grace.durations import parse_duration
from producers.base import CheckResult, Env
from producers.monitor import TriggerMonitor
from producers.registry import TRIGGERS
from producers.state import StateStore
from tests.producers.logread import log_events, of_type
from tests.producers.sample import write_system
from tests.support import wait_for


class Broken:
    """A trigger that fails while `broken` is set."""

    NAME: ClassVar[str] = "broken"
    WATCHES_FILES: ClassVar[bool] = False
    broken = True

    def __init__(self, env: Env) -> None:
        self.env = env

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        if Broken.broken:
            raise RuntimeError("disk on fire")
        return CheckResult()


def _cfg(tmp_path: Path, **monitor: object) -> config.Config:
    return write_system(tmp_path, {
        "host": "mon-" + uuid.uuid4().hex[:8],
        "thresholds": {"cpu_percent": 100.0, "memory_percent": 100.0},
        "monitor": {"interval": "0.3s", "timeout": "2s", "backoff_max": "0.6s", "watch_files": False,
                    **monitor}})


async def _start(cfg: config.Config, bus: Bus, triggers: dict[str, type] | None = None
                 ) -> tuple[TriggerMonitor, asyncio.Event, asyncio.Task[None]]:
    b = Bus(bus.transport, cfg.host, f"grace/{cfg.host}/producers")
    mon = TriggerMonitor(cfg, b, StateStore(cfg.data_path / "state"), triggers=triggers)
    stop = asyncio.Event()
    return mon, stop, asyncio.create_task(mon.run(stop))


async def test_every_trigger_completes_each_cycle_and_a_failing_one_backs_off(
        bus: Bus, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    Broken.broken = True
    mon, stop, task = await _start(cfg, bus, {**TRIGGERS, "broken": Broken})  # type: ignore[dict-item]
    try:
        async def two_cycles() -> bool:
            evs = await log_events(bus, cfg.host)
            done = {(e.data.trigger, e.data.cycle) for e in of_type(evs, "check_completed")}
            return all((n, c) in done for n in TRIGGERS for c in (mon.cycle - 1, mon.cycle)) \
                and len(of_type(evs, "check_failed", trigger="broken")) >= 2

        await wait_for(two_cycles, timeout=20, interval=0.1)
        evs = await log_events(bus, cfg.host)
        failed = of_type(evs, "check_failed", trigger="broken")
        assert "disk on fire" in failed[0].data.error
        assert failed[0].data.backoff_s == 0.6 and failed[0].data.timed_out is False
        assert not of_type(evs, "check_completed", trigger="broken")
        assert of_type(evs, "monitor_started")[0].data.triggers == [*TRIGGERS, "broken"]
        assert of_type(evs, "watchdog_started", name="trigger-monitor", tier=1)
        dep = of_type(evs, "check_completed", trigger="dependency_regression")[0]
        assert dep.data.outcome == "skipped"  # no lock configured in this system
        Broken.broken = False
        await wait_for(lambda: _has(bus, cfg.host, "check_completed", trigger="broken"), timeout=10)
    finally:
        stop.set()
        await task
    evs = await log_events(bus, cfg.host)
    assert of_type(evs, "monitor_stopped") and of_type(evs, "watchdog_stopped", name="trigger-monitor")


async def _has(bus: Bus, host: str, type_: str, **fields: object) -> bool:
    return bool(of_type(await log_events(bus, host), type_, **fields))


async def test_drift_is_published_then_cleared_after_the_fix_and_survives_a_restart(
        bus: Bus, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    app = tmp_path / "config" / "app.yaml"
    good = app.read_bytes()
    app.write_text("threads: 99\n")
    only = {"config_drift": TRIGGERS["config_drift"]}
    mon, stop, task = await _start(cfg, bus, only)
    try:
        await wait_for(lambda: _has(bus, cfg.host, "config_drift", path="config/app.yaml"), timeout=10)
    finally:
        stop.set()
        await task
    # a restart with the drift still there neither clears it nor loses it
    mon, stop, task = await _start(cfg, bus, only)
    try:
        await wait_for(lambda: mon.cycle > 0, timeout=5)
        c0 = mon.cycle
        await wait_for(lambda: mon.cycle >= c0 + 3 and not mon.pending, timeout=10)
        assert not await _has(bus, cfg.host, "condition_cleared")
        app.write_bytes(good)
        await wait_for(lambda: _has(bus, cfg.host, "condition_cleared", condition="config_drift",
                                    key={"path": "config/app.yaml"}), timeout=15)
    finally:
        stop.set()
        await task
    drift = of_type(await log_events(bus, cfg.host), "config_drift")
    assert len({e.id for e in drift}) == len(drift)  # each re-publish is a distinct event


async def test_timed_out_trigger_is_check_failed_with_timed_out(bus: Bus, tmp_path: Path) -> None:
    class Slow(Broken):
        NAME: ClassVar[str] = "slow"

        async def check(self, changed: set[Path] | None = None) -> CheckResult:
            await asyncio.sleep(5)
            return CheckResult()

    cfg = msgspec.structs.replace(_cfg(tmp_path), monitor=config.Monitor(
        interval=parse_duration("0.2s"), timeout=parse_duration("0.1s"), watch_files=False))
    _mon, stop, task = await _start(cfg, bus, {"slow": Slow})  # type: ignore[dict-item]
    try:
        await wait_for(lambda: _has(bus, cfg.host, "check_failed", trigger="slow", timed_out=True),
                       timeout=10)
    finally:
        stop.set()
        await task
