"""The console's SQL over the projection: incident chains, playbooks, snapshots, kernels, stages.

An incident is one decision a playbook took on a finding: a command issued, a suppression (with
its reason), an observe-mode decision, or an approval request (one row for the request and the
command it led to). Its chain is linked by the ids the events carry: the decision's `cause_ids`
name the finding events, its `command_id` names the command, the result and the verification.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from projections.queries import iso, num

# Outcome of a decision row: acted / suppressed / observed / awaiting_approval / denied / expired.
INCIDENTS = """
WITH d AS (
    SELECT d.seq, d.time, d.host, d.type, d.playbook, d.target, d.command_id, d.action,
           d.reason, e.data->>'$.cause_ids[0]' AS cause_id
    FROM decisions d JOIN events e ON e.seq = d.seq
    WHERE d.type IN ('command_issued', 'decision_suppressed', 'decision_observed',
                     'approval_requested')
      AND NOT (d.type = 'command_issued' AND d.command_id IN (
               SELECT command_id FROM approvals WHERE type = 'approval_requested'))),
appr AS (
    SELECT command_id, arg_min(type, seq) AS type, arg_min("by", seq) AS "by",
           arg_min(reason, seq) AS reason
    FROM approvals WHERE type IN ('approval_granted', 'approval_denied', 'approval_expired')
    GROUP BY command_id),
res AS (
    SELECT command_id, arg_max(outcome, seq) AS outcome, arg_max(seq, seq) AS seq,
           arg_max(duration_ms, seq) AS duration_ms, arg_max(reason, seq) AS reason
    FROM results GROUP BY command_id),
ver AS (
    SELECT command_id, arg_max(type, seq) AS type, max(seq) AS seq
    FROM decisions WHERE type IN ('verify_passed', 'verify_failed') GROUP BY command_id),
rows AS (
    SELECT d.*,
           CASE d.type
             WHEN 'command_issued' THEN 'acted'
             WHEN 'decision_suppressed' THEN 'suppressed'
             WHEN 'decision_observed' THEN 'observed'
             ELSE CASE a.type WHEN 'approval_granted' THEN 'acted'
                              WHEN 'approval_denied' THEN 'denied'
                              WHEN 'approval_expired' THEN 'expired'
                              ELSE CASE WHEN q.expires_at > $now THEN 'awaiting_approval'
                                        ELSE 'expired' END END
           END AS outcome,
           a."by" AS decided_by, r.outcome AS result, r.duration_ms, r.reason AS result_reason,
           v.type AS verification
    FROM d
    LEFT JOIN appr a ON a.command_id = d.command_id
    LEFT JOIN approvals q ON q.command_id = d.command_id AND q.type = 'approval_requested'
    LEFT JOIN res r ON r.command_id = d.command_id
    LEFT JOIN ver v ON v.command_id = d.command_id),
page AS (
    SELECT * FROM rows
    WHERE ($host IS NULL OR host = $host) AND ($playbook IS NULL OR playbook = $playbook)
      AND ($outcome IS NULL OR outcome = $outcome) AND ($before IS NULL OR seq < $before)
    ORDER BY seq DESC LIMIT $limit)
-- the findings last: only the page's rows look their cause up in the whole log
SELECT p.seq, p.time, p.host, p.type, p.playbook, p.target, p.command_id, p.action, p.reason,
       f.type AS finding, f.seq AS finding_seq, p.outcome, p.decided_by, p.result, p.duration_ms,
       p.result_reason, p.verification
FROM page p LEFT JOIN (SELECT id, type, seq FROM events
                       WHERE id IN (SELECT cause_id FROM page)) f ON f.id = p.cause_id
