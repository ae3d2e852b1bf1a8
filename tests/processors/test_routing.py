"""Issue 12: every finding routed (or documented record-only); every fix verified, and a
failed verification escalates once per episode with what was checked and what was found."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grace import events
from processors import stage, validate
from processors.matcher import Matcher
from tests.processors.support import at, cleared, commands, ev, gap, matcher, of_type

ROOT = Path(__file__).resolve().parents[2]
# actions that only hand work to a person or agent: they change nothing, so nothing to verify
NO_CHANGE = {"escalate_to_coding_agent", "review_code", "notify"}


def shipped() -> Matcher:
    return Matcher(validate.load_paths([stage.SHIPPED]), host="grace-1", source="grace/test")


def record_only(doc: Path) -> dict[str, str]:
    """The `Record-only event types` table of a document: type -> reason."""
    text = doc.read_text()
    section = text.split("### Record-only event types", 1)[1].split("\n#", 1)[0]
    return dict(re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", section, re.M))


def test_every_trigger_type_is_routed_or_documented_record_only() -> None:
    routed = {t for p in validate.load_paths([stage.SHIPPED]) for t in p.on}
    readme, docs = record_only(ROOT / "README.md"), record_only(ROOT / "docs" / "processors.md")
    assert readme and readme.keys() == docs.keys()
    assert not routed & readme.keys(), "a routed type is also listed as record-only"
    problems = events.PROBLEM_TYPES  # not condition_cleared (it ends one), not queue_backlog_low
    unrouted = sorted(problems - routed - readme.keys())
    assert unrouted == [], f"findings on the floor: {unrouted}"


def test_every_playbook_that_changes_the_system_verifies() -> None:
    for p in validate.load_paths([stage.SHIPPED]):
        if {a.action for a in p.actions} - NO_CHANGE:
            assert p.verify_within_s, f"{p.name} changes the system but has no verify"


def test_failed_verify_escalates_once_per_episode_with_evidence() -> None:
    m = shipped()
    out: list[events.Event] = []

    def at_t(t: float, *payloads: events.Payload) -> None:
        m.tick(at(t).timestamp())
        for p in payloads:
            m.process(ev(p, t))
        out.extend(m.take())

    at_t(0, gap("api"))  # restart #1
    at_t(30, gap("api"))  # still gone: verify pending
    at_t(90, gap("api"))
    at_t(125)  # deadline 120s passed: verify_failed + one escalation
    at_t(150, gap("api"))  # restart #2 (cooldown 30s passed, budget 2 of 3)
    at_t(200, gap("api"))
    at_t(275)  # the second verify fails too: recorded, not escalated again
    out = [e for e in out if e.data.playbook == "kernel_heartbeat_gap"]  # not the hourly timer
    restarts = [c for c in commands(out) if c.type == "restart_kernel"]
    escalations = [c for c in commands(out) if c.type == "escalate_to_coding_agent"]
    failed = of_type(out, "verify_failed")
    assert len(restarts) == 2 and len(failed) == 2
    assert len(escalations) == 1
    assert failed[0].data.escalation == "escalate_to_coding_agent"
    assert failed[1].data.escalation is None and "already escalated" in failed[1].data.detail
    proof = escalations[0].data.evidence["verify"]
    assert proof["command_id"] == restarts[0].id and proof["action"] == "restart_kernel"
    assert proof["checked"] == "condition_cleared of kernel_heartbeat_gap for web-1/kernel=api/instance="
    assert proof["found"].startswith("kernel_heartbeat_gap still reported at ")
    assert proof["latest"]["time"] == at(90).isoformat()  # the latest finding, not the first
    assert proof["cause"]["data"]["kernel"] == "api" and proof["within_s"] == 120.0
    assert "not seen within 2m" in escalations[0].data.summary

    # the gap clears: a new episode later may escalate again (once)
    at_t(300, cleared("kernel_heartbeat_gap", kernel="api"))
    at_t(4000, gap("api"))
    at_t(4125)
    assert len([c for c in commands(out) if c.type == "escalate_to_coding_agent"
                and c.data.playbook == "kernel_heartbeat_gap"]) == 2


def test_the_once_per_episode_rule_survives_a_restart() -> None:
    """A processor rebuilt from the log learns the escalation it already sent."""
    live = shipped()
    log: list[events.Event] = []
    for t, p in ((0, gap("api")), (125, None), (150, gap("api"))):
        live.tick(at(t).timestamp())
        if p is not None:
            e = ev(p, t)
            log.append(e)
            live.process(e)
        log.extend(live.take())
    assert len([c for c in commands(log) if c.type == "escalate_to_coding_agent"
                and c.data.playbook == "kernel_heartbeat_gap"]) == 1  # not the hourly timer's
    fresh = shipped()
    fresh.emit = False
    for e in log:
        if e.data.CATEGORY != "command":  # the processor reads events and decisions
            fresh.process(e)
    fresh.emit = True
    fresh.take()
    fresh.tick(at(275).timestamp())
    out = [e for e in fresh.take() if e.data.playbook == "kernel_heartbeat_gap"]
    assert [d.data.escalation for d in of_type(out, "verify_failed")] == [None]
    assert commands(out) == []


def test_a_result_verifies_only_its_own_command() -> None:
    m = shipped()
    m.process(ev(DUE, 0))
    [snap] = commands(m.take())
    m.process(ev(events.CommandSucceeded(command_id="someone-else", action="take_snapshot"), 5))
    assert of_type(m.take(), "verify_passed") == []
    m.tick(at(125).timestamp())
    out = m.take()
    [failed] = of_type(out, "verify_failed")
    assert failed.data.command_id == snap.id
    [esc] = commands(out)
    assert esc.type == "escalate_to_coding_agent"
    assert esc.data.evidence["verify"]["checked"] == f"command_succeeded for {snap.id}"
    assert esc.data.evidence["verify"]["found"] == "no command_succeeded after take_snapshot"


def test_scale_up_verifies_on_the_backlog_clearing() -> None:
    m = shipped()
    flood = events.QueueBacklog(kernel="worker", stream="JOBS", consumer="workers", pending=900,
                                ack_pending=0, backlog=900, threshold=200)
    m.process(ev(flood, 0))
    [scale] = commands(m.take())
    m.process(ev(cleared("queue_backlog", kernel="worker"), 90))
    out = m.take()
    [passed] = of_type(out, "verify_passed")
    assert passed.data.command_id == scale.id
    assert commands(out) == []  # scale-down answers queue_backlog_low, not the clearing


def test_a_failed_command_fails_its_verify_at_once_with_the_reason() -> None:
    m = shipped()
    vuln = events.VulnerableDependency(package="requests", installed_version="2.19.0",
                                      advisory_id="GHSA-1", fixed_version="2.31.0")
    m.process(ev(vuln, 0))
    [pr] = [c for c in commands(m.take()) if c.type == "create_upgrade_pr"]
    m.process(ev(events.CommandFailed(command_id=pr.id, action="create_upgrade_pr",
                                      reason="the working tree has uncommitted changes"), 3))
    out = m.take()
    [failed] = of_type(out, "verify_failed")
    assert failed.time == at(3) and failed.data.command_id == pr.id  # not at the 5m deadline
    [esc] = commands(out)
    proof = esc.data.evidence["verify"]
    assert proof["found"] == "create_upgrade_pr failed: the working tree has uncommitted changes"
    assert proof["result"]["type"] == "command_failed"
    m.tick(at(400).timestamp())
    assert of_type(m.take(), "verify_failed") == []  # the deadline does not fail it twice


DUE = events.SnapshotDue(every_s=3600, slot=1)
QUEUE = events.QueueBacklog(kernel="worker", stream="JOBS", consumer="workers", pending=900,
                            ack_pending=0, backlog=900, threshold=200)
SLOW = events.LatencySpike(kernel="api", url="http://127.0.0.1:18080/health", p95_ms=2000.0,
                           threshold_ms=500.0, samples=9)
HOT = events.CpuSaturation(scope="system", percent=97.0, threshold=90.0, samples=3)
FULL = events.MemoryPressure(scope="system", percent=95.0, threshold=90.0, samples=3,
                            culprit_kernel="reporter", culprit_instance=0, culprit_rss_mb=512.0)
BAD_MODEL = events.ModelCorruption(path="models/m.pkl", expected_sha256="a", actual_sha256="b",
                                   reason="hash mismatch")
DRIFT = events.ConfigDrift(path="config/app.yaml", expected_sha256="a", actual_sha256="b")
DISK = events.FailureRiskPredicted(resource="disk", eta_s=900.0, confidence=0.95, current=91.0,
                                   limit=95.0, slope_per_s=0.004, files=["/var/lib/grace"])
VULN = events.VulnerableDependency(package="requests", installed_version="2.19.0",
                                   advisory_id="GHSA-1", fixed_version="2.31.0")
ALERT = events.ExternalAlert(status="firing", alertname="KernelStuck", fingerprint="f1",
                             labels={"alertname": "KernelStuck", "grace_action": "restart_kernel",
                                     "kernel": "api"})
# playbook -> (its trigger at these times, the proof: "cleared" (the finding's condition_cleared)
# or "result" (the command's own command_succeeded), the verify window)
VERIFIED: dict[str, tuple[list[tuple[events.Payload, float]], str, float]] = {
    "high_queue_backlog": ([(QUEUE, 0)], "cleared", 120),
    "api_latency_spike": ([(SLOW, 0), (SLOW, 30)], "cleared", 420),
    "cpu_saturation": ([(HOT, 0), (HOT, 30), (HOT, 60)], "cleared", 180),
    "memory_pressure": ([(FULL, 0)], "cleared", 180),
    "model_corruption_detected": ([(BAD_MODEL, 0)], "cleared", 120),
    "config_drift_detected": ([(DRIFT, 0)], "cleared", 120),
    "kernel_heartbeat_gap": ([(gap("api"), 0)], "cleared", 120),
    "disk_exhaustion_predicted": ([(DISK, 0)], "cleared", 1800),
    "cve_vulnerability_detected": ([(VULN, 0)], "result", 300),
    "snapshot_hygiene": ([(DUE, 0)], "result", 120),
    "resume_load_when_pressure_clears":
        ([(events.ConditionCleared(condition="cpu_saturation",
                                   key={"scope": "system", "kernel": ""}), 0)], "result", 120),
    "alert_restart_kernel": ([(ALERT, 0)], "cleared", 600),
    "scale_down_when_backlog_low":
        ([(events.QueueBacklogLow(kernel="worker", stream="JOBS", consumer="workers", backlog=3,
                                  threshold=10, workers=3, min_workers=1), 0)], "result", 120),
}


def acted(name: str, feed: list[tuple[events.Payload, float]]) -> tuple[Matcher, events.Event]:
    m = shipped()
    out: list[events.Event] = []
    for payload, t in feed:
        m.tick(at(t).timestamp())
        m.process(ev(payload, t))
        out.extend(m.take())
    first = [c for c in commands(out) if c.data.playbook == name]
    assert first, f"{name} did not act"
    return m, first[0]


def test_every_changing_shipped_playbook_has_a_verify_case() -> None:
    changing = {p.name for p in validate.load_paths([stage.SHIPPED]) if p.on
                and {a.action for a in p.actions} - NO_CHANGE}
    assert changing == set(VERIFIED)


@pytest.mark.parametrize("name", sorted(VERIFIED))
def test_the_proof_passes_the_verify(name: str) -> None:
    feed, proof, _ = VERIFIED[name]
    m, cmd = acted(name, feed)
    trigger, t = feed[-1]
    if proof == "cleared":
        assert isinstance(trigger, events.Trigger)
        evidence = ev(events.ConditionCleared(condition=trigger.TYPE,
                                              key=events.finding_key(trigger)), t + 30)
    else:
        evidence = ev(events.CommandSucceeded(command_id=cmd.id, action=cmd.type), t + 5)
    m.process(evidence)
    out = m.take()
    passed = [d for d in of_type(out, "verify_passed") if d.data.playbook == name]
    assert [(d.data.command_id, d.data.evidence_id) for d in passed] == [(cmd.id, evidence.id)]


@pytest.mark.parametrize("name", sorted(VERIFIED))
def test_no_proof_fails_the_verify_and_escalates_once(name: str) -> None:
    feed, _, within = VERIFIED[name]
    m, cmd = acted(name, feed)
    m.tick(at(feed[-1][1] + within + 1).timestamp())
    m.tick(at(feed[-1][1] + within + 60).timestamp())
    out = [e for e in m.take() if e.data.playbook == name]
    [failed] = of_type(out, "verify_failed")
    assert failed.data.command_id == cmd.id and failed.data.within_s == within
    [esc] = commands(out)
    assert esc.type == "escalate_to_coding_agent"
    assert esc.data.evidence["verify"]["command_id"] == cmd.id


def test_a_timer_started_mid_slot_gets_its_whole_verify_window() -> None:
    """The processor starts 40 minutes into the hour: the snapshot still has its 2m."""
    m = matcher("""
playbooks:
  - name: hourly_snapshot
    every: 1h
    do:
      - take_snapshot: {paths: []}
    verify: {within: 2m, event: command_succeeded}
""")
    m.tick(at(2400).timestamp())
    [snap] = commands(m.take())
    m.tick(at(2400 + 60).timestamp())
    assert of_type(m.take(), "verify_failed") == []
    m.process(ev(events.CommandSucceeded(command_id=snap.id, action="take_snapshot"), 2400 + 70,
                 host="grace-1"))
    assert [d.data.command_id for d in of_type(m.take(), "verify_passed")] == [snap.id]
