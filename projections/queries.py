"""Every SQL the dashboard, the metrics and the CLI run over a projection.

`dashboard(con, now=, window_s=)` returns the seed's JSON shape; every number
in it is computed here from the projected log. The derivation rules for the
fields without one obvious source are written out in docs/projections.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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

# The current run: the boot rows from the latest phase 1 on (every `grace up` starts at phase 1),
# with the `system_stopped` that may end it.
BOOT_RUN = """
SELECT type, phase, name, status, detail FROM boot_phases
WHERE seq >= (SELECT coalesce(max(seq), 0) FROM boot_phases WHERE type = 'boot_phase' AND phase = 1)
ORDER BY seq
"""

KERNELS = f"""
WITH open AS ({OPEN_FINDINGS})
SELECT count(*) FILTER (WHERE k.state <> 'stopped') AS total,
       count(*) FILTER (WHERE k.state = 'running') AS running,
       count(*) FILTER (WHERE k.state = 'failed') AS failed,
       count(*) FILTER (WHERE k.state = 'suspended' OR (k.state = 'running' AND EXISTS (
           SELECT 1 FROM open o WHERE o.host = k.host AND o.kernel = k.kernel))) AS degraded,
       count(*) FILTER (WHERE k.state = 'failed' AND k.critical) AS critical_failed,
       count(*) FILTER (WHERE k.state = 'held') AS held
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

# Distinct findings: a (host, type, finding_key) counts once per episode, from its first report
# until its condition_cleared; the monitor re-publishes an active finding every interval, and
# those re-publications are not new findings. An issue row opens an episode when the previous
# row of its key (issues and clearances in log order) is none or a clearance.
FINDINGS = """
WITH timeline AS (
    SELECT host, type, finding_key, seq, trigger, true AS found FROM issues
    UNION ALL
    SELECT host, condition, finding_key, seq, NULL, false FROM clearances),
marked AS (
    SELECT trigger, type, found,
           lag(found) OVER (PARTITION BY host, type, finding_key ORDER BY seq) AS prev
    FROM timeline)
SELECT trigger, type, count(*) FROM marked WHERE found AND prev IS DISTINCT FROM true
GROUP BY ALL ORDER BY ALL
"""

TRIGGERS = """
SELECT (SELECT count(*) FROM checks) AS total_checks,
       (SELECT count(*) FROM issues) AS issues_published,
       (SELECT count(*) FROM results WHERE outcome = 'succeeded') AS actions_executed,
       (SELECT max(time) FROM checks) AS last_run
"""

# Fix tasks: a task (its id in the result of the command that handed it over, e.g.
# escalate_to_coding_agent) is open until a fix_report with its id arrives; then it counts by
# the latest report's outcome. A review_code that reports in its own result (no task id)
# counts by that result's outcome (`findings` = failed). `data` is read as text, so a report
# with an outcome this version's schema does not know is still counted under its name.
FIX_TASKS = """
WITH reports AS (
    SELECT data->>'task_id' AS task_id, arg_max(data->>'outcome', seq) AS state
    FROM events WHERE type = 'fix_report' GROUP BY 1),
opened AS (
    SELECT DISTINCT details->>'task_id' AS task_id FROM results
    WHERE outcome = 'succeeded' AND details->>'task_id' IS NOT NULL),
tasks AS (
    SELECT coalesce(r.state, 'open') AS state
    FROM opened o FULL OUTER JOIN reports r ON r.task_id = o.task_id),
reviews AS (
    SELECT CASE details->>'outcome' WHEN 'findings' THEN 'failed' ELSE details->>'outcome' END
           AS state
    FROM results WHERE action = 'review_code' AND outcome = 'succeeded'
    AND details->>'task_id' IS NULL AND details->>'outcome' IS NOT NULL)
SELECT state, count(*) FROM (SELECT state FROM tasks UNION ALL SELECT state FROM reviews)
GROUP BY state ORDER BY state
"""
FIX_TASK_STATES = ("open", "passed", "failed", "unverified", "error")

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

# Grace's own stages in the current run (from its latest phase 1): restarts by the stage watchdog.
STAGE_RESTARTS = """
WITH run AS (SELECT coalesce(max(seq), 0) AS seq FROM boot_phases WHERE type = 'boot_phase' AND phase = 1)
SELECT e.data->>'stage' AS stage, count(*) AS restarts,
       count(*) FILTER (WHERE e.time >= $loop_since) AS recent,
       arg_max(e.data->>'last_error', e.seq) AS last_error
FROM events e, run WHERE e.type = 'stage_restarted' AND e.seq >= run.seq
GROUP BY stage ORDER BY stage
"""
# A stage restarted this often within the window is crash-looping: the system is degraded.
CRASH_LOOP_RESTARTS = 2
CRASH_LOOP_WINDOW_S = 120.0