ORDER BY p.seq DESC
"""
INCIDENT_KEYS = ("seq", "time", "host", "decision", "playbook", "target", "command_id", "action",
                 "reason", "finding", "finding_seq", "outcome", "decided_by", "result",
                 "duration_ms", "result_reason", "verification")
OUTCOMES = ("acted", "suppressed", "observed", "awaiting_approval", "denied", "expired")

DECISION = "SELECT command_id, data->'cause_ids' FROM decisions d JOIN events e USING (seq) WHERE seq = $seq"

# every event of a chain: its findings (by id), and all that names its command id
CHAIN = """
SELECT seq, time, type, category, host, source, id, data FROM events
WHERE seq = $seq OR id IN (SELECT unnest(CAST($causes AS VARCHAR[])))
   OR ($cid IS NOT NULL AND seq IN (
        SELECT seq FROM decisions WHERE command_id = $cid
        UNION ALL SELECT seq FROM commands WHERE command_id = $cid
        UNION ALL SELECT seq FROM results WHERE command_id = $cid
        UNION ALL SELECT seq FROM approvals WHERE command_id = $cid))
   OR ($cid IS NOT NULL AND type IN ('fix_task', 'fix_report') AND data->>'command_id' = $cid)
ORDER BY seq
"""

PLAYBOOKS = """
SELECT playbook, target,
       count(*) FILTER (WHERE type = 'command_issued') AS fired,
       count(*) FILTER (WHERE type = 'decision_observed') AS observed,
       count(*) FILTER (WHERE type = 'decision_suppressed') AS suppressed,
       count(*) FILTER (WHERE type = 'verify_failed') AS verify_failed,
       count(*) FILTER (WHERE type = 'verify_passed') AS verify_passed,
       max(time) FILTER (WHERE type = 'command_issued') AS last_fired,
       arg_max(reason, seq) FILTER (WHERE type = 'decision_suppressed') AS last_suppressed
FROM decisions WHERE playbook IS NOT NULL GROUP BY playbook, target ORDER BY playbook, target
"""
# Budget left and cooldown until, per playbook and target, from the limits each decision
# recorded and the acts that count (issued or observed, the first action, no escalation): the
# processor's budget and cooldown gates judge by exactly these.
LIMITS = """
WITH acts AS (
    SELECT d.playbook, d.target, d.seq, d.time,
           CAST(e.data->>'$.budget_max' AS BIGINT) AS budget_max,
           CAST(e.data->>'$.budget_per_s' AS DOUBLE) AS budget_per_s,
           CAST(e.data->>'$.cooldown_s' AS DOUBLE) AS cooldown_s
    FROM decisions d JOIN events e ON e.seq = d.seq
    WHERE d.type IN ('command_issued', 'decision_observed')
      AND NOT coalesce(CAST(e.data->>'$.escalation' AS BOOLEAN), false)
      AND coalesce(CAST(e.data->>'$.index' AS BIGINT), 0) = 0),
latest AS (
    SELECT playbook, target, max(time) AS last_act,
           arg_max({'max': budget_max, 'per': budget_per_s, 'cooldown': cooldown_s}, seq) AS lim
    FROM acts GROUP BY playbook, target)
SELECT l.playbook, l.target, l.lim.max, l.lim.per, l.lim.cooldown,
       CASE WHEN l.lim.max IS NOT NULL AND l.lim.per IS NOT NULL
            THEN greatest(0, l.lim.max - (
                SELECT count(*) FROM acts a WHERE a.playbook = l.playbook
                  AND a.target = l.target AND a.time > $now - to_microseconds(
                      CAST(l.lim.per * 1e6 AS BIGINT)))) END AS budget_left,
       CASE WHEN l.lim.cooldown IS NOT NULL AND l.last_act + to_microseconds(
                 CAST(l.lim.cooldown * 1e6 AS BIGINT)) > $now
            THEN l.last_act + to_microseconds(CAST(l.lim.cooldown * 1e6 AS BIGINT)) END
