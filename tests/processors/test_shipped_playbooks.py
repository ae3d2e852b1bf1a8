"""The shipped playbooks: each of the ten seed playbooks fed its trigger emits the right command."""

from __future__ import annotations

from typing import Any

import pytest

from grace import events
from processors import stage, validate
from processors.matcher import Matcher
from tests.processors.support import at, cleared, commands, ev, gap, of_type
from tests.support import grace_cmd


def feed(m: Matcher, *evs: events.Event) -> list[events.Event]:
    """Events only, no clock ticks."""
    for e in evs:
        m.process(e)
    return m.take()


def shipped() -> Matcher:
    return Matcher(validate.load_paths([stage.SHIPPED]), host="grace-1", source="grace/test")


CPU = events.CpuSaturation(scope="system", percent=97.0, threshold=90.0, samples=3)
MODEL = events.ModelCorruption(path="models/m.pkl", expected_sha256="a", actual_sha256="b",
                               reason="hash mismatch")
CASES: list[tuple[str, list[tuple[events.Payload, float]], list[tuple[str, dict[str, Any]]], str]] = [
    ("high_queue_backlog",
     [(events.QueueBacklog(kernel="worker", stream="JOBS", consumer="w", pending=500,
                           ack_pending=0, backlog=500, threshold=100), 0)],
     [("scale_workers", {"kernel": "worker", "by": 1})], "self_healing"),
    ("api_latency_spike",
     [(events.LatencySpike(kernel="api", url="u", p95_ms=900, threshold_ms=500, samples=9), t)
      for t in (0, 30)],
     [("scale_workers", {"kernel": "api", "by": 1})], "self_healing"),
    ("cpu_saturation", [(CPU, 0), (CPU, 30), (CPU, 60)], [("shed_load", {"kernels": []})],
     "self_healing"),
    ("memory_pressure",
     [(events.MemoryPressure(scope="system", percent=95.0, threshold=90.0, samples=3,
                             culprit_kernel="reporter", culprit_instance=1), 0)],
     [("restart_kernel", {"kernel": "reporter", "instance": 1})], "self_healing"),
    ("kernel_cpu_saturation",
     [(events.CpuSaturation(scope="kernel", kernel="worker", instance=2, percent=99.0,
                            threshold=90.0, samples=3), t) for t in range(0, 330, 30)],
     [("escalate_to_coding_agent", {"summary": "worker instance 2 has used 99.0% CPU for 5 minutes",
                                    "kernel": "worker",
                                    "evidence": {"kernel": "worker", "instance": 2, "percent": 99.0,
                                                 "threshold": 90.0}})], "coding_agent"),
    ("memory_pressure_without_culprit",
     [(events.MemoryPressure(scope="system", percent=95.0, threshold=90.0, samples=3), 0)],
     [("escalate_to_coding_agent", {"evidence": {"scope": "system", "percent": 95.0,
                                                 "threshold": 90.0}})], "coding_agent"),
    ("model_corruption_detected", [(MODEL, 0)],
     [("restore_model_weights", {"path": "models/m.pkl"})], "self_healing"),
    ("config_drift_detected",
     [(events.ConfigDrift(path="config/app.yaml", expected_sha256="a", actual_sha256="b"), 0)],
     [("restore_from_snapshot", {"path": "config/app.yaml"})], "self_healing"),
    ("kernel_heartbeat_gap", [(gap("api"), 0)], [("restart_kernel", {"kernel": "api", "instance": None})],
     "self_healing"),
    ("repeated_error_pattern",
     [(events.RepeatedErrorPattern(log="logs/app.log", template="KeyError <*>", count=7,
                                   window_s=300.0, samples=["KeyError 'x'"],
                                   files=["shop/pricing.py"]), 0)],
     [("escalate_to_coding_agent", {"summary": "7 x 'KeyError <*>' in logs/app.log within 300.0s",
                                    "files": ["shop/pricing.py"],
                                    "evidence": {"log": "logs/app.log", "template": "KeyError <*>",
                                                 "samples": ["KeyError 'x'"]}})], "coding_agent"),
    ("high_failure_risk_detected",
     [(events.FailureRiskPredicted(resource="memory", kernel="api", eta_s=600.0, confidence=0.9,
                                   current=0.8, limit=1.0, slope_per_s=0.001,
                                   files=["src/cache.py"]), 0)],
     [("review_code", {"files": ["src/cache.py"], "kernel": "api",
                       "summary": "memory of api predicted to reach 1.0 in 600.0s"})],
     "coding_agent"),
    ("disk_exhaustion_predicted",
     [(events.FailureRiskPredicted(resource="disk", eta_s=900.0, confidence=0.95, current=91.0,
                                   limit=95.0, slope_per_s=0.004, files=["/var/lib/grace"]), 0)],
     [("clear_caches", {"paths": []})], "self_healing"),
    ("cve_vulnerability_detected",
     [(events.VulnerableDependency(package="requests", installed_version="2.0.0",
                                   advisory_id="GHSA-1", fixed_version="2.31.0"), 0)],
     [("create_upgrade_pr", {"package": "requests", "version": "2.31.0",
                             "advisory_id": "GHSA-1"})], "coding_agent"),
    # the findings routed beyond the seed's ten (issue 12)
    ("syntax_error_detected",
     [(events.SyntaxErrorFound(path="shop/broken.py", line=1, column=12, message="invalid syntax",
                               severity="critical"), 0)],
     [("escalate_to_coding_agent", {"summary": "syntax error in shop/broken.py:1: invalid syntax",
                                    "files": ["shop/broken.py"], "line": 1,
                                    "evidence": {"path": "shop/broken.py", "line": 1, "column": 12,
                                                 "message": "invalid syntax"}})], "coding_agent"),
    ("dependency_regression_detected",
     [(events.DependencyRegression(package="requests", locked_version="2.31.0",
                                   installed_version="2.19.0", change="downgraded"), 0)],
     [("escalate_to_coding_agent", {
         "summary": "requests is downgraded: installed 2.19.0, lock says 2.31.0; reinstall "
                    "requests==2.31.0 or update the lock on purpose",
         "evidence": {"package": "requests", "installed_version": "2.19.0",
                      "locked_version": "2.31.0", "change": "downgraded"}})], "coding_agent"),
    ("vulnerable_dependency_without_fix",
     [(events.VulnerableDependency(package="pyyaml", installed_version="5.3",
                                   advisory_id="GHSA-2", summary="code execution"), 0)],
     [("escalate_to_coding_agent", {
         "summary": "pyyaml 5.3 is affected by GHSA-2 and no fixed version is known: "
                    "code execution"})], "coding_agent"),
    ("telemetry_drift_detected",
     [(events.TelemetryDrift(metric="health_latency_ms", kernel="api", value=0.41, threshold=0.2,
                             baseline_n=20, recent_n=20, baseline_p95=3.1,
                             recent_p95=812.5), 0)],
     [("escalate_to_coding_agent", {
         "summary": "health_latency_ms of api drifted: psi 0.41 > 0.2; p95 3.1 (baseline, "
                    "n=20) -> 812.5 (now, n=20)",
         "evidence": {"metric": "health_latency_ms", "kernel": "api", "statistic": "psi",
                      "value": 0.41, "threshold": 0.2, "baseline": {"n": 20, "p95": 3.1},
                      "now": {"n": 20, "p95": 812.5}}})], "coding_agent"),
    ("schema_drift_detected",
     [(events.SchemaDrift(kernel="api", url="http://127.0.0.1:18080/health", added=["mode"],
                          removed=["queue"], changed=["uptime: number -> string"]), 0)],
     [("escalate_to_coding_agent", {
         "summary": "the answer of api at http://127.0.0.1:18080/health changed shape: added "
                    "['mode'], removed ['queue'], changed ['uptime: number -> string']",
         "evidence": {"kernel": "api", "url": "http://127.0.0.1:18080/health", "added": ["mode"],
                      "removed": ["queue"], "changed": ["uptime: number -> string"]}})],
     "coding_agent"),
]


