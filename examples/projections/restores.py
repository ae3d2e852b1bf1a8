"""Every restore Grace carried out, with the downtime it ended.

A restore is a `restore_model_weights` or `restore_from_snapshot` command that
succeeded; the downtime it ended runs from the first finding that caused it (e.g.
`model_corruption`) to the restore's result. Built from columns: only the events
a batch needs are decoded.

    grace replay --projection examples/projections/restores.py --into restores.duckdb
    duckdb -readonly restores.duckdb "SELECT path, downtime_s FROM restores"
"""

from __future__ import annotations

from typing import Any

from grace import events
from projections.user.api import Batch, Projection

RESTORE_ACTIONS = frozenset({"restore_model_weights", "restore_from_snapshot"})


def apply(batch: Batch) -> dict[str, list[tuple[Any, ...]]]:
    """Findings (by id), restore commands (by cause), successful restore results."""
    findings, commands, done = [], [], []
    for seq, env, data in batch.events():
        if env.type == "command_issued":
            if data.action in RESTORE_ACTIONS:
                path = data.params.get("path", data.target)
                commands.extend((seq, data.command_id, data.action, path, cause)
                                for cause in data.cause_ids)
        elif env.type == "command_succeeded":
            if data.action in RESTORE_ACTIONS:
                done.append((seq, env.time, data.command_id, env.host))
        else:
            findings.append((env.id, env.time, env.type))
    return {"restore_findings": findings, "restore_commands": commands, "restored": done}


PROJECTION = Projection(
    name="restores",
    version=1,
    handles=(*sorted(events.PROBLEM_TYPES), "command_issued", "command_succeeded"),
    tables=[
        "CREATE TABLE restore_findings (id VARCHAR, time TIMESTAMP, type VARCHAR)",
        ("CREATE TABLE restore_commands (seq BIGINT, command_id VARCHAR, action VARCHAR, "
        "path VARCHAR, cause_id VARCHAR)"),
        "CREATE TABLE restored (seq BIGINT, time TIMESTAMP, command_id VARCHAR, host VARCHAR)",
        """CREATE VIEW restores AS
           SELECT r.seq, r.time AS restored_at, r.host, any_value(c.action) AS action,
                  any_value(c.path) AS path, string_agg(DISTINCT f.type, ',') AS finding,
                  min(f.time) AS down_since, epoch(r.time - min(f.time)) AS downtime_s
           FROM restored r
           JOIN restore_commands c ON c.command_id = r.command_id
           LEFT JOIN restore_findings f ON f.id = c.cause_id
           GROUP BY r.seq, r.time, r.host ORDER BY r.seq""",
    ],
    apply=apply,
)
