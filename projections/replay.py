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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import msgspec
import pyarrow as pa  # type: ignore[import-untyped]

from grace.errors import GraceError
from projections import reader
from projections.reducer import Item, KernelKey, Reducer, Rows
from projections.rows import KernelRow
from projections.store import Store, arrow_tables, to_arrow

Progress = Callable[[int, int], None]  # (last sequence applied, last sequence to reach)

BATCH = 10_000  # events reduced at a time: their Python objects are what bounds RSS
WRITE_EVERY = 50_000  # events per DuckDB statement (as Arrow, ~0.5 KB an event)
COMMIT_EVERY = 250_000  # events per transaction: row groups (122,880 rows) go straight to the file
MEMORY_LIMIT = "32MB"  # DuckDB's own buffers: with Python and Arrow, RSS stays near 250 MB


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


def reader_command(url: str, until_seq: int | None, archive: Path | None,
                   start: int = 1) -> list[str]:
    """The log reader process: the archive (when given), then GRACE_EVENTS, start..until_seq."""
    cmd = [sys.executable, "-m", "projections.reader", url, str(start)]
    if until_seq is not None:
        cmd.append(str(until_seq))
    if archive is not None:
        cmd += ["--archive", str(archive)]
    return cmd


def replay_into(url: str, dest: Path, *, force: bool = False, until_seq: int | None = None,
                progress: Progress | None = None, batch: int = BATCH,
                archive: Path | None = None) -> int:
    """Build a projection of GRACE_EVENTS 1..until_seq (default: the last now) at `dest`.

    A reader process (projections.reader) reads the archive (when given) and NATS; this one
    reduces and writes. Returns the last sequence applied.
    """
    work = prepare(dest, force)
    # pyarrow's default pool (mimalloc) keeps freed batches around: ~20 MB more peak RSS here
    pa.set_memory_pool(pa.system_memory_pool())
    cmd = reader_command(url, until_seq, archive)
    writer = ChunkedWriter(Store.open(work, memory_limit=MEMORY_LIMIT))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _grow_pipe(proc.stdout)
    try:
        with _bulk_mode():
            last = _feed(proc, writer, batch, progress)
    except BaseException:
        proc.kill()
        proc.wait()
        writer.close()
        for p in (work, work.with_name(work.name + ".wal")):
            p.unlink(missing_ok=True)  # nothing half-made is left behind
        raise
    proc.wait()
    writer.close()
    os.replace(work, dest)
    return last


def reader_batches(proc: subprocess.Popen[bytes], batch: int) -> tuple[int, Iterator[list[Item]]]:
    """The last sequence the reader announced, and its items in batches of `batch` or more
    (a batch ends early at that sequence, the last may be shorter)."""
    assert proc.stdout is not None
    frames = reader.read_frames(proc.stdout)
    head = next(frames, None)
    if head is None:
        raise ReplayError(_reader_failed(proc))
    until = int(msgspec.msgpack.decode(head)["until"])

    def batches() -> Iterator[list[Item]]:
        pending: list[Item] = []
        for body in frames:
            pending.extend(reader.decode_batch(body))
            if len(pending) >= batch or (pending and pending[-1][0] >= until):
                yield pending
                pending = []
        if pending:
            yield pending

    return until, batches()


def _feed(proc: subprocess.Popen[bytes], writer: ChunkedWriter, batch: int,
          progress: Progress | None) -> int:
    """The reader's frames through the writer, committed; returns the last sequence."""
    until, batches = reader_batches(proc, batch)
    if progress is not None:
        progress(0, until)
    for items in batches:
        last = writer.submit(items)
        if progress is not None:
            progress(last, until)
    last = writer.finish()
    if last < until:
        raise ReplayError(f"the log ended at sequence {last}, expected {until}: "
                          + _reader_failed(proc))
    return last


