"""Rebuild a projection from sequence 1 into a new file (`grace replay --into FILE`).

The file is built as `<FILE>.partial` and moved into place only when complete,
so a failed or interrupted replay never leaves a half-made projection at FILE.
"""

from __future__ import annotations

import fcntl
import gc
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

import msgspec
import pyarrow as pa  # type: ignore[import-untyped]

from grace.errors import GraceError
from projections import reader
from projections.reducer import Item, Reducer
from projections.store import Store, arrow_tables

Progress = Callable[[int, int], None]  # (last sequence applied, last sequence to reach)

BATCH = 10_000  # events per transaction: big enough for DuckDB's speed, small enough for RSS
MEMORY_LIMIT = "64MB"  # DuckDB's own buffers: with Python and Arrow, RSS stays near 250 MB


class ReplayError(GraceError):
    """The replay target is not usable."""


def partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".partial")


def prepare(dest: Path, force: bool) -> Path:
    """Check the target; return the path to build in. Refuses to overwrite without force."""
    if dest.exists() and not force:
        raise ReplayError(f"{dest} already exists; replay writes a new file. Pass --force to "
                          "replace it, or choose another --into path.")
    if not dest.parent.is_dir():
        raise ReplayError(f"folder {dest.parent} does not exist; create it or choose another --into")
    work = partial_path(dest)
    for p in (work, work.with_name(work.name + ".wal")):
        p.unlink(missing_ok=True)
    return work


def replay_into(url: str, dest: Path, *, force: bool = False, until_seq: int | None = None,
                progress: Progress | None = None, batch: int = BATCH) -> int:
    """Build a projection of GRACE_EVENTS 1..until_seq (default: the last now) at `dest`.

    A reader process (projections.reader) reads NATS; this one reduces and writes.
    Returns the last sequence applied.
    """
    work = prepare(dest, force)
    # pyarrow's default pool (mimalloc) keeps freed batches around: ~20 MB more peak RSS here
    pa.set_memory_pool(pa.system_memory_pool())
    cmd = [sys.executable, "-m", "projections.reader", url, "1"]
    if until_seq is not None:
        cmd.append(str(until_seq))
    writer = _Writer(Store.open(work, memory_limit=MEMORY_LIMIT))
    # millions of short-lived objects, few cycles: collect rarely instead of every 700 allocations
    thresholds = gc.get_threshold()
    gc.set_threshold(200_000, 50, 100)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _grow_pipe(proc.stdout)
    last = 0
    try:
        assert proc.stdout is not None
        frames = reader.read_frames(proc.stdout)
        head = next(frames, None)
        if head is None:
            raise ReplayError(_reader_failed(proc))
        until = int(msgspec.msgpack.decode(head)["until"])
        if progress is not None:
            progress(0, until)
        pending: list[Item] = []
        for body in frames:
            pending.extend(reader.decode_batch(body))
            if len(pending) >= batch or (pending and pending[-1][0] >= until):
                last = writer.submit(pending)
                pending = []
                if progress is not None:
                    progress(last, until)
        if pending:
            writer.submit(pending)
        last = writer.wait()
        if last < until:
            raise ReplayError(f"the log ended at sequence {last}, expected {until}: "
                              + _reader_failed(proc))
    except BaseException:
        proc.kill()
        proc.wait()
        writer.close()
        for p in (work, work.with_name(work.name + ".wal")):
            p.unlink(missing_ok=True)  # nothing half-made is left behind
        raise
    finally:
        gc.set_threshold(*thresholds)
    proc.wait()
    writer.close()
    os.replace(work, dest)
    return last


class _Writer:
    """Reduce here, write in one worker thread: batch N is committed while N+1 is reduced."""

    def __init__(self, store: Store) -> None:
        self.store, self.reducer = store, Reducer()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="replay-writer")
        self.inflight: Future[None] | None = None
        self.last = 0

    def submit(self, items: list[Item]) -> int:
        rows = self.reducer.reduce(items)
        arrow = arrow_tables(rows)  # needs the GIL: build it here, not in the thread
        self.wait()
        self.inflight = self.pool.submit(self.store.apply, rows, arrow)
        self.last = rows.last_seq
        return self.last

    def wait(self) -> int:
        """Block until the batch in flight is committed; return the last sequence written."""
        if self.inflight is not None:
            fut, self.inflight = self.inflight, None
            fut.result()
        return self.last

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown()
            self.store.close()


def _grow_pipe(stream: IO[bytes] | None) -> None:
    """A 1 MiB pipe lets the reader run ahead of the writer (Linux; best effort elsewhere)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if stream is None or set_size is None:
        return
    try:
        fcntl.fcntl(stream.fileno(), set_size, 1 << 20)
    except OSError:
        pass


def _reader_failed(proc: subprocess.Popen[bytes]) -> str:
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    text = err.decode(errors="replace").strip().splitlines()
    why = text[-1] if text else f"it exited with code {proc.returncode}"
    return f"the log reader failed: {why}"
