"""Mean time to repair per playbook and week.

A repair is a command that succeeded; its time to repair runs from the earliest
finding that caused it to its `command_succeeded`. The function only records the
three kinds of facts; the view `mttr_by_playbook_week` joins them, so no state is
carried between batches.

    grace replay --projection examples/projections/mttr.py --into mttr.duckdb
    duckdb -readonly mttr.duckdb "SELECT * FROM mttr_by_playbook_week"
"""

from __future__ import annotations

from typing import Any

from grace import events
from projections.user.api import Batch, Projection

RESULTS = ("command_succeeded", "command_failed")


def apply(batch: Batch) -> dict[str, list[dict[str, Any]]]:
    """One row per finding, per issued command and per result."""
    findings, commands, results = [], [], []
    for seq, env, data in batch.events():
        if env.type == "command_issued":
            commands.extend({"seq": seq, "time": env.time, "command_id": data.command_id,
                             "playbook": data.playbook, "action": data.action,
                             "target": data.target, "cause_id": cause}
                            for cause in data.cause_ids or [""])
        elif env.type in RESULTS:
            results.append({"seq": seq, "time": env.time, "command_id": data.command_id,
                            "outcome": env.type.removeprefix("command_")})
        else:
            findings.append({"seq": seq, "time": env.time, "id": env.id, "type": env.type,
                             "host": env.host})
    return {"findings": findings, "repair_commands": commands, "repair_results": results}


PROJECTION = Projection(
    name="mttr",
    version=1,
    handles=(*sorted(events.PROBLEM_TYPES), "command_issued", *RESULTS),
    tables=[
        ("CREATE TABLE findings (seq BIGINT, time TIMESTAMP, id VARCHAR, type VARCHAR, "
        "host VARCHAR)"),
        ("CREATE TABLE repair_commands (seq BIGINT, time TIMESTAMP, command_id VARCHAR, "
        "playbook VARCHAR, action VARCHAR, target VARCHAR, cause_id VARCHAR)"),
        ("CREATE TABLE repair_results (seq BIGINT, time TIMESTAMP, command_id VARCHAR, "
        "outcome VARCHAR)"),
        """CREATE VIEW repairs AS
           SELECT c.command_id, any_value(c.playbook) AS playbook, any_value(c.action) AS action,
                  any_value(c.target) AS target, min(f.time) AS detected_at,
                  any_value(r.time) AS repaired_at,
                  epoch(any_value(r.time) - min(f.time)) AS repair_s
           FROM repair_commands c
           JOIN repair_results r ON r.command_id = c.command_id AND r.outcome = 'succeeded'
           JOIN findings f ON f.id = c.cause_id
           GROUP BY c.command_id""",
        """CREATE VIEW mttr_by_playbook_week AS
           SELECT playbook, date_trunc('week', repaired_at) AS week, count(*) AS repairs,
                  avg(repair_s) AS mttr_s, max(repair_s) AS worst_s
           FROM repairs GROUP BY ALL ORDER BY week, playbook""",
    ],
    apply=apply,
)
