"""Every SQL the dashboard, the metrics and the CLI run over a projection.

`dashboard(con, now=, window_s=)` returns the seed's JSON shape; every number
in it is computed here from the projected log. The derivation rules for the
fields without one obvious source are written out in docs/projections.md.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import duckdb

# Findings still open: the latest report of a (host, type, key) is newer than its latest clearance.
OPEN_FINDINGS = """
WITH last_issue AS (
    SELECT host, type, finding_key, max(seq) AS seq, arg_max(kernel, seq) AS kernel,
           arg_max(severity, seq) AS severity, arg_max(trigger, seq) AS trigger
    FROM issues GROUP BY host, type, finding_key),
last_clear AS (
    SELECT host, condition AS type, finding_key, max(seq) AS seq
    FROM clearances GROUP BY host, condition, finding_key)
SELECT i.* FROM last_issue i LEFT JOIN last_clear c USING (host, type, finding_key)
WHERE c.seq IS NULL OR c.seq < i.seq
"""

# The latest of some events per host, with the host's latest system_stopped (if any).
LATEST_BY_HOST = """
WITH marks AS (
    SELECT host, type, seq, data FROM events WHERE type IN ({types})),
stops AS (SELECT host, max(seq) AS seq FROM events WHERE type = 'system_stopped' GROUP BY host)
SELECT m.host, arg_max(m.type, m.seq) AS type, max(m.seq) AS seq, arg_max(m.data, m.seq) AS data,
       any_value(s.seq) AS stopped_seq
FROM marks m LEFT JOIN stops s USING (host) GROUP BY m.host
"""

BOOT = """
SELECT type, phase, name, status FROM boot_phases ORDER BY seq DESC LIMIT 1
"""

KERNELS = f"""
WITH open AS ({OPEN_FINDINGS})
SELECT count(*) FILTER (WHERE k.state <> 'stopped') AS total,
       count(*) FILTER (WHERE k.state = 'running') AS running,
       count(*) FILTER (WHERE k.state = 'failed') AS failed,
       count(*) FILTER (WHERE k.state = 'suspended' OR (k.state = 'running' AND EXISTS (
           SELECT 1 FROM open o WHERE o.host = k.host AND o.kernel = k.kernel))) AS degraded,
       count(*) FILTER (WHERE k.state = 'failed' AND k.critical) AS critical_failed
FROM kernels k
"""

SECURITY = f"""
WITH open AS ({OPEN_FINDINGS}),
attested AS (
    SELECT DISTINCT host, path FROM snapshots
    WHERE kind = 'config' AND type IN ('snapshot_taken', 'snapshot_accepted') AND sha256 IS NOT NULL),
deps AS (
    SELECT host, arg_max(CAST(stats->>'dependencies_tracked' AS DOUBLE), seq) AS n
    FROM checks WHERE stats->>'dependencies_tracked' IS NOT NULL GROUP BY host)
SELECT
    (SELECT count(*) FROM events WHERE type = 'kernel_restarted' AND time >= $since
        AND CAST(data->>'attempt' AS BIGINT) > 1)
    + (SELECT count(*) FROM decisions d WHERE d.type = 'decision_suppressed' AND d.time >= $since
        AND d.reason IN ('cooldown', 'budget_spent')
        AND d.playbook IN (SELECT playbook FROM commands WHERE action = 'restart_kernel'))
        AS restart_throttles,
    (SELECT count(*) FROM attested a WHERE NOT EXISTS (
        SELECT 1 FROM open o WHERE o.type = 'config_drift' AND o.host = a.host
        AND json_extract_string(o.finding_key, '$.path') = a.path)) AS attested_secrets,
    (SELECT coalesce(sum(n), 0) FROM deps) AS dependencies_tracked,
    (SELECT count(*) FROM open WHERE type = 'vulnerable_dependency') AS vulnerabilities
