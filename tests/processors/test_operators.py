"""Every playbook operator in virtual time: for, count/within, cooldown, budget, verify, group_by."""

from __future__ import annotations

from grace import events
from tests.processors.support import at, cleared, commands, ev, gap, matcher, of_type, run

RESTART = """
playbooks:
  - name: restart
    on: kernel_heartbeat_gap
    group_by: [kernel]
    do: [{restart_kernel: {kernel: "{kernel}"}}]
"""


def cpu(percent: float) -> events.CpuSaturation:
    return events.CpuSaturation(scope="system", percent=percent, threshold=90.0, samples=3)


def test_for_acts_only_after_the_condition_held_continuously() -> None:
    m = matcher("""
playbooks:
  - name: shed
    on: cpu_saturation
    where: {percent: {ge: 90}}
    for: 1m
    do: [{shed_load: {}}]
""")
    out = run(m, ev(cpu(95), 0), ev(cpu(96), 30))
    assert commands(out) == []
    suppressed = of_type(out, "decision_suppressed")
    assert [s.data.reason for s in suppressed] == ["not_held_long_enough"]  # once, not per event
    out = run(m, ev(cpu(97), 60))
    assert [c.type for c in commands(out)] == ["shed_load"]


def test_for_starts_over_when_the_condition_clears_or_stops_matching() -> None:
    m = matcher("""
playbooks:
  - name: shed
    on: cpu_saturation
    where: {percent: {ge: 90}}
    for: 1m
    do: [{shed_load: {}}]
""")
    out = run(m, ev(cpu(95), 0), ev(cleared("cpu_saturation", scope="system", kernel=""), 40),
              ev(cpu(95), 50), ev(cpu(95), 70))
    assert commands(out) == []  # held only 20s since it came back
    out = run(m, ev(cpu(50), 80), ev(cpu(95), 115), ev(cpu(95), 170))
    assert commands(out) == []  # the 50% report broke the hold at 80s
    assert len(commands(run(m, ev(cpu(95), 175)))) == 1


def test_count_within_needs_n_matches_in_the_sliding_window() -> None:
    m = matcher("""
playbooks:
  - name: slow
    on: latency_spike
    group_by: [kernel]
    count: 3
    within: 2m
    do: [{scale_workers: {kernel: "{kernel}", by: 1}}]
""")
    spike = events.LatencySpike(kernel="api", url="u", p95_ms=900, threshold_ms=500, samples=9)
    first = [ev(spike, 0), ev(spike, 100), ev(spike, 130)]  # the first has slid out at 130
    out = run(m, *first)
    assert commands(out) == []
    assert [s.data.reason for s in of_type(out, "decision_suppressed")] == ["count_not_reached"]
    out = run(m, ev(spike, 150))
    cmds = commands(out)
    assert len(cmds) == 1
    assert cmds[0].data.cause_ids == [first[1].id, first[2].id, out[0].data.cause_ids[-1]]
    issued = of_type(out, "command_issued")[0].data
    assert issued.cause_ids == cmds[0].data.cause_ids and issued.action == "scale_workers"


def test_cooldown_suppresses_once_then_allows_again() -> None:
    m = matcher(RESTART + "    cooldown: 1m\n")
    out = run(m, ev(gap(), 0), ev(gap(), 10), ev(gap(), 20), ev(gap(), 61))
    assert len(commands(out)) == 2
    reasons = [s.data.reason for s in of_type(out, "decision_suppressed")]
    assert reasons == ["cooldown"]  # one record per cooldown, not one per event
    assert "cooldown 1m" in of_type(out, "decision_suppressed")[0].data.detail


def test_budget_caps_actions_per_period_and_escalates_once() -> None:
    m = matcher(RESTART + "    budget: {max: 3, per: 1h, then: escalate_to_coding_agent}\n")
    out = run(m, *[ev(gap(), i * 60) for i in range(10)])
    cmds = commands(out)
    assert [c.type for c in cmds] == ["restart_kernel"] * 3 + ["escalate_to_coding_agent"]
    esc = cmds[-1].data
    assert isinstance(esc, events.EscalateToCodingAgent) and "budget of 3 per 1h" in esc.summary
    spent = [s for s in of_type(out, "decision_suppressed") if s.data.reason == "budget_spent"]
    assert len(spent) == 1
    issued = of_type(out, "command_issued")
    assert [i.data.escalation for i in issued] == [False, False, False, True]
    # an hour after the first restart the budget has room again
    assert [c.type for c in commands(run(m, ev(gap(), 3600)))] == ["restart_kernel"]


def test_verify_passes_when_the_condition_clears_in_time() -> None:
    m = matcher(RESTART + "    verify: {within: 2m}\n")
    out = run(m, ev(gap(), 0), ev(gap(), 30))
    assert len(commands(out)) == 1
    assert [s.data.reason for s in of_type(out, "decision_suppressed")] == ["verify_pending"]
    out = run(m, ev(cleared("kernel_heartbeat_gap", kernel="api"), 60), ev(gap(), 500))
    passed = of_type(out, "verify_passed")
    assert len(passed) == 1 and passed[0].data.target == "web-1/kernel=api"
    assert of_type(out, "verify_failed") == []
    assert len(commands(out)) == 1  # the next gap is a new incident


def test_verify_fails_without_the_fix_and_runs_the_escalation() -> None:
    m = matcher(RESTART + "    verify: {within: 2m}\n"
                "    escalate: {escalate_to_coding_agent: {summary: 'kernel {kernel} will not stay up'}}\n")
    run(m, ev(gap(), 0))
    m.tick(at(119).timestamp())
    assert m.take() == []
    m.tick(at(121).timestamp())  # virtual time passes the deadline, no event needed
    out = m.take()
    failed = of_type(out, "verify_failed")
    assert len(failed) == 1 and failed[0].data.within_s == 120.0
    assert [c.data.summary for c in commands(out)] == ["kernel api will not stay up"]


