"""Reducer + store with one write in flight: reduce batch N+1 while N is written.

Every use of the DuckDB connection (writes, publishing, HTTP queries) goes
through `db()` so only one thread touches it at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]

from projections.reducer import Item, Reducer, Rows
from projections.store import Store, arrow_tables

log = logging.getLogger(__name__)
T = TypeVar("T")


class Projector:
    """Feeds batches of (seq, subject, raw) to the reducer and writes the rows in order."""

    def __init__(self, store: Store, *, retry: bool = True) -> None:
        self.store = store
        self.reducer = Reducer(store.kernels())
        self.applied_seq = self.reduced_seq = store.last_seq()
        self.retry = retry  # live: retry a failed write forever; replay: raise
        self.lock = asyncio.Lock()
        self._inflight: asyncio.Task[None] | None = None
        self.write_error: str = ""
        # called with the new applied sequence after each committed batch (the console's live feed)
        self.on_applied: list[Callable[[int], None]] = []

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` (which uses the connection) in a thread, alone."""
        async with self.lock:
            return await asyncio.to_thread(fn, *args)

    async def feed(self, items: Sequence[Item]) -> None:
        """Reduce `items` (skipping what is already applied) and start writing them."""
        if items and items[0][0] <= self.reduced_seq:
            items = [i for i in items if i[0] > self.reduced_seq]  # redelivered after a reconnect
        if not items:
            return
        rows = self.reducer.reduce(items)
        self.reduced_seq = rows.last_seq
        arrow = arrow_tables(rows)  # here, not in the writer thread: it needs the GIL
        await self.flush()
        self._inflight = asyncio.create_task(self._write(rows, arrow))

    async def _write(self, rows: Rows, arrow: dict[str, pa.Table]) -> None:
        delay = 0.5
        while True:
            try:
                await self.db(self.store.apply, rows, arrow)
                self.applied_seq = rows.last_seq
                self.write_error = ""
                for listener in self.on_applied:
                    listener(rows.last_seq)
                return
            except duckdb.Error as exc:
                if not self.retry:
                    raise
                # nothing of the batch is stored (one transaction): retrying is safe
                self.write_error = repr(exc)
                log.error("writing events up to seq %d to %s failed: %r; retrying in %.1fs. "
                          "Check the disk (space, permissions).", rows.last_seq, self.store.path,
                          exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def flush(self) -> None:
        """Wait until every reduced batch is committed."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def publish(self, dest: Path) -> int:
        """Publish the committed state to `dest`; returns the sequence it reflects."""
        async with self.lock:
            seq = self.applied_seq
            await asyncio.to_thread(self.store.publish, dest)
            return seq

    async def close(self) -> None:
        await self.flush()
        await self.db(self.store.close)
