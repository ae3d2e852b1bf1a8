"""Holds, observe mode and approvals in the matcher, in virtual time."""

from __future__ import annotations

from datetime import timedelta

from grace import events
from processors.gates import Settings
from processors.matcher import Matcher
from tests.processors.support import at, commands, ev, matcher, of_type, playbooks, run

RESTART = """
playbooks:
  - name: restart
    on: kernel_heartbeat_gap
    group_by: [kernel, instance]
    do: [{restart_kernel: {kernel: "{kernel}", instance: "{instance}"}}]
    cooldown: 1m
"""
RESTORE = """
playbooks:
  - name: restore
    on: config_drift
    group_by: [path]
    do: [{restore_from_snapshot: {path: "{path}"}}]
    cooldown: 10s
"""


def hold(target: str, t: float, for_s: float, hold_id: str = "h1", host: str = "web-1"
         ) -> events.Event:
    data = events.HoldAdded(hold_id=hold_id, target=target, until=at(t + for_s), for_s=for_s,
                            reason="migrating", by="ana")
    return ev(data, t, host=host)


def release(hold_id: str, t: float, target: str = "", host: str = "web-1") -> events.Event:
    return ev(events.HoldReleased(hold_id=hold_id, target=target, by="ana"), t, host=host)


def gap_of(kernel: str, instance: int | None = None) -> events.KernelHeartbeatGap:
    return events.KernelHeartbeatGap(kernel=kernel, instance=instance, timeout_s=6.0,
                                     trigger="health_signal")


def drift(path: str) -> events.ConfigDrift:
    return events.ConfigDrift(path=path, expected_sha256="a" * 64, actual_sha256="b" * 64)


def grant(cid: str, t: float, by: str = "ana") -> events.Event:
    return ev(events.ApprovalGranted(command_id=cid, by=by), t)


def deny(cid: str, t: float) -> events.Event:
    return ev(events.ApprovalDenied(command_id=cid, reason="not now", by="ana"), t)


# ---------------------------------------------------------------- holds


def test_a_held_kernel_is_left_alone_and_the_finding_still_recorded() -> None:
    m = matcher(RESTART)
    out = run(m, hold("kernel:api", 0, 1800), ev(gap_of("api", 0), 10), ev(gap_of("api", 0), 40))
    assert commands(out) == []
    (s,) = of_type(out, "decision_suppressed")  # once per hold and target, not per finding
    assert s.data.reason == "hold" and s.data.hold_id == "h1" and "by ana" in s.data.detail
    assert [c.type for c in commands(run(m, ev(gap_of("worker", 0), 50)))] == ["restart_kernel"]
    out = run(m, release("h1", 60), ev(gap_of("api", 0), 70))
    assert [(c.type, c.data.kernel) for c in commands(out)] == [("restart_kernel", "api")]


def test_an_instance_hold_covers_that_instance_and_the_whole_kernel_only() -> None:
    m = matcher(RESTART + """
  - name: restart_all
    on: latency_spike
    group_by: [kernel]
    do: [{restart_kernel: {kernel: "{kernel}"}}]
""")
    spike = events.LatencySpike(kernel="api", url="http://x/health", p95_ms=900.0, threshold_ms=500.0,
                                samples=5)
    out = run(m, hold("kernel:api/1", 0, 600), ev(gap_of("api", 0), 1), ev(gap_of("api", 1), 2),
              ev(spike, 3))
    assert [(c.data.kernel, c.data.instance) for c in commands(out)] == [("api", 0)]
    assert sorted(s.data.playbook for s in of_type(out, "decision_suppressed")) == [
        "restart", "restart_all"]


def test_a_path_hold_covers_that_file_only() -> None:
    m = matcher(RESTORE)
    out = run(m, hold("path:config/app.yaml", 0, 600), ev(drift("config/app.yaml"), 1),
              ev(drift("config/db.yaml"), 2))
    assert [c.data.path for c in commands(out)] == ["config/db.yaml"]
    assert of_type(out, "decision_suppressed")[0].data.reason == "hold"


