"""Frames of the log -> a user projection's rows and position, one transaction a batch.

Independent of where the frames come from (the stream, an archive): anything that
yields (sequence, subject, raw) in stream order can feed it. Only the event types
the projection handles reach it (picked by subject, nothing decoded); the position
moves over the others too. A batch that raises is rolled back and applied again one
event at a time, so the failure names its event and everything before it is kept.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence

from grace.errors import GraceError
from projections.user.api import Batch, Frame, Projection, subject_type
from projections.user.store import UserStore


class ProjectionFailed(GraceError):
    """The projection's code or SQL raised on an event; nothing from that event on is applied."""

    def __init__(self, proj: Projection, seq: int, type_: str, detail: str) -> None:
        self.seq, self.type = seq, type_
        super().__init__(
            f"projection {proj.name!r} ({proj.source}) failed on event sequence {seq} (type "
            f"{type_}); its file holds everything up to sequence {seq - 1} and nothing after. "
            f"Fix the projection and start it again: it resumes at sequence {seq} (raise its "
            f"version if the rows before were wrong too).\n{detail}")


class ProjectionGap(GraceError):
    """Frames skip sequences the projection has not applied: applying them would lose events."""


class Applier:
    """Applies batches of frames to one open UserStore, committing each with its position."""

    def __init__(self, store: UserStore) -> None:
        self.store, self.proj = store, store.proj
        self.handles = frozenset(self.proj.handles)
        self.applied_seq = store.last_seq()
        self.applied_events = 0  # handled events applied by this process

    def feed(self, frames: Sequence[Frame]) -> int:
        """Apply `frames` (those past the position); return the new position."""
        if frames and frames[0][0] <= self.applied_seq:
            frames = [f for f in frames if f[0] > self.applied_seq]  # sent again after a reconnect
        if not frames:
            return self.applied_seq
        if frames[0][0] > self.applied_seq + 1:
            raise ProjectionGap(
                f"projection {self.proj.name!r} is at sequence {self.applied_seq} but the log "
                f"continues at {frames[0][0]}: sequences {self.applied_seq + 1}..{frames[0][0] - 1} "
                "were not delivered. Nothing was applied past the gap; check `grace archive "
                "verify` and start the projection again")
        handles = self.handles
        mine = [f for f in frames if subject_type(f[1]) in handles]
        last = frames[-1][0]
        try:
            self._commit(mine, last)
        except Exception:  # noqa: BLE001 - find the event that fails, keep what is before it
            self._one_by_one(mine, last)
        return self.applied_seq

    def _commit(self, frames: Sequence[Frame], last: int) -> None:
        store = self.store
        store.begin()
        try:
            if frames:
                batch = Batch(frames)
                if self.proj.apply is not None:
                    store.write(self.proj.apply(batch))
                if self.proj.statements:
                    store.run(list(self.proj.statements), batch.table())
            store.advance(last, len(frames))
            store.commit()
        except BaseException:
            store.rollback()
            raise
        self.applied_seq = last
        self.applied_events += len(frames)

    def _one_by_one(self, frames: Sequence[Frame], last: int) -> None:
        for f in frames:
            try:
                self._commit([f], f[0])
            except Exception:  # noqa: BLE001 - the user's code: report it whole
                detail = traceback.format_exc()
                if f[0] - 1 > self.applied_seq:
                    self._commit([], f[0] - 1)  # the unhandled events before it are applied
                raise ProjectionFailed(self.proj, f[0], subject_type(f[1]), detail) from None
        self._commit([], last)  # the whole batch failed, no event alone did: state-dependent
