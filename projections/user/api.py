"""The user projection API: what a projection file defines, and the batch it is handed.

A Python projection file defines a module-level `PROJECTION`:

    from projections.user.api import Batch, Projection

    def apply(batch: Batch) -> dict[str, object]:
        return {"per_type": [(t, 1) for t in batch.types]}

    PROJECTION = Projection(
        name="per_type", version=1, handles=("command_issued",),
        tables=["CREATE TABLE per_type (type VARCHAR, n BIGINT)"], apply=apply)

`apply` gets one batch of the handled events in stream order and returns, per table,
the rows to append: a pyarrow Table, a list of tuples (in the table's column order) or
a list of dicts (by column name). It must be a pure function of the batch: anything
carried between batches belongs in the projection's tables (a view can join them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeAlias

import msgspec
import pyarrow as pa  # type: ignore[import-untyped]

from grace import events

Frame = tuple[int, str, bytes]  # stream sequence, subject, raw CloudEvents JSON
Rows: TypeAlias = "pa.Table | Sequence[Sequence[Any]] | Sequence[Mapping[str, Any]]"
ApplyFn = Callable[["Batch"], Mapping[str, Rows]]

_envelope = msgspec.json.Decoder(events.Envelope)
_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    name: msgspec.json.Decoder(cls) for name, cls in events.PAYLOAD_CLASSES.items()}

# the columns of the batch table (the dashboard file's `events` table without `error`)
BATCH_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("time", pa.timestamp("us")), ("type", pa.string()),
    ("category", pa.string()), ("host", pa.string()), ("subject", pa.string()),
    ("source", pa.string()), ("id", pa.string()), ("data", pa.json_(pa.string())),
])


def subject_type(subject: str) -> str:
    """`grace.events.<category>.<type>.<host>` -> type ('' if not of that shape)."""
    parts = subject.split(".", 4)
    return parts[3] if len(parts) == 5 else ""


@dataclass
class Projection:
    """A user projection: its name, version, the event types it handles, tables, function.

    `tables`: DuckDB DDL run once on a new file (CREATE TABLE / VIEW / MACRO ...).
    `apply`: batch -> rows per table (Python projections). `statements`: SQL run per
    batch over the table `batch` (SQL projections; may be combined with `apply`).
    A new `version` rebuilds the projection from sequence 1.
    """

    name: str
    version: int
    handles: tuple[str, ...]
    tables: Sequence[str]
    apply: ApplyFn | None = None
    statements: Sequence[str] = ()
    source: str = field(default="", compare=False)  # the file it was loaded from


class Batch:
    """Handled events of one stretch of the log, as columns; decoded only when asked."""

    def __init__(self, frames: Sequence[Frame]) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    @cached_property
    def seqs(self) -> list[int]:
        """Stream sequence of each event."""
        return [f[0] for f in self.frames]

    @cached_property
    def types(self) -> list[str]:
        """Event type of each event (from its subject: no decoding)."""
        return [subject_type(f[1]) for f in self.frames]

    @cached_property
    def envelopes(self) -> list[events.Envelope]:
        """The CloudEvents envelope of each event (`data` still raw JSON)."""
        decode = _envelope.decode
        return [decode(f[2]) for f in self.frames]

    def events(self) -> Iterator[tuple[int, events.Envelope, Any]]:
        """(sequence, envelope, typed payload) of each event, payload decoded by its type."""
        for (seq, _, _), env in zip(self.frames, self.envelopes, strict=True):
            yield seq, env, _DECODERS[env.type].decode(env.data)

    def table(self) -> pa.Table:
        """The batch as an Arrow table with the `events` columns (what SQL projections read)."""
        envs = self.envelopes
        times: list[datetime] = [_naive(e.time) for e in envs]
        cols = [self.seqs, times, [e.type for e in envs],
                [_category(f[1]) for f in self.frames], [e.host for e in envs],
                [e.subject for e in envs], [e.source for e in envs], [e.id for e in envs],
                [bytes(e.data).decode() for e in envs]]
        return pa.Table.from_arrays(
            [pa.array(c, f.type) for c, f in zip(cols, BATCH_SCHEMA, strict=True)],
            schema=BATCH_SCHEMA)


def _category(subject: str) -> str:
    parts = subject.split(".", 4)
    return parts[2] if len(parts) == 5 else ""


def _naive(t: datetime) -> datetime:
    """UTC without zone (the TIMESTAMP columns' convention)."""
    return t if t.tzinfo is None else t.astimezone(UTC).replace(tzinfo=None)