def test_playbook_and_host_holds() -> None:
    m = matcher(RESTART)
    out = run(m, hold("playbook:restart", 0, 600), ev(gap_of("api", 0), 1))
    assert commands(out) == []
    m = matcher(RESTART)
    out = run(m, hold("host:web-1", 0, 600, host="ops"), ev(gap_of("api", 0), 1),
              ev(gap_of("api", 0), 2, host="web-2"))
    assert [c.host for c in commands(out)] == ["web-2"]
    m = matcher(RESTART)  # a kernel hold added for web-2 does not cover web-1's api
    assert len(commands(run(m, hold("kernel:api", 0, 600, host="web-2"), ev(gap_of("api", 0), 1)))) == 1


def test_a_hold_ends_at_its_time_and_the_end_is_recorded_once() -> None:
    m = matcher(RESTART)
    out = run(m, hold("kernel:api", 0, 60), ev(gap_of("api", 0), 10))
    assert commands(out) == []
    m.tick((at(61)).timestamp())
    out = m.take()
    (r,) = of_type(out, "hold_released")
    assert (r.data.hold_id, r.data.reason, r.data.via, r.data.by) == ("h1", "expired", "expiry", "grace")
    assert r.time == at(60) and r.category == "operator"
    m.tick(at(62).timestamp())
    assert m.take() == []
    assert len(commands(run(m, ev(gap_of("api", 0), 70)))) == 1


def test_a_timer_playbook_is_held_by_a_host_hold() -> None:
    m = matcher("""
playbooks:
  - name: hygiene
    every: 1h
    do: [take_snapshot]
""")
    m.process(hold("host:grace-1", 0, 7200, host="grace-1"))
    m.tick(at(10).timestamp())
    out = m.take()
    assert commands(out) == [] and of_type(out, "decision_suppressed")[0].data.reason == "hold"


def test_a_rebuild_keeps_holds_and_records_an_expiry_no_processor_saw() -> None:
    first = matcher(RESTART)
    log = [hold("kernel:api", 0, 60), ev(gap_of("api", 0), 10)]
    run(first, *log)
    again = matcher(RESTART)
    again.emit = False
    for e in [*log, ev(gap_of("worker", 0), 100)]:
        again.process(e)
    again.emit = True
    again.take()
    again.record_expiries()
    (r,) = of_type(again.take(), "hold_released")
    assert r.data.reason == "expired" and r.id == events.derive_id("hold_expired", "h1")


# ---------------------------------------------------------------- observe


def test_observe_sends_nothing_names_the_command_and_advances_the_cooldown() -> None:
    m = matcher(RESTART.replace("cooldown: 1m", "cooldown: 1m\n    mode: observe"))
    finding = ev(gap_of("api", 0), 0)
    out = run(m, finding)
    assert commands(out) == [] and of_type(out, "command_issued") == []
    (o,) = of_type(out, "decision_observed")
    assert o.data.action == "restart_kernel" and o.data.params == {"kernel": "api", "instance": 0}
    assert o.data.command_id == events.derive_id("command", "restart", 0, finding.id)  # as if sent
    out = run(m, ev(gap_of("api", 0), 30))
    assert [s.data.reason for s in of_type(out, "decision_suppressed")] == ["cooldown"]
    assert len(of_type(run(m, ev(gap_of("api", 0), 61)), "decision_observed")) == 1


def test_processor_observe_mode_overrides_every_playbook() -> None:
    m = Matcher(playbooks(RESTART), host="grace-1", source="t", settings=Settings(observe=True))
    out = run(m, ev(gap_of("api", 0), 0))
    assert commands(out) == [] and len(of_type(out, "decision_observed")) == 1


def test_an_observed_decision_read_back_from_the_log_counts_as_acted() -> None:
    text = RESTART.replace("cooldown: 1m", "cooldown: 1m\n    mode: observe")
    out = run(matcher(text), ev(gap_of("api", 0), 0))
    again = matcher(text.replace("mode: observe", "mode: act"))  # switched to act, then restarted
    again.emit = False
    for e in out:
        again.process(e)
    again.emit = True
    out = run(again, ev(gap_of("api", 0), 30))
    assert commands(out) == [] and of_type(out, "decision_suppressed")[0].data.reason == "cooldown"