"""

TRIGGERS = """
SELECT (SELECT count(*) FROM checks) AS total_checks,
       (SELECT count(*) FROM issues) AS issues_detected,
       (SELECT count(*) FROM results WHERE outcome = 'succeeded') AS actions_executed,
       (SELECT max(time) FROM checks) AS last_run
"""

ISSUE_COUNTS = "SELECT trigger, count(*) FROM issues GROUP BY trigger ORDER BY trigger"

MONITORS = LATEST_BY_HOST.format(types="'monitor_started', 'monitor_stopped'")

LATEST_MONITOR_START = """
SELECT CAST(data->>'interval_s' AS DOUBLE), json_array_length(data->'triggers')
FROM events WHERE type = 'monitor_started' ORDER BY seq DESC LIMIT 1
"""

SNAPSHOT_POLICIES = LATEST_BY_HOST.format(types="'snapshot_policy'")

SNAPSHOT_COUNTS = """
WITH taken AS (SELECT DISTINCT host, path, snapshot, kind FROM snapshots WHERE type = 'snapshot_taken'),
pruned AS (SELECT DISTINCT host, path, snapshot, kind FROM snapshots WHERE type = 'snapshot_pruned'),
kept AS (SELECT * FROM taken EXCEPT SELECT * FROM pruned)
SELECT count(*) FILTER (WHERE kind = 'model'), count(*) FILTER (WHERE kind = 'config') FROM kept
"""

WATCHDOGS = """
WITH marks AS (
    SELECT host, data->>'name' AS name, CAST(data->>'tier' AS BIGINT) AS tier, type, seq
    FROM events WHERE type IN ('watchdog_started', 'watchdog_stopped')),
stops AS (SELECT host, max(seq) AS seq FROM events WHERE type = 'system_stopped' GROUP BY host),
latest AS (SELECT host, name, arg_max(type, seq) AS type, arg_max(tier, seq) AS tier,
                  max(seq) AS seq FROM marks GROUP BY host, name)
SELECT count(DISTINCT tier) FROM latest l LEFT JOIN stops s USING (host)
WHERE l.type = 'watchdog_started' AND (s.seq IS NULL OR s.seq < l.seq)
"""

RECENT_FAILURES = """
SELECT (SELECT count(*) FROM results WHERE outcome = 'failed' AND time >= $since)
     + (SELECT count(*) FROM decisions WHERE type = 'verify_failed' AND time >= $since),
       (SELECT count(*) FROM (""" + OPEN_FINDINGS + """) WHERE severity = 'critical')
