"""`grace replay --projection FILE --into DB`: build a user projection from sequence 1.

The log is read by the replay's reader process (projections.reader: the same frames
whatever it reads them from); this process applies them. Built as `<DB>.partial`
and moved into place only when complete.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from projections.replay import (
    Progress,
    ReplayError,
    _grow_pipe,
    _reader_failed,
    prepare,
    reader_batches,
    reader_command,
)
from projections.user.api import Projection
from projections.user.apply import Applier
from projections.user.store import UserStore

BATCH = 20_000  # events a transaction: each commit costs a few ms, a batch's frames ~10 MB
MEMORY_LIMIT = "256MB"


def replay_projection(url: str, proj: Projection, dest: Path, *, force: bool = False,
                      until_seq: int | None = None, progress: Progress | None = None,
                      batch: int = BATCH, archive: Path | None = None) -> tuple[int, int]:
    """Build `proj` over GRACE_EVENTS 1..until_seq (default: the last now) at `dest`.

    Returns (last sequence applied, handled events applied).
    """
    work = prepare(dest, force)
    cmd = reader_command(url, until_seq, archive)
    store = UserStore.open(work, proj, memory_limit=MEMORY_LIMIT)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _grow_pipe(proc.stdout)
    try:
        applier = Applier(store)
        last = _feed(proc, applier, batch, progress)
    except BaseException:
        proc.kill()
        proc.wait()
        store.close()
        for p in (work, work.with_name(work.name + ".wal")):
            p.unlink(missing_ok=True)  # nothing half-made is left behind
        raise
    proc.wait()
    store.close()
    os.replace(work, dest)
    return last, applier.applied_events


def catch_up(url: str, applier: Applier, archive: Path | None, batch: int = BATCH) -> int:
    """Apply what the log holds past the position, through the reader (archive, then stream).

    For a live projection whose next events have left the stream (events.max_age): the
    stream's consumer cannot deliver them, the reader reads them from the archive.
    """
    proc = subprocess.Popen(reader_command(url, None, archive, start=applier.applied_seq + 1),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _grow_pipe(proc.stdout)
    try:
        return _feed(proc, applier, batch, None)
    finally:
        proc.kill()
        proc.wait()


def _feed(proc: subprocess.Popen[bytes], applier: Applier, batch: int,
          progress: Progress | None) -> int:
    until, batches = reader_batches(proc, batch)
    if progress is not None:
        progress(0, until)
    for items in batches:
        applier.feed(items)
        if progress is not None:
            progress(applier.applied_seq, until)
    if applier.applied_seq < until:
        raise ReplayError(f"the log ended at sequence {applier.applied_seq}, expected {until}: "
                          + _reader_failed(proc))
    return applier.applied_seq