def test_verify_by_event_and_where() -> None:
    m = matcher("""
playbooks:
  - name: restore
    on: model_corruption
    group_by: [path]
    do: [{restore_model_weights: {path: "{path}"}}]
    verify: {within: 1m, event: snapshot_restored, where: {kind: model}}
""")
    bad = events.ModelCorruption(path="models/m.pkl", expected_sha256="a", actual_sha256="b",
                                 reason="hash mismatch")
    run(m, ev(bad, 0))
    other = events.SnapshotRestored(path="models/m.pkl", snapshot="s", kind="config", sha256="x")
    good = events.SnapshotRestored(path="models/m.pkl", snapshot="s", kind="model", sha256="x")
    out = run(m, ev(other, 10), ev(good, 20))
    assert len(of_type(out, "verify_passed")) == 1


def test_group_by_keeps_each_target_separate() -> None:
    m = matcher(RESTART + "    cooldown: 10m\n    budget: {max: 1, per: 1h}\n")
    out = run(m, ev(gap("api"), 0), ev(gap("worker"), 1), ev(gap("api"), 2),
              ev(gap("api"), 3, host="web-2"))
    targets = [c.data.kernel for c in commands(out)]
    assert targets == ["api", "worker", "api"]
    assert [c.host for c in commands(out)] == ["web-1", "web-1", "web-2"]


def test_disabled_playbook_records_why_once_and_never_acts() -> None:
    m = matcher(RESTART + "    enabled: false\n")
    out = run(m, ev(gap(), 0), ev(gap(), 10))
    assert commands(out) == []
    assert [s.data.reason for s in of_type(out, "decision_suppressed")] == ["disabled"]


def test_non_matching_events_record_nothing() -> None:
    m = matcher("""
playbooks:
  - name: shed
    on: cpu_saturation
    where: {percent: {ge: 90}}
    do: [{shed_load: {}}]
""")
    assert run(m, *[ev(cpu(50), i) for i in range(100)]) == []


def test_timer_playbook_fires_once_per_slot_with_slot_derived_ids() -> None:
    m = matcher("""
playbooks:
  - name: hygiene
    every: 1h
    do: [{take_snapshot: {}}]
""")
    t = at(0).timestamp()
    m.tick(t)
    m.tick(t + 60)
    first = commands(m.take())
    assert len(first) == 1 and first[0].host == "grace-1"
    m.tick(t + 3600)
    second = commands(m.take())
    assert len(second) == 1 and second[0].id != first[0].id
    again = matcher("""
playbooks:
  - name: hygiene
    every: 1h
    do: [{take_snapshot: {}}]
""")
    again.tick(t + 10)
    assert commands(again.take())[0].id == first[0].id  # a restart in the same slot: same id


def test_ids_are_deterministic_and_decisions_derive_from_the_command() -> None:
    e = ev(gap(), 0, id="cause-1")
    a, b = run(matcher(RESTART), e), run(matcher(RESTART), e)
    assert [x.id for x in a] == [x.id for x in b]
    cmd = commands(a)[0]
    issued = of_type(a, "command_issued")[0]
    assert issued.id == events.derive_id("decision", cmd.id) and issued.data.command_id == cmd.id
    assert cmd.data.cause_ids == ["cause-1"] and cmd.data.playbook == "restart"


def test_own_decisions_from_the_log_rebuild_cooldowns_and_are_not_matched() -> None:
    live = matcher(RESTART + "    cooldown: 1h\n")
    out = run(live, ev(gap(), 0))
    fresh = matcher(RESTART + "    cooldown: 1h\n")
    fresh.emit = False
    for d in out:
        if d.data.CATEGORY == "decision":
            fresh.process(d)
    fresh.emit = True
    out2 = run(fresh, ev(gap(), 60))
    assert commands(out2) == []
    assert [s.data.reason for s in of_type(out2, "decision_suppressed")] == ["cooldown"]


def test_verify_only_passes_for_the_same_target() -> None:
    m = matcher("""
playbooks:
  - name: restore
    on: model_corruption
    group_by: [path]
    do: [{restore_model_weights: {path: "{path}"}}]
    verify: {within: 2m}
""")
    bad = events.ModelCorruption(path="models/a.pkl", expected_sha256="a", actual_sha256="b",
                                 reason="hash mismatch")
    run(m, ev(bad, 0))
    out = run(m, ev(cleared("model_corruption", path="models/b.pkl"), 10),
              ev(cleared("model_corruption", path="models/a.pkl"), 20, host="web-2"))
    assert of_type(out, "verify_passed") == []
    out = run(m, ev(cleared("model_corruption", path="models/a.pkl"), 30))
    assert [p.data.target for p in of_type(out, "verify_passed")] == ["web-1/path=models/a.pkl"]


def test_count_not_reached_is_recorded_again_once_the_window_emptied() -> None:
    m = matcher("""
playbooks:
  - name: slow
    on: latency_spike
    group_by: [kernel]
    count: 3
    within: 1m
    do: [{scale_workers: {kernel: "{kernel}", by: 1}}]
""")
    spike = events.LatencySpike(kernel="api", url="u", p95_ms=900, threshold_ms=500, samples=9)
    out = run(m, ev(spike, 0), ev(spike, 10), ev(spike, 500))
    assert [s.data.reason for s in of_type(out, "decision_suppressed")] == ["count_not_reached"] * 2
