"""The projection's tables: one DDL list, the column order the reducer fills.

Times are UTC, stored as TIMESTAMP (no zone). `data`, `finding_key`, `stats`,
`params` and `details` hold JSON text. Bump VERSION when a table changes: a
file of another version is set aside and rebuilt from the log.
"""

from __future__ import annotations

VERSION = 1

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


def ddl() -> list[str]:
    """CREATE statements for every table (idempotent)."""
    out = []
    for name, cols in TABLES.items():
        body = ", ".join(f'"{c}" {t}' for c, t in cols)
        if name == "kernels":
            body += ", PRIMARY KEY (host, kernel, instance)"
        out.append(f"CREATE TABLE IF NOT EXISTS {name} ({body})")
    out.append(STATE_DDL)
    return out