# ---------------------------------------------------------------- approvals

APPROVE = RESTART.replace("cooldown: 1m", "cooldown: 1m\n    mode: approve\n    approve_within: 15m")


def test_approve_waits_for_a_yes_then_acts_once_with_the_same_id() -> None:
    m = matcher(APPROVE)
    out = run(m, ev(gap_of("api", 0), 0), ev(gap_of("api", 0), 30))
    assert commands(out) == []
    (req,) = of_type(out, "approval_requested")
    assert req.data.expires_at == at(900) and req.data.params == {"kernel": "api", "instance": 0}
    assert [s.data.reason for s in of_type(out, "decision_suppressed")] == ["approval_pending"]
    cid = req.data.command_id
    out = run(m, grant(cid, 60, by="bo"))
    (cmd,) = commands(out)
    assert cmd.id == cid and cmd.type == "restart_kernel"
    (issued,) = of_type(out, "command_issued")
    assert issued.data.approved_by == "bo" and "approved by bo" in issued.data.reason
    assert commands(run(m, grant(cid, 61), deny(cid, 62))) == []  # twice, then a late denial


def test_denied_or_expired_never_acts() -> None:
    m = matcher(APPROVE)
    (req,) = of_type(run(m, ev(gap_of("api", 0), 0)), "approval_requested")
    assert commands(run(m, deny(req.data.command_id, 10), grant(req.data.command_id, 20))) == []
    m = matcher(APPROVE.replace("approve_within: 15m", "approve_within: 15m\n    escalate: "
                                "escalate_to_coding_agent"))
    (req,) = of_type(run(m, ev(gap_of("api", 0), 0)), "approval_requested")
    m.tick(at(901).timestamp())
    out = m.take()
    (exp,) = of_type(out, "approval_expired")
    assert exp.data.command_id == req.data.command_id and exp.data.escalation == "escalate_to_coding_agent"
    assert [c.type for c in commands(out)] == ["escalate_to_coding_agent"]  # once, if asked for
    assert commands(run(m, grant(req.data.command_id, 902))) == []


def test_a_yes_while_a_hold_covers_the_target_sends_nothing() -> None:
    m = matcher(APPROVE)
    (req,) = of_type(run(m, ev(gap_of("api", 0), 0)), "approval_requested")
    out = run(m, hold("kernel:api", 5, 600), grant(req.data.command_id, 10))
    assert commands(out) == []
    (s,) = of_type(out, "decision_suppressed")
    assert s.data.reason == "hold" and s.data.detail.startswith("approved by ana, but hold h1")


def test_a_pending_approval_survives_a_rebuild_and_is_issued_once() -> None:
    m = matcher(APPROVE)
    log = run(m, ev(gap_of("api", 0), 0))
    (req,) = of_type(log, "approval_requested")
    again = matcher(APPROVE)
    again.emit = False
    for e in [ev(gap_of("api", 0), 0, id=req.data.cause_ids[0]), *log]:
        again.process(e)
    again.emit = True
    assert list(again.approvals.pending) == [req.data.command_id]
    out = run(again, grant(req.data.command_id, 30))
    assert [c.id for c in commands(out)] == [req.data.command_id]
    # the issued command read back (a second restart) is not issued again
    third = matcher(APPROVE)
    third.emit = False
    for e in [*log, grant(req.data.command_id, 30), *out]:
        third.process(e)
    third.emit = True
    assert commands(run(third, grant(req.data.command_id, 31))) == []


def test_a_grant_past_the_expiry_is_too_late() -> None:
    m = matcher(APPROVE)
    (req,) = of_type(run(m, ev(gap_of("api", 0), 0)), "approval_requested")
    out = run(m, grant(req.data.command_id, 901))  # no tick in between: the grant's time decides
    assert commands(out) == [] and len(of_type(out, "approval_expired")) == 1
    assert req.data.expires_at + timedelta(seconds=1) == at(901)