"""

HAS_EVENTS = "SELECT last_seq, last_event_time FROM projection_state WHERE id = 1"

# ---------------------------------------------------------------- metrics

CHECKS_BY_TRIGGER = "SELECT trigger, outcome, count(*) FROM checks GROUP BY ALL ORDER BY ALL"
ISSUES_BY_TRIGGER = "SELECT trigger, type, count(*) FROM issues GROUP BY ALL ORDER BY ALL"
ACTIONS_BY_OUTCOME = "SELECT action, outcome, count(*) FROM results GROUP BY ALL ORDER BY ALL"
KERNELS_BY_STATE = "SELECT state, count(*) FROM kernels GROUP BY ALL ORDER BY ALL"
STATE = "SELECT last_seq, events, unknown_events, last_event_time, updated_at FROM projection_state"


def iso(t: datetime | None) -> str | None:
    """RFC 3339 UTC with a Z, seconds precision (the seed's form)."""
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def num(x: float | None) -> float | int | None:
    """30.0 -> 30, 0.5 -> 0.5: whole numbers print as integers."""
    if x is None:
        return None
    return int(x) if float(x).is_integer() else round(float(x), 3)


def _active(rows: list[tuple[Any, ...]], started: str) -> list[tuple[Any, ...]]:
    """Hosts whose latest mark is `started` and not followed by a system stop."""
    return [r for r in rows if r[1] == started and (r[4] is None or r[4] < r[2])]


def boot(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """(boot_phase, boot_state): state is one of none, stopped, failed, booting, complete."""
    row = con.execute(BOOT).fetchone()
    if row is None:
        return "unknown", "none"
    type_, phase, name, status = row
    if type_ == "system_stopped":
        return "stopped", "stopped"
    if status == "failed":
        return f"failed:{name}", "failed"
    if status == "completed" and phase >= 7:  # events.BootPhase: phases 1..7
        return "complete", "complete"
    return str(name), "booting"


def dashboard(con: duckdb.DuckDBPyConnection, *, now: datetime, window_s: float) -> dict[str, Any]:
    """The operator dashboard (seed JSON shape) as of `now` (naive UTC)."""
    since = now - timedelta(seconds=window_s)
    boot_phase, boot_state = boot(con)
    k_total, k_running, k_failed, k_degraded, k_critical = con.execute(KERNELS).fetchone()  # type: ignore[misc]
    throttles, attested, deps, vulns = con.execute(SECURITY, {"since": since}).fetchone()  # type: ignore[misc]
    checks, issues, actions, last_run = con.execute(TRIGGERS).fetchone()  # type: ignore[misc]
    monitors = _active(con.execute(MONITORS).fetchall(), "monitor_started")
    mon = con.execute(LATEST_MONITOR_START).fetchone() or (None, None)
    policies = con.execute(SNAPSHOT_POLICIES).fetchall()
    policy = max(policies, key=lambda r: r[2]) if policies else None
    policy_data: dict[str, Any] = {}
    if policy is not None:
        policy_data = json.loads(policy[3])
    models, configs = con.execute(SNAPSHOT_COUNTS).fetchone()  # type: ignore[misc]
    tiers = con.execute(WATCHDOGS).fetchone()[0]  # type: ignore[index]
    recent_failures, critical_open = con.execute(RECENT_FAILURES, {"since": since}).fetchone()  # type: ignore[misc]
    last_seq = con.execute(HAS_EVENTS).fetchone()[0]  # type: ignore[index]

    if boot_state == "failed" or k_critical:
        health = "critical"
    elif k_failed or k_degraded or recent_failures or critical_open:
        health = "degraded"
    else:
        health = "healthy"
    if boot_state in ("stopped", "failed", "booting"):
        system_state = boot_state
    elif boot_state == "none" and not last_seq:
        system_state = "unknown"
    else:
        system_state = "running" if health == "healthy" else "degraded"

    every_s, max_age_s = policy_data.get("every_s"), policy_data.get("max_age_s")
    return {
        "timestamp": iso(now),
        "system_state": system_state,
        "boot_phase": boot_phase,
        "kernels": {"total": k_total, "running": k_running, "failed": k_failed,
                    "degraded": k_degraded},
        "security": {"boot_rate_limiting": throttles > 0, "attested_secrets": attested,
                     "dependencies_tracked": int(deps), "vulnerabilities": vulns},
        "triggers": {
            "total_checks": checks, "issues_detected": issues, "actions_executed": actions,
            "last_run": iso(last_run), "running": bool(monitors), "check_interval": num(mon[0]),
            "issue_counts": dict(con.execute(ISSUE_COUNTS).fetchall()),
            "triggers_monitored": mon[1] or 0,
        },
        "snapshots": {
            "running": bool(_active(policies, "snapshot_policy")),
            "refresh_interval_hours": num(every_s / 3600) if every_s is not None else None,
            "max_age_hours": num(max_age_s / 3600) if max_age_s is not None else None,
            "model_snapshots": models, "config_snapshots": configs,
            "total_snapshots": models + configs,
        },
        "watchdogs": {"tier_count": tiers, "active": tiers > 0},
        "health": health,
    }


def state(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """projection_state as a dict (position, counts, times)."""
    row = con.execute(STATE).fetchone()
    keys = ("last_seq", "events", "unknown_events", "last_event_time", "updated_at")
    return dict(zip(keys, row)) if row else dict.fromkeys(keys)