@pytest.mark.parametrize(("name", "feed_events", "expected", "route"), CASES, ids=[c[0] for c in CASES])
def test_shipped_playbook_emits_its_command(name: str, feed_events: list[tuple[events.Payload, float]],
                                            expected: list[tuple[str, dict[str, Any]]],
                                            route: str) -> None:
    out = feed(shipped(), *[ev(p, t) for p, t in feed_events])
    cmds = [c for c in commands(out) if c.data.playbook == name]
    assert [c.type for c in cmds] == [a for a, _ in expected]
    for cmd, (_, params) in zip(cmds, expected, strict=True):
        for key, value in params.items():
            assert getattr(cmd.data, key) == value, key
        assert cmd.host == "web-1"
    issued = [d for d in of_type(out, "command_issued") if d.data.playbook == name]
    assert {d.data.route for d in issued} == {route}


def test_the_ten_seed_playbooks_are_shipped() -> None:
    names = {p.name for p in validate.load_paths([stage.SHIPPED])}
    assert {c[0] for c in CASES} <= names


def test_resume_load_when_cpu_saturation_clears() -> None:
    out = feed(shipped(), ev(cleared("cpu_saturation", scope="system", kernel=""), 0))
    assert [c.type for c in commands(out)] == ["resume_load"]


def test_memory_pressure_clearing_resumes_nothing_it_never_shed() -> None:
    out = feed(shipped(), ev(cleared("memory_pressure", scope="system", kernel=""), 0))
    assert [c.type for c in commands(out)] == []


