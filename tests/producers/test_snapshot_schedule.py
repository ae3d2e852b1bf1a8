"""`snapshots.every` drives snapshot hygiene: the monitor publishes snapshot_due once per slot
(virtual time, real NATS), and the shipped playbook answers each with take_snapshot."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import msgspec

from grace import config, events
from grace.bus import Bus
from grace.durations import parse_duration
from processors import stage, validate
from processors.matcher import Matcher
from producers.monitor import TriggerMonitor
from producers.state import StateStore
from tests.producers.logread import log_events, of_type
from tests.producers.shipped import VirtualClock, shipped_system


async def _due_events(cfg: config.Config, bus: Bus, clock: VirtualClock, hours: float = 0.0,
                      cycles: int = 0) -> list[events.Event]:
    """Monitor cycles every 30 s (the shipped interval) for `hours` of virtual time (or `cycles`)."""
    b = Bus(bus.transport, cfg.host, f"grace/{cfg.host}/producers")
    mon = TriggerMonitor(cfg, b, StateStore(cfg.data_path / "state"), triggers={}, clock=clock)
    for _ in range(cycles or round(hours * 3600 / 30)):
        await mon.run_cycle()
        clock.advance(30)
    return of_type(await log_events(bus, cfg.host), "snapshot_due")


def _take_snapshot_commands(due: list[events.Event]) -> list[events.Event]:
    """What the shipped playbooks send for `due`, each snapshot answered by the actuator's result
    (the playbook verifies it: an unanswered one would hold the next as verify_pending)."""
    m = Matcher(validate.load_paths([stage.SHIPPED]), host="grace-1", source="grace/test")
    cmds: list[events.Event] = []
    for e in due:
        m.process(e)
        new = [c for c in m.take() if c.type == "take_snapshot"]
        for c in new:
            m.process(events.make_event(events.CommandSucceeded(command_id=c.id, action=c.type),
                                        host=e.host, source="grace/test/actuator", time=e.time))
        cmds += new
    return cmds


def _system(tmp_path: Path, every: str | None = None) -> config.Config:
    cfg = shipped_system(tmp_path / "system")
    assert cfg.snapshots.every == 3600  # the shipped schedule
    if every is not None:
        cfg = msgspec.structs.replace(cfg, snapshots=msgspec.structs.replace(
            cfg.snapshots, every=parse_duration(every)))
    return msgspec.structs.replace(cfg, host="snap-" + uuid.uuid4().hex[:8])


async def test_snapshots_every_30m_gives_a_take_snapshot_every_30m(bus: Bus, tmp_path: Path) -> None:
    cfg = _system(tmp_path, "30m")
    clock = VirtualClock(1_800_000_000.0 + 10)  # 10 s into a slot
    due = await _due_events(cfg, bus, clock, hours=2)
    # at the first start, then at each slot boundary: 0:30, 1:00 and 1:30 into the run
    assert [e.data.slot for e in due] == [1_000_000 + i for i in range(4)]  # type: ignore[attr-defined]
    gaps = [(b.data.slot - a.data.slot) * b.data.every_s  # type: ignore[attr-defined]
            for a, b in itertools.pairwise(due)]
    assert gaps == [1800.0] * 3
    cmds = _take_snapshot_commands(due)
    assert len(cmds) == 4 and {c.data.playbook for c in cmds} == {"snapshot_hygiene"}  # type: ignore[attr-defined]
    # a restart inside the last slot does not fire again; the next slot does
    last_cycle = clock.now - 30  # 1:59:40 into the run, inside the slot that fired at 1:30
    again = await _due_events(cfg, bus, VirtualClock(last_cycle), cycles=1)
    assert len(again) == 4
    again = await _due_events(cfg, bus, VirtualClock(last_cycle + 60), cycles=1)
    assert len(again) == 5


async def test_the_shipped_schedule_is_hourly(bus: Bus, tmp_path: Path) -> None:
    cfg = _system(tmp_path)
    due = await _due_events(cfg, bus, VirtualClock(1_800_000_000.0 + 10), hours=3)
    assert [e.data.every_s for e in due] == [3600.0] * 3  # type: ignore[attr-defined]
    assert len(_take_snapshot_commands(due)) == 3