RECENT_FAILURES = """
SELECT (SELECT count(*) FROM results WHERE outcome = 'failed' AND time >= $since)
     + (SELECT count(*) FROM decisions WHERE type = 'verify_failed' AND time >= $since),
       (SELECT count(*) FROM (""" + OPEN_FINDINGS + """) WHERE severity = 'critical')
"""

# Operator control at the reading time (the macros are in projections.schema).
HOLDS_ACTIVE = """
SELECT hold_id, host, target, "until", reason, "by", via, added_at FROM holds_active_at($now)
"""
APPROVALS_PENDING = """
SELECT command_id, host, playbook, action, target, params, reason, expires_at, requested_at
FROM approvals_pending_at($now)
"""

HAS_EVENTS = "SELECT last_seq, last_event_time FROM projection_state WHERE id = 1"

# How many monitor intervals without a new event make the dashboard stale. While Grace runs,
# its monitor writes a check result per trigger every interval, so the log never stays still
# for a whole interval; three allow for a slow cycle and the file's publication delay.
STALE_INTERVALS = 3

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


@dataclass
class Boot:
    """The current run's boot, from its boot rows."""

    phase: str  # the seed's `boot_phase` string
    state: str  # none, booting, complete, failed, stopped
    detail: dict[str, Any]  # the dashboard's `boot` object
    halted: bool = False  # a phase failed and monitoring never became active

    @property
    def stopped(self) -> bool:
        """The run ended with system_stopped (a clean stop, or a boot that gave up)."""
        return bool(self.detail["stopped"])

    @property
    def failed(self) -> bool:
        return self.detail.get("failed_phase") is not None


def boot(con: duckdb.DuckDBPyConnection) -> Boot:
    """The current run (from its latest phase 1): a failed phase stays visible after phase 7."""
    rows = con.execute(BOOT_RUN).fetchall()
    phases = [r for r in rows if r[0] == "boot_phase"]
    failed = next((r for r in phases if r[3] == "failed"), None)
    complete = any(r[1] >= 7 and r[3] == "completed" for r in phases)  # events.BootPhase: 1..7
    stopped = bool(rows) and rows[-1][0] == "system_stopped"
    last = phases[-1] if phases else None
    detail: dict[str, Any] = {
        "phase": last[1] if last else None, "name": last[2] if last else None,
        "status": last[3] if last else None,
        "failed_phase": failed[1] if failed else None, "failed_name": failed[2] if failed else None,
        "failed_detail": failed[4] if failed else None}
    if not rows:
        return Boot("unknown", "none", {"state": "none", "stopped": False, **detail})
    if failed:
        phase, state = "failed", "failed"
    elif stopped:
        phase, state = "stopped", "stopped"
    elif complete:
        phase, state = "complete", "complete"
    else:
        phase, state = str(last[2]) if last else "unknown", "booting"
    return Boot(phase, state, {"state": state, "stopped": stopped, **detail},
                halted=failed is not None and not complete)


