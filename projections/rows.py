"""One typed row per projection table, its fields the table's columns in schema order.

The reducer builds rows by field name; `store.to_arrow` reads them back in field
order, which a test holds equal to `schema.TABLES`. Rows are frozen msgspec
Structs without GC tracking: they hold only numbers, text, bytes and times, and
build by keyword as fast as a plain tuple does (a replay builds millions).
JSON columns hold JSON text (the `events.data` column the raw bytes of the log).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import msgspec


class Row(msgspec.Struct, frozen=True, gc=False):
    """A row of the table named TABLE."""

    TABLE: ClassVar[str]


class EventRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "events"
    seq: int
    time: datetime | None
    type: str | None
    category: str
    host: str | None
    subject: str | None
    source: str | None
    id: str | None
    data: bytes | None
    error: str | None


class CheckRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "checks"
    seq: int
    time: datetime
    host: str
    trigger: str
    outcome: str
    duration_ms: float
    findings: int
    cycle: int
    error: str | None
    timed_out: bool
    stats: str


class IssueRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "issues"
    seq: int
    time: datetime
    host: str
    type: str
    trigger: str
    severity: str
    finding_key: str
    kernel: str | None


class ClearanceRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "clearances"
    seq: int
    time: datetime
    host: str
    condition: str
    finding_key: str
    active_s: float | None


class DecisionRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "decisions"
    seq: int
    time: datetime
    host: str
    type: str
    playbook: str
    target: str
    command_id: str | None
    action: str | None
    reason: str | None
    detail: str | None


class CommandRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "commands"
    seq: int
    time: datetime
    host: str
    command_id: str
    playbook: str
    action: str
    target: str
    route: str
    reason: str
    params: str


class ResultRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "results"
    seq: int
    time: datetime
    host: str
    outcome: str
    command_id: str
    action: str
    target: str
    playbook: str
    duration_ms: float
    reason: str | None
    details: str


class SnapshotRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "snapshots"
    seq: int
    time: datetime
    host: str
    type: str
    path: str
    snapshot: str | None
    kind: str | None
    sha256: str | None
    reason: str | None


class BootPhaseRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "boot_phases"
    seq: int
    time: datetime
    host: str
    type: str
    phase: int | None
    name: str
    status: str
    detail: str


class HoldRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "holds"
    seq: int
    time: datetime
    host: str
    type: str
    hold_id: str
    target: str
    until: datetime | None
    reason: str | None
    by: str
    via: str
    release_reason: str | None


class ApprovalRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "approvals"
    seq: int
    time: datetime
    host: str
    type: str
    command_id: str
    playbook: str | None
    action: str | None
    target: str | None
    by: str | None
    via: str | None
    reason: str | None
    expires_at: datetime | None
    params: str | None


class KernelRow(Row, frozen=True, gc=False):
    TABLE: ClassVar[str] = "kernels"
    host: str
    kernel: str
    instance: int
    state: str
    pid: int | None
    critical: bool
    exit_code: int | None
    restarts: int
    last_type: str
    last_seq: int
    updated_at: datetime | None


ROW_TYPES: dict[str, type[Row]] = {cls.TABLE: cls for cls in (
    EventRow, CheckRow, IssueRow, ClearanceRow, DecisionRow, CommandRow, ResultRow, SnapshotRow,
    BootPhaseRow, HoldRow, ApprovalRow, KernelRow)}
