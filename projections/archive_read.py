"""The archive's manifests, their verification, and reading segments back (no pyarrow).

What a replay needs from the archive (projections.archive writes it): each manifest, the
check of a segment against it, and the segment's events in order, read with DuckDB.
Reading needs none of pyarrow: with it, the replay's reader process peaked at ~195 MB
(the import alone ~55 MB); with DuckDB (one thread, its default memory limit, since a row
group of big events may need more than a small fixed one), ~120 MB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import msgspec

from grace.errors import GraceError

PREFIX = "events-"
READ_BATCH = 2_000  # events handed on at a time: 10,000 peaked ~20 MB higher, no faster


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
    con: duckdb.DuckDBPyConnection | None = None
    try:
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
            if con is None:  # one thread: the file's order, one row group in memory at a time
                con = duckdb.connect(config={"threads": 1})
            yield from _segment(con, path, m, start, until)
    finally:
        if con is not None:
            con.close()


def _segment(con: duckdb.DuckDBPyConnection, path: Path, m: Manifest, start: int, until: int
             ) -> Iterator[list[tuple[int, str, bytes]]]:
    cur = con.execute("SELECT seq, stream_subject, raw FROM read_parquet(?)", [str(path)])
    next_seq = m.first_seq
    while rows := cur.fetchmany(READ_BATCH):
        first = rows[0][0]
        if first != next_seq or rows[-1][0] != next_seq + len(rows) - 1:
            raise ArchiveError(f"archive segment {path} does not hold consecutive sequences "
                               f"from {next_seq}; restore it from a backup")
        next_seq += len(rows)
        lo, hi = max(start - first, 0), until - first + 1
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
