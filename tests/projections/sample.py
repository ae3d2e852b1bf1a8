"""A known event sequence for projection tests, with what the dashboard must say about it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from grace import events
from grace.events import Payload

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
# naive UTC: the dashboard's "now", 80 s after T0: 47 s after the story's last event, so not
# stale (3 x the 30 s monitor interval = 90 s)
NOW = datetime(2026, 1, 1, 12, 1, 20)  # noqa: DTZ001 - naive UTC on purpose (above)
NOW_ISO = "2026-01-01T12:01:20Z"


def story() -> list[tuple[str, Payload]]:
    """(host, payload) in log order: boot, monitor, checks, findings, commands, kernels, snapshots."""
    e = events
    return [
        ("web-1", e.BootPhase(phase=1, name="preflight", status="started")),
        ("web-1", e.BootPhase(phase=7, name="ready", status="completed")),
        ("web-1", e.MonitorStarted(interval_s=30.0, triggers=["health_signal", "latency_queue",
                                                              "config_drift"])),
        ("web-1", e.WatchdogStarted(name="monitor", tier=1)),
        ("web-1", e.WatchdogStarted(name="supervisor", tier=2)),
        ("web-1", e.WatchdogStarted(name="stage-watchdog", tier=2)),
        ("web-1", e.WatchdogStarted(name="meta", tier=3)),
        ("web-1", e.WatchdogStopped(name="meta", tier=3)),
        ("web-1", e.SnapshotPolicy(dir=".grace_snapshots", every_s=3600, max_age_s=86400, keep=5)),
        ("web-1", e.KernelStarted(kernel="api", pid=10, critical=True)),
        ("web-1", e.KernelStarted(kernel="worker", instance=0, pid=11)),
        ("web-1", e.KernelStarted(kernel="worker", instance=1, pid=12)),
        ("web-1", e.KernelStarted(kernel="batch", pid=13)),
        ("web-1", e.KernelExited(kernel="batch", pid=13, code=1)),  # failed
        ("web-1", e.KernelSuspended(kernel="worker", instance=1)),  # degraded
        ("web-1", e.CheckCompleted(trigger="dependency_regression", duration_ms=5, outcome="ok",
                                   stats={"dependencies_tracked": 89})),
        ("web-1", e.CheckCompleted(trigger="latency_queue", duration_ms=3, outcome="findings",
                                   findings=1)),
        ("web-1", e.CheckFailed(trigger="telemetry_drift", duration_ms=5000, error="timeout",
                                timed_out=True)),
        ("web-1", e.QueueBacklog(kernel="worker", stream="JOBS", consumer="w", pending=500,
                                 ack_pending=0, backlog=500, threshold=100, trigger="latency_queue")),
        ("web-1", e.QueueBacklog(kernel="worker", stream="JOBS", consumer="w", pending=600,
                                 ack_pending=0, backlog=600, threshold=100, trigger="latency_queue")),
        ("web-1", e.VulnerableDependency(package="requests", installed_version="2.0",
                                         advisory_id="GHSA-1", trigger="dependency_regression")),
        ("web-1", e.VulnerableDependency(package="urllib3", installed_version="1.0",
                                         advisory_id="GHSA-2", trigger="dependency_regression")),
        ("web-1", e.ConditionCleared(condition="vulnerable_dependency",
                                     key={"package": "urllib3", "advisory_id": "GHSA-2"})),
        ("web-1", e.ConfigDrift(path="config/app.yaml", expected_sha256="a", actual_sha256="b",
                                trigger="config_drift")),
        ("web-1", e.CommandIssued(playbook="high_queue_backlog", command_id="c1",
                                  action="scale_workers", target="worker", cause_ids=["x"])),
        ("web-1", e.CommandSucceeded(command_id="c1", action="scale_workers", target="worker")),
        ("web-1", e.CommandIssued(playbook="config_drift_detected", command_id="c2",
                                  action="restore_from_snapshot", target="config/app.yaml",
                                  cause_ids=["y"])),
        ("web-1", e.CommandSucceeded(command_id="c2", action="restore_from_snapshot")),
        ("web-1", e.SnapshotTaken(path="models/m.pkl", snapshot="m_1.pkl", kind="model",
                                  sha256="s1", size=1)),
        ("web-1", e.SnapshotTaken(path="models/m.pkl", snapshot="m_2.pkl", kind="model",
                                  sha256="s2", size=1)),
        ("web-1", e.SnapshotPruned(path="models/m.pkl", snapshot="m_1.pkl", kind="model",
                                   reason="age")),
        ("web-1", e.SnapshotTaken(path="config/app.yaml", snapshot="app_1.yaml", kind="config",
                                  sha256="c1", size=1)),
        ("web-1", e.SnapshotTaken(path="config/db.yaml", snapshot="db_1.yaml", kind="config",
                                  sha256="c2", size=1)),
        ("web-1", e.SnapshotAccepted(path="config/log.yaml", kind="config", sha256="c3")),
    ]


# What the dashboard must report for story() at NOW, worked out by hand.
EXPECTED = {
    "system_state": "degraded",  # boot complete, but a kernel failed
    "boot_phase": "complete",
    "kernels": {"total": 4, "running": 2, "failed": 1, "degraded": 2, "held": 0},
    # api, worker/0, worker/1 (suspended), batch (failed); worker/0 has an open backlog finding
    "security": {"boot_rate_limiting": False,
                 "attested_secrets": 2,  # app.yaml, db.yaml, log.yaml recorded; app.yaml drifted
                 "dependencies_tracked": 89,
                 "vulnerabilities": 1},  # GHSA-2 was cleared
    # the worker's backlog was published twice while active: one finding, two publications
    "triggers": {"total_checks": 3, "issues_detected": 4, "issues_published": 5,
                 "actions_executed": 2,
                 "last_run": "2026-01-01T12:00:17Z",  # the check_failed, 17 s after T0
                 "running": True, "check_interval": 30,
                 "issue_counts": {"config_drift": 1, "dependency_regression": 2, "latency_queue": 1},
                 "triggers_monitored": 3},
    "snapshots": {"running": True, "refresh_interval_hours": 1, "max_age_hours": 24,
                  "model_snapshots": 1, "config_snapshots": 2, "total_snapshots": 3},
    "watchdogs": {"tier_count": 2, "active": True},
    "health": "degraded",
    "as_of": "2026-01-01T12:00:33Z",  # the story's last event (34 events, one second apart)
    "stale": False,
    "stale_after_s": 90,
    "boot": {"state": "complete", "stopped": False, "phase": 7, "name": "ready",
             "status": "completed", "failed_phase": None, "failed_name": None,
             "failed_detail": None},
    "fix_tasks": {"open": 0, "passed": 0, "failed": 0, "unverified": 0, "error": 0},
    "holds": {"active": 0, "items": []},  # the story has none: tests/projections/test_operator.py
    "approvals": {"pending": 0, "items": []},
    "stages": {},
}


def encoded(host_override: str | None = None, start: datetime = T0) -> list[tuple[str, bytes]]:
    """(NATS subject, raw) for story(), one second apart from `start`, ids derived from the index."""
    out = []
    for i, (host, payload) in enumerate(story()):
        ev = events.make_event(payload, host=host_override or host, source="grace/test/sample",
                               id=events.derive_id("sample", host_override, i),
                               time=start + timedelta(seconds=i))
        subject = f"grace.events.{payload.CATEGORY}.{payload.TYPE}.{ev.host}"
        out.append((subject, events.encode(ev)))
    return out
