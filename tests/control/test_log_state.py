"""The hold and approval state the operator commands read, folded from events (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from control.log_state import LogState
from grace import events

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def ev(payload: events.Payload, seconds: float) -> events.Event:
    return events.make_event(payload, host="h", source="t", time=T0 + timedelta(seconds=seconds))


def test_the_first_decision_in_log_order_wins_and_later_ones_change_nothing() -> None:
    s = LogState()
    s.apply(ev(events.ApprovalRequested(playbook="p", command_id="c", action="restart_kernel",
                                        target="api", cause_ids=[], within_s=60,
                                        expires_at=T0 + timedelta(seconds=60)), 0))
    assert s.approvals["c"].state(T0) == "pending"
    assert s.approvals["c"].state(T0 + timedelta(seconds=60)) == "expired"  # by the clock
    s.apply(ev(events.ApprovalDenied(command_id="c", by="a", reason="no"), 10))
    s.apply(ev(events.ApprovalGranted(command_id="c", by="b"), 5))  # later in the log
    assert s.approvals["c"].state(T0) == "denied"
    assert s.pending_approvals(T0) == []
    s.apply(ev(events.ApprovalGranted(command_id="never-requested", by="b"), 1))
    assert s.approvals["never-requested"].requested is None


def test_a_hold_is_over_at_its_until_or_at_its_release_whichever_comes_first() -> None:
    s = LogState()
    s.apply(ev(events.HoldAdded(hold_id="h", target="kernel:api", until=T0 + timedelta(minutes=5),
                                for_s=300, reason="r", by="a"), 0))
    s.apply(ev(events.HoldAdded(hold_id="h", target="kernel:other", until=T0 + timedelta(hours=9),
                                for_s=300, reason="r", by="a"), 1))  # a reused id changes nothing
    assert [h.data.target for h in s.active_holds(T0)] == ["kernel:api"]
    assert s.holds["h"].state(T0 + timedelta(minutes=5)) == "expired"
    s.apply(ev(events.HoldReleased(hold_id="h", target="kernel:api", by="b"), 60))
    assert s.holds["h"].state(T0) == "released" and s.active_holds(T0) == []
