"""One row type per projection table: a tuple whose items are the table's columns in order.

Each type names its columns (`Annotated[type, "column"]`), and a test holds names,
order and types equal to `schema.TABLES`; mypy checks every row the reducer
builds against its table's type (length and the type of each item). Rows are
plain tuples because a replay builds millions: a tuple is built ~2x faster than
a msgspec Struct, and `zip(*rows)` turns a batch into columns ~2x faster than
reading each column by name (measured here). JSON columns hold JSON text (the
`events.data` column the raw bytes of the log).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Annotated, Any

EventRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime | None, "time"],
    Annotated[str | None, "type"],
    Annotated[str, "category"],
    Annotated[str | None, "host"],
    Annotated[str | None, "subject"],
    Annotated[str | None, "source"],
    Annotated[str | None, "id"],
    Annotated[bytes | None, "data"],
    Annotated[str | None, "error"],
]
"""A row of `events`."""

CheckRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "trigger"],
    Annotated[str, "outcome"],
    Annotated[float, "duration_ms"],
    Annotated[int, "findings"],
    Annotated[int, "cycle"],
    Annotated[str | None, "error"],
    Annotated[bool, "timed_out"],
    Annotated[str, "stats"],
]
"""A row of `checks`."""

IssueRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "type"],
    Annotated[str, "trigger"],
    Annotated[str, "severity"],
    Annotated[str, "finding_key"],
    Annotated[str | None, "kernel"],
]
"""A row of `issues`."""

ClearanceRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "condition"],
    Annotated[str, "finding_key"],
    Annotated[float | None, "active_s"],
]
"""A row of `clearances`."""

DecisionRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "type"],
    Annotated[str, "playbook"],
    Annotated[str, "target"],
    Annotated[str | None, "command_id"],
    Annotated[str | None, "action"],
    Annotated[str | None, "reason"],
    Annotated[str | None, "detail"],
]
"""A row of `decisions`."""

CommandRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "command_id"],
    Annotated[str, "playbook"],
    Annotated[str, "action"],
    Annotated[str, "target"],
    Annotated[str, "route"],
    Annotated[str, "reason"],
    Annotated[str, "params"],
]
"""A row of `commands`."""

ResultRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "outcome"],
    Annotated[str, "command_id"],
    Annotated[str, "action"],
    Annotated[str, "target"],
    Annotated[str, "playbook"],
    Annotated[float, "duration_ms"],
    Annotated[str | None, "reason"],
    Annotated[str, "details"],
]
"""A row of `results`."""

SnapshotRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "type"],
    Annotated[str, "path"],
    Annotated[str | None, "snapshot"],
    Annotated[str | None, "kind"],
    Annotated[str | None, "sha256"],
    Annotated[str | None, "reason"],
]
"""A row of `snapshots`."""

BootPhaseRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "type"],
    Annotated[int | None, "phase"],
    Annotated[str, "name"],
    Annotated[str, "status"],
    Annotated[str, "detail"],
]
"""A row of `boot_phases`."""

HoldRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "type"],
    Annotated[str, "hold_id"],
    Annotated[str, "target"],
    Annotated[datetime | None, "until"],
    Annotated[str | None, "reason"],
    Annotated[str, "by"],
    Annotated[str, "via"],
    Annotated[str | None, "release_reason"],
]
"""A row of `holds`."""

ApprovalRow = tuple[
    Annotated[int, "seq"],
    Annotated[datetime, "time"],
    Annotated[str, "host"],
    Annotated[str, "type"],
    Annotated[str, "command_id"],
    Annotated[str | None, "playbook"],
    Annotated[str | None, "action"],
    Annotated[str | None, "target"],
    Annotated[str | None, "by"],
    Annotated[str | None, "via"],
    Annotated[str | None, "reason"],
    Annotated[datetime | None, "expires_at"],
    Annotated[str | None, "params"],
]
"""A row of `approvals`."""

KernelRow = tuple[
    Annotated[str, "host"],
    Annotated[str, "kernel"],
    Annotated[int, "instance"],
    Annotated[str, "state"],
    Annotated[int | None, "pid"],
    Annotated[bool, "critical"],
    Annotated[int | None, "exit_code"],
    Annotated[int, "restarts"],
    Annotated[str, "last_type"],
    Annotated[int, "last_seq"],
    Annotated[datetime | None, "updated_at"],
]
"""A row of `kernels`."""

ROW_TYPES: dict[str, Any] = {
    "events": EventRow, "checks": CheckRow, "issues": IssueRow, "clearances": ClearanceRow,
    "decisions": DecisionRow, "commands": CommandRow, "results": ResultRow,
    "snapshots": SnapshotRow, "boot_phases": BootPhaseRow, "holds": HoldRow,
    "approvals": ApprovalRow, "kernels": KernelRow}


@dataclass(slots=True)
class Tables:
    """The rows of one batch: a typed list per table, named as the table."""

    events: list[EventRow] = field(default_factory=list)
    checks: list[CheckRow] = field(default_factory=list)
    issues: list[IssueRow] = field(default_factory=list)
    clearances: list[ClearanceRow] = field(default_factory=list)
    decisions: list[DecisionRow] = field(default_factory=list)
    commands: list[CommandRow] = field(default_factory=list)
    results: list[ResultRow] = field(default_factory=list)
    snapshots: list[SnapshotRow] = field(default_factory=list)
    boot_phases: list[BootPhaseRow] = field(default_factory=list)
    holds: list[HoldRow] = field(default_factory=list)
    approvals: list[ApprovalRow] = field(default_factory=list)
    kernels: list[KernelRow] = field(default_factory=list)

    def __getitem__(self, table: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = getattr(self, table)
        return rows

    def items(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """(table, rows) of every table, in schema order."""
        return [(name, getattr(self, name)) for name in TABLE_NAMES]


TABLE_NAMES = tuple(f.name for f in fields(Tables))


def named(table: str, row: tuple[Any, ...]) -> dict[str, Any]:
    """`row` of `table` as {column: value} (for tests and debugging, not the hot path)."""
    return dict(zip(column_names(ROW_TYPES[table]), row, strict=True))


def column_names(row_type: Any) -> list[str]:
    """The column names a row type declares, in order."""
    return [a.__metadata__[0] for a in row_type.__args__]
