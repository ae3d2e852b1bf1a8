"""The log's Parquet archive: segment files, their manifests, verification and reading.

A segment holds the events of GRACE_EVENTS whose stream time falls in one `archive.segment`
period, as `events-<first seq>.parquet` (zstd) with `events-<first seq>.json` beside it (the
manifest: counts, first/last sequence, time range, sha256 of the Parquet file). A segment is
written once (temp file, fsync, rename) and never changed; consecutive segments continue each
other's sequences exactly. The manifest is written last: a Parquet file without one is the
trace of a crash between the two renames, and `complete_orphans` writes its manifest from it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from grace.errors import GraceError
from grace.events import Envelope

PREFIX = "events-"
ROW_GROUP = 20_000  # rows a reader decompresses at a time: ~10 MB of raw events
READ_BATCH = 10_000

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


class ArchiveError(GraceError):
    """A segment of the archive is missing, altered, or does not continue the one before."""


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a segment holds; the archive's record that it was written whole."""

    file: str
    events: int
    first_seq: int
    last_seq: int
    first_time: datetime  # stream time of the first and last event
    last_time: datetime
    period_start: datetime  # the segment period the events fall in
    period_end: datetime
    bytes: int
    sha256: str


@dataclass
class Item:
    """One message of the log, as the archiver reads it."""

    seq: int
    stream_time_ns: int
    subject: str
    raw: bytes


def segment_name(first_seq: int) -> str:
    return f"{PREFIX}{first_seq:012d}"


def manifests(folder: Path) -> list[Manifest]:
    """Every manifest in `folder`, by first sequence."""
    out = [msgspec.json.decode(p.read_bytes(), type=Manifest)
           for p in sorted(folder.glob(f"{PREFIX}*.json"))]
    return sorted(out, key=lambda m: m.first_seq)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


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


def problems(folder: Path) -> list[str]:
    """Every missing, altered or out-of-sequence segment, one message each ([] when sound)."""
    out: list[str] = []
    expected: int | None = None
    listed = set()
    for m in manifests(folder):
        path = folder / m.file
        listed.add(m.file)
        if expected is not None and m.first_seq != expected:
            what = "gap" if m.first_seq > expected else "overlap"
            out.append(f"{path}: starts at sequence {m.first_seq}, the segment before ends at "
                       f"{expected - 1} ({what})")
        expected = m.last_seq + 1
        if not path.exists():
            out.append(f"{path}: missing (its manifest {path.stem}.json lists it)")
        elif path.stat().st_size != m.bytes or sha256_of(path) != m.sha256:
            out.append(f"{path}: altered (sha256 differs from its manifest)")
    out.extend(f"{p}: has no manifest (the archiver completes it when it next runs)"
               for p in sorted(folder.glob(f"{PREFIX}*.parquet")) if p.name not in listed)
    return out


def check_segment(folder: Path, m: Manifest, expected: int) -> Path:
    """The segment's path once its chain and checksum hold; ArchiveError naming it otherwise."""
    path = folder / m.file
    if m.first_seq != expected:
        raise ArchiveError(f"archive segment {path} starts at sequence {m.first_seq}, expected "
                           f"{expected}: the archive has a gap or overlap there. Run `grace "
                           "archive verify` and restore the missing segment from a backup")
    if not path.exists():
        raise ArchiveError(f"archive segment {path} is missing (its manifest lists it); restore "
                           "it from a backup. `grace archive verify` lists every problem")
    if sha256_of(path) != m.sha256:
        raise ArchiveError(f"archive segment {path} was altered: its sha256 differs from its "
                           "manifest; restore it from a backup. Replay refuses it")
    return path


def read_batches(folder: Path, start: int, until: int) -> Iterator[list[tuple[int, str, bytes]]]:
    """(seq, subject, raw) of the archived events start..until, in order, checked by sequence."""
    expected: int | None = None
    for m in manifests(folder):
        if m.last_seq < start:
            expected = m.last_seq + 1
            continue
        if m.first_seq > until:
            return
        if expected is None:  # the first segment read: it must hold `start`
            expected = min(m.first_seq, start) if m.first_seq > start else m.first_seq
        path = check_segment(folder, m, expected)
        expected = m.last_seq + 1
        next_seq = m.first_seq
        pf = pq.ParquetFile(path)
        for b in pf.iter_batches(batch_size=READ_BATCH, columns=["seq", "stream_subject", "raw"]):
            seqs = b.column(0).to_pylist()
            if seqs[0] != next_seq or seqs[-1] != next_seq + len(seqs) - 1:
                raise ArchiveError(f"archive segment {path} does not hold consecutive sequences "
                                   f"from {next_seq}; restore it from a backup")
            next_seq += len(seqs)
            rows = list(zip(seqs, b.column(1).to_pylist(), b.column(2).to_pylist(), strict=True))
            lo, hi = max(start - seqs[0], 0), until - seqs[0] + 1
            if lo > 0 or hi < len(rows):
                rows = rows[lo:max(hi, 0)]
            if rows:
                yield rows
        if next_seq != m.last_seq + 1:
            raise ArchiveError(f"archive segment {path} ends at {next_seq - 1}, its manifest at "
                               f"{m.last_seq}; restore it from a backup")


def last_seq(folder: Path) -> int:
    """The last archived sequence (0: nothing archived)."""
    ms = manifests(folder)
    return ms[-1].last_seq if ms else 0
