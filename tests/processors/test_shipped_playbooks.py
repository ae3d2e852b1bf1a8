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
     [(events.MemoryPressure(scope="system", percent=95.0, threshold=90.0, samples=3), 0)],
     [("shed_load", {"kernels": []}), ("clear_caches", {"paths": []})], "self_healing"),
    ("model_corruption_detected", [(MODEL, 0)],
     [("restore_model_weights", {"path": "models/m.pkl"})], "self_healing"),
    ("config_drift_detected",
     [(events.ConfigDrift(path="config/app.yaml", expected_sha256="a", actual_sha256="b"), 0)],
     [("restore_from_snapshot", {"path": "config/app.yaml"})], "self_healing"),
    ("kernel_heartbeat_gap", [(gap("api"), 0)], [("restart_kernel", {"kernel": "api"})],
     "self_healing"),
    ("repeated_error_pattern",
     [(events.RepeatedErrorPattern(log="logs/app.log", template="KeyError <*>", count=7,
                                   window_s=300.0, samples=["KeyError 'x'"]), 0)],
     [("escalate_to_coding_agent", {"summary": "7 x 'KeyError <*>' in logs/app.log within 300.0s",
                                    "evidence": {"log": "logs/app.log", "template": "KeyError <*>",
                                                 "samples": ["KeyError 'x'"]}})], "coding_agent"),
    ("high_failure_risk_detected",
     [(events.FailureRiskPredicted(resource="memory", kernel="api", eta_s=600.0, confidence=0.9,
                                   current=0.8, limit=1.0, slope_per_s=0.001,
                                   files=["src/cache.py"]), 0)],
     [("review_code", {"files": ["src/cache.py"],
                       "summary": "memory of api predicted to reach 1.0 in 600.0s"})],
     "coding_agent"),
    ("cve_vulnerability_detected",
     [(events.VulnerableDependency(package="requests", installed_version="2.0.0",
                                   advisory_id="GHSA-1", fixed_version="2.31.0"), 0)],
     [("create_upgrade_pr", {"package": "requests", "version": "2.31.0",
                             "advisory_id": "GHSA-1"})], "coding_agent"),
]


@pytest.mark.parametrize("name,feed_events,expected,route", CASES, ids=[c[0] for c in CASES])
def test_shipped_playbook_emits_its_command(name: str, feed_events: list[tuple[events.Payload, float]],
                                            expected: list[tuple[str, dict[str, Any]]],
                                            route: str) -> None:
    out = feed(shipped(), *[ev(p, t) for p, t in feed_events])
    cmds = [c for c in commands(out) if c.data.playbook == name]
    assert [c.type for c in cmds] == [a for a, _ in expected]
    for cmd, (_, params) in zip(cmds, expected):
        for key, value in params.items():
            assert getattr(cmd.data, key) == value, key
        assert cmd.host == "web-1"
    issued = [d for d in of_type(out, "command_issued") if d.data.playbook == name]
    assert {d.data.route for d in issued} == {route}


def test_the_ten_seed_playbooks_are_shipped() -> None:
    names = {p.name for p in validate.load_paths([stage.SHIPPED])}
    assert {c[0] for c in CASES} <= names


def test_resume_load_when_pressure_clears() -> None:
    out = feed(shipped(), ev(cleared("memory_pressure", scope="system", kernel=""), 0))
    assert [c.type for c in commands(out)] == ["resume_load"]


def test_scale_down_while_the_backlog_is_low_one_worker_per_cooldown() -> None:
    low = events.QueueBacklogLow(kernel="worker", stream="JOBS", consumer="workers", backlog=3,
                                 threshold=10, workers=3, min_workers=1)
    m = shipped()
    assert feed(m, ev(cleared("queue_backlog", kernel="worker"), 0)) == []  # not by itself
    out = feed(m, *(ev(low, t) for t in (0, 30, 60, 90, 120)))
    cmds = commands(out)
    assert [(c.type, c.data.kernel, c.data.by) for c in cmds] == [("scale_workers", "worker", -1)] * 2


def test_snapshot_hygiene_answers_each_snapshot_due() -> None:
    m = shipped()
    m.tick(at(0).timestamp())
    m.tick(at(3600).timestamp())
    assert m.take() == []  # no timer of its own: the schedule is snapshots.every, via snapshot_due
    out = feed(m, ev(events.SnapshotDue(every_s=3600, slot=1), 0),
               ev(events.SnapshotDue(every_s=3600, slot=2), 3600))
    assert [(c.type, c.data.paths) for c in commands(out)] == [("take_snapshot", [])] * 2


def test_cpu_below_the_playbook_bar_does_nothing() -> None:
    low = events.CpuSaturation(scope="system", percent=85.0, threshold=80.0, samples=3)
    assert feed(shipped(), ev(low, 0), ev(low, 90)) == []


def test_cli_validates_the_shipped_folder() -> None:
    result = grace_cmd("playbooks", "validate", str(stage.SHIPPED))
    assert result.returncode == 0, result.stderr
    assert "ok: 13 playbooks" in result.stdout
