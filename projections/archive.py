"""The log's Parquet archive: writing segment files and their manifests.

A segment holds the events of GRACE_EVENTS whose stream time falls in one `archive.segment`
period, as `events-<first seq>.parquet` (zstd) with `events-<first seq>.json` beside it (the
manifest: counts, first/last sequence, time range, sha256 of the Parquet file). A segment is
written once (temp file, fsync, rename) and never changed; consecutive segments continue each
other's sequences exactly. The manifest is written last: a Parquet file without one is the
trace of a crash between the two renames, and `complete_orphans` writes its manifest from it.
Manifests, verification and reading are projections.archive_read (no pyarrow), re-exported here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from grace.events import Envelope
from projections.archive_read import (
    PREFIX,
    ArchiveError,
    Manifest,
    check_segment,
    last_seq,
    manifests,
    problems,
    read_batches,
    segment_name,
    sha256_of,
)

__all__ = ["PREFIX", "ArchiveError", "Item", "Manifest", "SegmentWriter", "check_segment",
           "complete_orphans", "last_seq", "manifests", "problems", "read_batches",
           "segment_name", "sha256_of", "write_segment"]

ROW_GROUP = 20_000  # rows a reader decompresses at a time: ~10 MB of raw events

# the stream's sequence, time and subject, every envelope field, the data as JSON text and the
# raw bytes as stored (a replay from the archive is byte-exact); times are UTC without a zone,
# as in the dashboard file
SCHEMA = pa.schema([
    ("seq", pa.int64()), ("stream_time", pa.timestamp("us")),
    ("stream_subject", pa.string()), ("specversion", pa.string()), ("id", pa.string()),
    ("source", pa.string()), ("type", pa.string()), ("time", pa.timestamp("us")),
    ("subject", pa.string()), ("host", pa.string()), ("data", pa.string()),
    ("raw", pa.binary()),
])

_envelope = msgspec.json.Decoder(Envelope)


@dataclass
class Item:
    """One message of the log, as the archiver reads it."""

    seq: int
    stream_time_ns: int
    subject: str
    raw: bytes


def _table(items: list[Item]) -> pa.Table:
    envs: list[Envelope | None] = []
    for it in items:
        try:
            envs.append(_envelope.decode(it.raw))
        except (msgspec.ValidationError, msgspec.DecodeError):
            envs.append(None)  # kept whole in `raw`; GRACE_EVENTS holds validated events

    def col(name: str) -> list[object]:
        return [getattr(e, name) if e is not None else None for e in envs]

    return pa.table({
        "seq": [it.seq for it in items],
        "stream_time": pa.array([it.stream_time_ns // 1000 for it in items], pa.int64()).cast(
            pa.timestamp("us")),
        "stream_subject": [it.subject for it in items],
        "specversion": col("specversion"), "id": col("id"), "source": col("source"),
        "type": col("type"),
        "time": pa.array(col("time"), pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us")),
        "subject": col("subject"), "host": col("host"),
        "data": [bytes(e.data).decode() if e is not None else None for e in envs],
        "raw": pa.array([it.raw for it in items], pa.binary()),
    }, schema=SCHEMA)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_manifest(folder: Path, m: Manifest) -> None:
    dest = folder / f"{Path(m.file).stem}.json"
    tmp = dest.with_name(dest.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(m)) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    _fsync_dir(folder)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(ns: int) -> datetime:
    """Unix ns as a UTC time, to the microsecond the Parquet file keeps (truncated, exact)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


class SegmentWriter:
    """One segment being written: each ROW_GROUP events go to a temp file as they come, so a
    busy period never waits in memory; `close` makes it a segment, `abort` drops it."""

    def __init__(self, folder: Path, first_seq: int, period_start_ns: int, period_end_ns: int
                 ) -> None:
        self.folder, self.period = folder, (period_start_ns, period_end_ns)
        self.dest = folder / f"{segment_name(first_seq)}.parquet"
        if self.dest.exists() or self.dest.with_suffix(".json").exists():
            raise ArchiveError(f"segment {self.dest} exists already; a segment is never "
                               "rewritten. The archive and the stream disagree: run `grace "
                               "archive verify`")
        self.tmp = self.dest.with_name(self.dest.name + ".tmp")
        self.writer = pq.ParquetWriter(self.tmp, SCHEMA, compression="zstd")
        self.pending: list[Item] = []
        self.first: Item | None = None
        self.last: Item | None = None
        self.events = 0

    def add(self, item: Item) -> bool:
        """Take one event; True when a row group is ready for `write_pending`."""
        self.pending.append(item)
        return len(self.pending) >= ROW_GROUP

    def write_pending(self) -> None:
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        self.writer.write_table(_table(rows), row_group_size=ROW_GROUP)
        self.first = self.first or rows[0]
        self.last, self.events = rows[-1], self.events + len(rows)

    def close(self) -> Manifest:
        """Finish the file, fsync, rename it into place, then write its manifest."""
        self.write_pending()
        self.writer.close()
        assert self.first is not None and self.last is not None, "a segment holds events"
        with self.tmp.open("rb+") as f:
            os.fsync(f.fileno())
        m = Manifest(file=self.dest.name, events=self.events, first_seq=self.first.seq,
                     last_seq=self.last.seq, first_time=_ts(self.first.stream_time_ns),
                     last_time=_ts(self.last.stream_time_ns), period_start=_ts(self.period[0]),
                     period_end=_ts(self.period[1]), bytes=self.tmp.stat().st_size,
                     sha256=sha256_of(self.tmp))
        os.replace(self.tmp, self.dest)
        _fsync_dir(self.folder)
        _write_manifest(self.folder, m)
        return m

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


def write_segment(folder: Path, items: list[Item], period_start_ns: int, period_end_ns: int
                  ) -> Manifest:
    """Write `items` (consecutive sequences, one period) as a new segment; never overwrite."""
    w = SegmentWriter(folder, items[0].seq, period_start_ns, period_end_ns)
    for it in items:
        if w.add(it):
            w.write_pending()
    return w.close()


def complete_orphans(folder: Path, segment_ns: int) -> list[Manifest]:
    """Write the manifest of each Parquet file a crash left without one (the file is kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    for p in sorted(folder.glob(f"{PREFIX}*.parquet")):
        if p.with_suffix(".json").exists():
            continue
        t = pq.read_table(p, columns=["seq", "stream_time"])
        seqs = t.column("seq").to_pylist()
        times = t.column("stream_time").cast(pa.int64()).to_pylist()
        start = times[0] * 1000 // segment_ns * segment_ns
        m = Manifest(file=p.name, events=len(seqs), first_seq=seqs[0], last_seq=seqs[-1],
                     first_time=_ts(times[0] * 1000), last_time=_ts(times[-1] * 1000),
                     period_start=_ts(start), period_end=_ts(start + segment_ns),
                     bytes=p.stat().st_size, sha256=sha256_of(p))
        _write_manifest(folder, m)
        done.append(m)
    for tmp in folder.glob(f"{PREFIX}*.tmp"):
        tmp.unlink()  # a write a crash interrupted: it is redone from the stream
    return done