@contextmanager
def _bulk_mode() -> Iterator[None]:
    """The interpreter tuned for reducing millions of events, restored on the way out.

    Millions of short-lived objects and hardly a cycle: the automatic collector would walk
    each of them once more (~10% of this process's CPU), so objects alive now are frozen,
    it is off, and ChunkedWriter collects once per chunk instead. DuckDB 2.0 takes the GIL
    a few times per statement (its Arrow sources are Python); each time it waits for the
    reducing thread to give it up, by default after 5 ms, here after 0.2 ms.
    """
    was_enabled, switch = gc.isenabled(), sys.getswitchinterval()
    gc.freeze()
    gc.disable()
    sys.setswitchinterval(0.0002)
    try:
        yield
    finally:
        sys.setswitchinterval(switch)
        if was_enabled:
            gc.enable()
        gc.unfreeze()


class ChunkedWriter:
    """Reduce here, write in one worker thread: one chunk is written while the next is reduced.

    Reducing goes BATCH events at a time (their Python objects are big); writing goes
    WRITE_EVERY events at a time, as the Arrow tables of several batches (compact). Every
    DuckDB statement costs ~1 ms and a few hand-overs of the GIL on top of its rows, so
    fewer, bigger statements are what makes the writer thread keep up.
    """

    def __init__(self, store: Store, write_every: int = WRITE_EVERY,
                 commit_every: int = COMMIT_EVERY) -> None:
        self.store, self.reducer = store, Reducer()
        self.write_every, self.commit_every = write_every, commit_every
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="replay-writer")
        self.inflight: Future[None] | None = None
        self.parts: dict[str, list[pa.Table]] = {}
        self.kernels: dict[KernelKey, KernelRow] = {}  # latest row per instance
        self.position: Rows | None = None  # of what is reduced and not yet handed over
        self.uncommitted = 0
        self.last = 0  # last sequence reduced

    def submit(self, items: list[Item]) -> int:
        """Reduce a batch; write when WRITE_EVERY events are waiting. Returns the last seq reduced."""
        rows = self.reducer.reduce(items)
        for k in rows.pop_kernels():
            self.kernels[k[:3]] = k  # (host, kernel, instance): one row each per statement
        for table, data in arrow_tables(rows).items():  # needs the GIL: here, not in the thread
            self.parts.setdefault(table, []).append(data)
        position = self.position
        if position is None:
            position = self.position = rows.position()
        else:
            position.advance(rows)
        self.last = rows.last_seq or self.last
        if position.events >= self.write_every:
            self.flush()
        return self.last

    def flush(self) -> None:
        """Hand what is reduced to the writer thread (after the chunk before it is written)."""
        position, self.position = self.position, None
        if position is None:
            return
        arrow = {t: pa.concat_tables(ps) for t, ps in self.parts.items()}
        if self.kernels:
            arrow["kernels"] = to_arrow("kernels", list(self.kernels.values()))
        self.parts, self.kernels = {}, {}
        gc.collect()  # the cycles of a chunk, if any (replay_into turned the automatic one off)
        self.uncommitted += position.events
        commit = self.uncommitted >= self.commit_every
        if commit:
            self.uncommitted = 0
        self.wait()
        self.inflight = self.pool.submit(self.store.apply, position, arrow, commit=commit)

    def finish(self) -> int:
        """Write and commit everything submitted; return the last sequence committed."""
        self.flush()
        self.wait()
        self.store.commit()
        return self.last

    def wait(self) -> None:
        """Block until the chunk in flight is written."""
        if self.inflight is not None:
            fut, self.inflight = self.inflight, None
            fut.result()

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
    with suppress(OSError):
        fcntl.fcntl(stream.fileno(), set_size, 1 << 20)


def _reader_failed(proc: subprocess.Popen[bytes]) -> str:
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    text = err.decode(errors="replace").strip().splitlines()
    why = text[-1] if text else f"it exited with code {proc.returncode}"
    return f"the log reader failed: {why}"
