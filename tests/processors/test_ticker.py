"""Verify deadlines and timers in virtual time: the matcher ticked by reactivex's TestScheduler."""

from __future__ import annotations

from reactivex.testing import TestScheduler

from grace import events
from processors.matcher import Matcher
from processors.ticker import Ticker
from tests.processors.support import T0, commands, ev, gap, matcher, of_type


def ticked(m: Matcher) -> tuple[TestScheduler, list[events.Event]]:
    scheduler = TestScheduler(initial_clock=T0)
    out: list[events.Event] = []

    def on_tick(now: float) -> None:
        m.tick(now)
        out.extend(m.take())

    Ticker(scheduler, 1.0, on_tick).start()
    return scheduler, out


def test_verify_deadline_passes_in_virtual_time_without_any_event() -> None:
    m = matcher("""
playbooks:
  - name: restart
    on: kernel_heartbeat_gap
    group_by: [kernel]
    do: [{restart_kernel: {kernel: "{kernel}"}}]
    verify: {within: 2m}
""")
    scheduler, out = ticked(m)
    m.process(ev(gap(), 0))
    out.extend(m.take())
    scheduler.advance_by(119.0)
    assert of_type(out, "verify_failed") == []
    scheduler.advance_by(2.0)
    failed = of_type(out, "verify_failed")
    assert len(failed) == 1 and failed[0].time.timestamp() == T0 + 120
    assert [c.type for c in commands(out)] == ["restart_kernel", "escalate_to_coding_agent"]


def test_hourly_timer_fires_once_per_hour_of_virtual_time() -> None:
    m = matcher("""
playbooks:
  - name: hygiene
    every: 1h
    do: [{take_snapshot: {}}]
""")
    scheduler, out = ticked(m)
    scheduler.advance_by(3 * 3600.0 - 1)  # T0 starts a slot: slots T0, T0+1h, T0+2h
    snaps = [c for c in commands(out) if c.type == "take_snapshot"]
    assert len(snaps) == 3 and len({c.id for c in snaps}) == 3