FROM latest l
"""
SUPPRESSED_BY_REASON = """
SELECT playbook, target, reason, count(*) FROM decisions
WHERE type = 'decision_suppressed' GROUP BY ALL ORDER BY ALL
"""

SNAPSHOTS = """
WITH s AS (SELECT * FROM snapshots WHERE path IS NOT NULL AND type <> 'snapshot_policy')
SELECT host, path, arg_max(kind, seq) AS kind,
       max(time) FILTER (WHERE type IN ('snapshot_taken', 'snapshot_accepted')) AS last_good,
       arg_max(snapshot, seq) FILTER (WHERE type = 'snapshot_taken') AS last_snapshot,
       arg_max(sha256, seq) FILTER (WHERE type IN ('snapshot_taken', 'snapshot_accepted')) AS sha256,
       count(*) FILTER (WHERE type = 'snapshot_taken') AS taken,
       count(*) FILTER (WHERE type = 'snapshot_pruned') AS pruned,
       count(*) FILTER (WHERE type = 'snapshot_refused') AS refused,
       count(*) FILTER (WHERE type = 'snapshot_restored') AS restores,
       max(time) FILTER (WHERE type = 'snapshot_restored') AS last_restore
FROM s GROUP BY host, path ORDER BY host, path
"""

# RSS per instance: the newest resource_pressure run of the kernel's host samples every
# instance it can see, as stats `rss_mb.<kernel>` (instance 0) and `rss_mb.<kernel>.<i>`; an
# instance absent from that run (no pid, gone) has no RSS: unknown, never an older figure.
KERNELS = """
WITH rss AS (
    SELECT host, arg_max(stats, seq) AS stats, max(time) AS at FROM checks
    WHERE trigger = 'resource_pressure' AND outcome IN ('ok', 'findings') GROUP BY host)
SELECT k.host, k.kernel, k.instance, k.state, k.pid, k.critical, k.exit_code, k.restarts,
       k.last_type, k.updated_at,
       CAST(json_extract(r.stats, '$."rss_mb.' || k.kernel ||
            CASE WHEN k.instance = 0 THEN '' ELSE '.' || k.instance END || '"') AS DOUBLE),
       r.at
FROM kernels k LEFT JOIN rss r ON r.host = k.host
ORDER BY k.host, k.kernel, k.instance
"""

# A stage is alive as far as the log shows while it keeps writing: the newest event of each
# source (grace/<host>/<component>), with the log's newest time to judge against.
STAGES = """
SELECT source, host, max(time) AS last_event, count(*) AS events,
       (SELECT max(time) FROM events) AS newest
FROM events GROUP BY source, host ORDER BY source
"""
STAGE_GAPS = """
SELECT data->>'stage', arg_max(type, seq), max(time) FROM events
WHERE type IN ('stage_heartbeat_gap', 'stage_restarted') GROUP BY 1
"""

OPEN_TASKS = """
WITH reports AS (SELECT DISTINCT data->>'task_id' AS task_id FROM events WHERE type = 'fix_report')
SELECT r.details->>'task_id', r.command_id, r.action, r.target, r.playbook, r.time, r.host
FROM results r
WHERE r.outcome = 'succeeded' AND r.details->>'task_id' IS NOT NULL
  AND r.details->>'task_id' NOT IN (SELECT task_id FROM reports WHERE task_id IS NOT NULL)
ORDER BY r.seq DESC
"""

OPERATOR_EVENTS = """
SELECT seq, time, type, host, source, id, data FROM events
WHERE type IN ('hold_added', 'hold_released', 'approval_requested', 'approval_granted',
               'approval_denied', 'approval_expired') ORDER BY seq