def test_a_heartbeat_gap_of_one_instance_restarts_that_instance_only() -> None:
    m = shipped()
    out = feed(m, ev(events.KernelHeartbeatGap(kernel="api", instance=1, timeout_s=6.0), 0))
    # the first is back before the second goes: safety.max_pool_restarting (blast radius)
    back = events.CommandSucceeded(command_id=commands(out)[0].id, action="restart_kernel")
    out += feed(m, ev(back, 0.5),
                ev(events.KernelHeartbeatGap(kernel="api", instance=0, timeout_s=6.0), 1))
    params = [c.data for c in commands(out)]
    assert [(p.kernel, p.instance) for p in params] == [("api", 1), ("api", 0)]


def test_scale_down_while_the_backlog_is_low_one_worker_per_cooldown() -> None:
    low = events.QueueBacklogLow(kernel="worker", stream="JOBS", consumer="workers", backlog=3,
                                 threshold=10, workers=3, min_workers=1)
    m = shipped()
    assert feed(m, ev(cleared("queue_backlog", kernel="worker"), 0)) == []  # not by itself
    cmds: list[events.Event] = []
    for t in (0, 30, 60, 90, 120):
        cmds += commands(feed(m, ev(low, t)))
        if cmds:  # the actuator's result for the last scale-down (its verify)
            feed(m, ev(events.CommandSucceeded(command_id=cmds[-1].id, action="scale_workers"), t + 1))
    assert [(c.type, c.data.kernel, c.data.by) for c in cmds] == [("scale_workers", "worker", -1)] * 2


def test_snapshot_hygiene_answers_each_snapshot_due_and_verifies_it() -> None:
    m = shipped()
    m.tick(at(3600).timestamp())
    assert m.take() == []  # no timer of its own: the schedule is snapshots.every, via snapshot_due
    first = commands(feed(m, ev(events.SnapshotDue(every_s=3600, slot=1), 0)))
    assert [(c.type, c.data.paths) for c in first] == [("take_snapshot", [])]
    later = feed(m, ev(events.CommandSucceeded(command_id=first[0].id, action="take_snapshot"), 5),
                 # the actuator's result proves the snapshot (verify)
                 ev(events.SnapshotDue(every_s=3600, slot=2), 3600))
    assert [d.type for d in later if d.type.startswith("verify")] == ["verify_passed"]
    assert [c.type for c in commands(later)] == ["take_snapshot"]


def test_a_disk_prediction_is_not_sent_to_code_review() -> None:
    disk = events.FailureRiskPredicted(resource="disk", eta_s=900.0, confidence=0.95, current=91.0,
                                       limit=95.0, slope_per_s=0.004, files=["/var/lib/grace"])
    cmds = commands(feed(shipped(), ev(disk, 0)))
    assert [(c.data.playbook, c.type) for c in cmds] == [("disk_exhaustion_predicted", "clear_caches")]


def test_cpu_below_the_playbook_bar_does_nothing() -> None:
    low = events.CpuSaturation(scope="system", percent=85.0, threshold=80.0, samples=3)
    assert feed(shipped(), ev(low, 0), ev(low, 90)) == []


def test_cli_validates_the_shipped_folder() -> None:
    result = grace_cmd("playbooks", "validate", str(stage.SHIPPED))
    assert result.returncode == 0, result.stderr
    assert f"ok: {len(validate.load_paths([stage.SHIPPED]))} playbooks" in result.stdout
