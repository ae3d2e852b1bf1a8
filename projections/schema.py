"""The projection's tables: one DDL list, the column order the reducer fills.

Times are UTC, stored as TIMESTAMP (no zone). `data`, `finding_key`, `stats`,
`params` and `details` hold JSON text. Bump VERSION when a table changes: a
file of another version is set aside and rebuilt from the log.
"""

from __future__ import annotations

VERSION = 2  # 2: holds, approvals (issue 13)

# table -> [(column, DuckDB type)], in the order the reducer emits rows
TABLES: dict[str, list[tuple[str, str]]] = {
    "events": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("type", "VARCHAR"), ("category", "VARCHAR"),
        ("host", "VARCHAR"), ("subject", "VARCHAR"), ("source", "VARCHAR"), ("id", "VARCHAR"),
        ("data", "JSON"), ("error", "VARCHAR"),
    ],
    "checks": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("trigger", "VARCHAR"),
        ("outcome", "VARCHAR"), ("duration_ms", "DOUBLE"), ("findings", "INTEGER"),
        ("cycle", "BIGINT"), ("error", "VARCHAR"), ("timed_out", "BOOLEAN"), ("stats", "JSON"),
    ],
    "issues": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("type", "VARCHAR"),
        ("trigger", "VARCHAR"), ("severity", "VARCHAR"), ("finding_key", "VARCHAR"),
        ("kernel", "VARCHAR"),
    ],
    "clearances": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("condition", "VARCHAR"),
        ("finding_key", "VARCHAR"), ("active_s", "DOUBLE"),
    ],
    "decisions": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("type", "VARCHAR"),
        ("playbook", "VARCHAR"), ("target", "VARCHAR"), ("command_id", "VARCHAR"),
        ("action", "VARCHAR"), ("reason", "VARCHAR"), ("detail", "VARCHAR"),
    ],
    "commands": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("command_id", "VARCHAR"),
        ("playbook", "VARCHAR"), ("action", "VARCHAR"), ("target", "VARCHAR"), ("route", "VARCHAR"),
        ("reason", "VARCHAR"), ("params", "JSON"),
    ],
    "results": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("outcome", "VARCHAR"),
        ("command_id", "VARCHAR"), ("action", "VARCHAR"), ("target", "VARCHAR"),
        ("playbook", "VARCHAR"), ("duration_ms", "DOUBLE"), ("reason", "VARCHAR"),
        ("details", "JSON"),
    ],
    "snapshots": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("type", "VARCHAR"),
        ("path", "VARCHAR"), ("snapshot", "VARCHAR"), ("kind", "VARCHAR"), ("sha256", "VARCHAR"),
        ("reason", "VARCHAR"),
    ],
    "boot_phases": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("type", "VARCHAR"),
        ("phase", "INTEGER"), ("name", "VARCHAR"), ("status", "VARCHAR"), ("detail", "VARCHAR"),
    ],
    # operator control: one row per hold_added / hold_released (history; current state below)
    "holds": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("type", "VARCHAR"),
        ("hold_id", "VARCHAR"), ("target", "VARCHAR"), ("until", "TIMESTAMP"),
        ("reason", "VARCHAR"), ("by", "VARCHAR"), ("via", "VARCHAR"),
        ("release_reason", "VARCHAR"),
    ],
    # one row per approval_requested / _granted / _denied / _expired (history)
    "approvals": [
        ("seq", "BIGINT"), ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("type", "VARCHAR"),
        ("command_id", "VARCHAR"), ("playbook", "VARCHAR"), ("action", "VARCHAR"),
        ("target", "VARCHAR"), ("by", "VARCHAR"), ("via", "VARCHAR"), ("reason", "VARCHAR"),
        ("expires_at", "TIMESTAMP"), ("params", "JSON"),
    ],
    # current state, one row per (host, kernel, instance): replaced, not appended
    "kernels": [
        ("host", "VARCHAR"), ("kernel", "VARCHAR"), ("instance", "INTEGER"), ("state", "VARCHAR"),
        ("pid", "BIGINT"), ("critical", "BOOLEAN"), ("exit_code", "INTEGER"),
        ("restarts", "INTEGER"), ("last_type", "VARCHAR"), ("last_seq", "BIGINT"),
        ("updated_at", "TIMESTAMP"),
    ],
}

APPEND_TABLES = tuple(t for t in TABLES if t != "kernels")

STATE_DDL = """
CREATE TABLE IF NOT EXISTS projection_state (
    id INTEGER PRIMARY KEY,         -- always 1
    last_seq BIGINT NOT NULL,       -- last GRACE_EVENTS sequence applied
    version INTEGER NOT NULL,       -- projections.schema.VERSION that wrote the rows
    events BIGINT NOT NULL,         -- events applied
    unknown_events BIGINT NOT NULL, -- of which with a type or payload this version cannot read
    last_event_time TIMESTAMP,      -- `time` of the event at last_seq
    updated_at TIMESTAMP NOT NULL   -- wall clock (UTC) of the last commit
)"""


# Current operator state at a time `t` (naive UTC), from the history rows alone: a hold is
# active when it was added by `t`, not released by `t` and its `until` is after `t` (so a hold
# past its end is not active even before its hold_released lands); an approval is pending when
# requested by `t`, not granted, denied or expired by `t`, and `expires_at` is after `t`.
# Table macros (`holds_active_at(t)`, `approvals_pending_at(t)`) for the dashboard and audits;
# views of the same at the reader's clock for people querying the file.
HOLDS_ACTIVE_AT = """
SELECT a.hold_id, a.host, a.target, a."until", a.reason, a."by", a.via, a.time AS added_at, a.seq
FROM holds a
WHERE a.type = 'hold_added' AND a.time <= t AND a."until" > t
  AND NOT EXISTS (SELECT 1 FROM holds r WHERE r.type = 'hold_released'
                  AND r.hold_id = a.hold_id AND r.time <= t)
ORDER BY a."until", a.seq"""

APPROVALS_PENDING_AT = """
SELECT q.command_id, q.host, q.playbook, q.action, q.target, q.params, q.reason,
       q.expires_at, q.time AS requested_at, q.seq
FROM approvals q
WHERE q.type = 'approval_requested' AND q.time <= t AND q.expires_at > t
  AND NOT EXISTS (SELECT 1 FROM approvals d WHERE d.command_id = q.command_id
                  AND d.type IN ('approval_granted', 'approval_denied', 'approval_expired')
                  AND d.time <= t)
ORDER BY q.expires_at, q.seq"""

NOW_UTC = "(now() AT TIME ZONE 'UTC')"

VIEWS = [
    f"CREATE OR REPLACE MACRO holds_active_at(t) AS TABLE {HOLDS_ACTIVE_AT}",
    f"CREATE OR REPLACE MACRO approvals_pending_at(t) AS TABLE {APPROVALS_PENDING_AT}",
    f"CREATE OR REPLACE VIEW holds_active AS SELECT * FROM holds_active_at({NOW_UTC})",
    f"CREATE OR REPLACE VIEW approvals_pending AS SELECT * FROM approvals_pending_at({NOW_UTC})",
]


def ddl() -> list[str]:
    """CREATE statements for every table (idempotent)."""
    out = []
    for name, cols in TABLES.items():
        body = ", ".join(f'"{c}" {t}' for c, t in cols)
        if name == "kernels":
            body += ", PRIMARY KEY (host, kernel, instance)"
        out.append(f"CREATE TABLE IF NOT EXISTS {name} ({body})")
    out.append(STATE_DDL)
    out.extend(VIEWS)
    return out