"""

PLAYBOOK_NAMES = "SELECT DISTINCT playbook FROM decisions WHERE playbook IS NOT NULL"


def _row(keys: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in zip(keys, row, strict=True):
        out[k] = iso(v) if isinstance(v, datetime) else num(v) if isinstance(v, float) else v
    return out


def incidents(con: duckdb.DuckDBPyConnection, *, now: datetime, host: str | None = None,
              playbook: str | None = None, outcome: str | None = None, before: int | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    """Incident rows, newest first, filtered."""
    rows = con.execute(INCIDENTS, {"now": now, "host": host, "playbook": playbook,
                                   "outcome": outcome, "before": before, "limit": limit}).fetchall()
    return [_row(INCIDENT_KEYS, r) for r in rows]


def chain(con: duckdb.DuckDBPyConnection, seq: int) -> list[dict[str, Any]] | None:
    """Every event of the incident whose decision is at log sequence `seq`, in log order;
    None when `seq` is no decision."""
    found = con.execute(DECISION, {"seq": seq}).fetchone()
    if found is None:
        return None
    cid, causes = found
    events = con.execute(CHAIN, {"seq": seq, "cid": cid,
                                 "causes": json.loads(causes) if causes else []}).fetchall()
    return [{"seq": s, "time": iso(t), "type": ty, "category": cat, "host": h, "source": src,
             "id": i, "data": json.loads(d) if d else None}
            for s, t, ty, cat, h, src, i, d in events]


def playbooks(con: duckdb.DuckDBPyConnection, now: datetime) -> list[dict[str, Any]]:
    """Per playbook and target: fired, observed, suppressed (by reason), verifications, and
    as of `now` the budget left and the end of a running cooldown (null: none)."""
    reasons: dict[tuple[str, str], dict[str, int]] = {}
    for pb, target, reason, n in con.execute(SUPPRESSED_BY_REASON).fetchall():
        reasons.setdefault((pb, target), {})[reason] = int(n)
    limit_keys = ("budget_max", "budget_per_s", "cooldown_s", "budget_left", "cooldown_until")
    limits = {(r[0], r[1]): _row(limit_keys, r[2:])
              for r in con.execute(LIMITS, {"now": now}).fetchall()}
    none = dict.fromkeys(limit_keys)
    keys = ("playbook", "target", "fired", "observed", "suppressed", "verify_failed",
            "verify_passed", "last_fired", "last_suppressed")
    out = []
    for r in con.execute(PLAYBOOKS).fetchall():
        item = _row(keys, r)
        item["suppressed_by_reason"] = reasons.get((r[0], r[1]), {})
        item.update(limits.get((r[0], r[1]), none))
        out.append(item)
    return out


def snapshots(con: duckdb.DuckDBPyConnection, now: datetime) -> list[dict[str, Any]]:
    """Per protected file: its last good snapshot, that snapshot's age, restores."""
    keys = ("host", "path", "kind", "last_good", "last_snapshot", "sha256", "taken", "pruned",
            "refused", "restores", "last_restore")
    out = []
    for r in con.execute(SNAPSHOTS).fetchall():
        item = _row(keys, r)
        item["age_s"] = num(round((now - r[3]).total_seconds(), 1)) if r[3] is not None else None
        out.append(item)
    return out


def kernels(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per kernel instance: its state from the log, and its RSS as the newest resource check
    of its host measured it (`rss_mb` null: not measured)."""
    keys = ("host", "kernel", "instance", "state", "pid", "critical", "exit_code", "restarts",
            "last_type", "updated_at", "rss_mb", "rss_at")
    out = []
    for r in con.execute(KERNELS).fetchall():
        item = _row(keys, r)
        if item["rss_mb"] is None:
            item["rss_at"] = None
        out.append(item)
    return out


def stages(con: duckdb.DuckDBPyConnection, now: datetime) -> list[dict[str, Any]]:
    """Each writer of the log (by source) with its newest event and that event's age."""
    gaps = {s: (t, iso(when)) for s, t, when in con.execute(STAGE_GAPS).fetchall()}
    out = []
    for source, host, last, n, _newest in con.execute(STAGES).fetchall():
        component = source.rsplit("/", 1)[-1]
        gap = gaps.get(component)
        out.append({"source": source, "host": host, "component": component,
                    "last_event": iso(last), "age_s": num(round((now - last).total_seconds(), 1)),
                    "events": int(n), "last_trouble": gap[0] if gap else None,
                    "last_trouble_at": gap[1] if gap else None})
    return out


def open_tasks(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    keys = ("task_id", "command_id", "action", "target", "playbook", "time", "host")
    return [_row(keys, r) for r in con.execute(OPEN_TASKS).fetchall()]


def operator_events(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(OPERATOR_EVENTS).fetchall()


def playbook_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(r[0] for r in con.execute(PLAYBOOK_NAMES).fetchall())