def fix_tasks(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Fix tasks by state: open until reported, then by the report's outcome."""
    counts = dict(con.execute(FIX_TASKS).fetchall())
    return {k: int(counts.get(k, 0)) for k in FIX_TASK_STATES}


def seconds_left(until: datetime, now: datetime) -> float | int | None:
    return num(round(max(0.0, (until - now).total_seconds()), 1))


def holds(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, Any]:
    """Holds active at `now` (naive UTC): `{active: N, items: [...]}`, ending soonest first."""
    items = [{"hold_id": h, "host": host, "target": target, "until": iso(until),
              "left_s": seconds_left(until, now), "reason": reason, "by": by, "via": via,
              "added_at": iso(added)}
             for h, host, target, until, reason, by, via, added
             in con.execute(HOLDS_ACTIVE, {"now": now}).fetchall()]
    return {"active": len(items), "items": items}


def approvals(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, Any]:
    """Approvals pending at `now` (naive UTC): `{pending: N, items: [...]}`, expiring first."""
    items = [{"command_id": cid, "host": host, "playbook": playbook, "action": action,
              "target": target, "params": json.loads(params) if params else {},
              "reason": reason, "expires_at": iso(expires), "expires_in_s": seconds_left(expires, now),
              "requested_at": iso(requested)}
             for cid, host, playbook, action, target, params, reason, expires, requested
             in con.execute(APPROVALS_PENDING, {"now": now}).fetchall()]
    return {"pending": len(items), "items": items}


def dashboard(con: duckdb.DuckDBPyConnection, *, now: datetime, window_s: float,
              interval_s: float = 30.0) -> dict[str, Any]:
    """The operator dashboard (seed JSON shape, plus as_of/stale/boot/fix_tasks/holds/approvals) as of `now`
    (naive UTC). `interval_s` is the monitor interval to judge staleness by when the log has
    no `monitor_started` (the latest one's `interval_s` wins)."""
    since = now - timedelta(seconds=window_s)
    b = boot(con)
    k_total, k_running, k_failed, k_degraded, k_critical, k_held = con.execute(KERNELS).fetchone()  # type: ignore[misc]
    throttles, attested, deps, vulns = con.execute(SECURITY, {"since": since}).fetchone()  # type: ignore[misc]
    checks, published, actions, last_run = con.execute(TRIGGERS).fetchone()  # type: ignore[misc]
    findings = con.execute(FINDINGS).fetchall()
    issue_counts: dict[str, int] = {}
    for trigger, _type, n in findings:
        issue_counts[trigger] = issue_counts.get(trigger, 0) + int(n)
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
    last_seq, as_of = con.execute(HAS_EVENTS).fetchone()  # type: ignore[misc]
    stages = stage_restarts(con, now, stopped=b.stopped)
    looping = any(s["crash_looping"] for s in stages.values())

    # Stale: the log (as this file knows it) has been still for STALE_INTERVALS monitor
    # intervals, so whatever wrote it, or the projection reading it, is gone. A clean stop
    # is not stale: system_stopped says what happened.
    stale_after_s = STALE_INTERVALS * float(mon[0] or interval_s)
    stale = not b.stopped and (
        as_of is None or (now - as_of).total_seconds() > stale_after_s)

    if stale:
        health = "unknown"
    elif b.halted or k_critical:
        health = "critical"
    elif b.failed or k_failed or k_degraded or recent_failures or critical_open or looping:
        health = "degraded"
    else:
        health = "healthy"
    if b.stopped:
        system_state = "stopped"
    elif stale or not last_seq:
        system_state = "unknown"
    elif b.halted:
        system_state = "failed"
    elif b.state == "booting":
        system_state = "booting"
    else:
        system_state = "running" if health == "healthy" else "degraded"

    every_s, max_age_s = policy_data.get("every_s"), policy_data.get("max_age_s")
    return {
        "timestamp": iso(now),
        "system_state": system_state,
        "boot_phase": b.phase,
        "kernels": {"total": k_total, "running": k_running, "failed": k_failed,
                    "degraded": k_degraded, "held": k_held},
        "security": {"boot_rate_limiting": throttles > 0, "attested_secrets": attested,
                     "dependencies_tracked": int(deps), "vulnerabilities": vulns},
        "triggers": {
            "total_checks": checks, "issues_detected": sum(issue_counts.values()),
            "issues_published": published, "actions_executed": actions,
            "last_run": iso(last_run), "running": bool(monitors), "check_interval": num(mon[0]),
            "issue_counts": dict(sorted(issue_counts.items())),
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
        "as_of": iso(as_of),
        "stale": stale,
        "stale_after_s": num(stale_after_s),
        "boot": b.detail,
        "fix_tasks": fix_tasks(con),
        "holds": holds(con, now),
        "approvals": approvals(con, now),
        "stages": stages,
    }


def stage_restarts(con: duckdb.DuckDBPyConnection, now: datetime, *, stopped: bool = False
                   ) -> dict[str, dict[str, Any]]:
    """Per stage restarted in the current run: `{stage_restarted, crash_looping, last_error}`;
    a stage restarted CRASH_LOOP_RESTARTS times within CRASH_LOOP_WINDOW_S is crash-looping."""
    since = now - timedelta(seconds=CRASH_LOOP_WINDOW_S)
    rows = con.execute(STAGE_RESTARTS, {"loop_since": since}).fetchall()
    return {stage: {"stage_restarted": int(n), "crash_looping": int(recent) >= CRASH_LOOP_RESTARTS
                    and not stopped, "last_error": last_error or ""}
            for stage, n, recent, last_error in rows}


def state(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """projection_state as a dict (position, counts, times)."""
    row = con.execute(STATE).fetchone()
    keys = ("last_seq", "events", "unknown_events", "last_event_time", "updated_at")
    return dict(zip(keys, row, strict=True)) if row else dict.fromkeys(keys)
