"""`grace project --projection FILE --into DB`: keep a user projection up to date.

The projection is written in a private file `<DB>.live` (DuckDB allows one writer
or many readers, never both) and copied to DB every `projection.publish_every`,
the file anyone may open read-only while it runs. The position in the live file is
the truth: it starts there (at last_seq + 1) after any downtime or crash. With no
live file but a DB (e.g. from `grace replay --projection`), it starts from a copy
of DB. Another version of the projection in the file rebuilds it from sequence 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path

from grace import topology
from grace.cliutil import Context
from grace.consume import Delivery, PullConsumer
from projections.archive_cli import archive_dir
from projections.user.api import Projection
from projections.user.apply import Applier, ProjectionGap
from projections.user.load import ProjectionFileError
from projections.user.replay import catch_up
from projections.user.store import UserStore, VersionChanged

log = logging.getLogger(__name__)


def live_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".live")


def open_live(proj: Projection, dest: Path) -> UserStore:
    """The live store: resumed, seeded from the published file, or rebuilt on a new version."""
    path = live_path(dest)
    seeded = not path.exists() and dest.exists()
    if seeded:
        tmp = path.with_name(path.name + ".tmp")
        shutil.copyfile(dest, tmp)  # a published file is a committed state with its position
        os.replace(tmp, path)
        log.info("no live file: starting from a copy of %s", dest)
    try:
        return UserStore.open(path, proj)
    except ProjectionFileError:
        if seeded:
            path.unlink(missing_ok=True)  # DB holds another projection: leave no copy of it
        raise
    except VersionChanged as exc:
        log.warning("%s: rebuilding projection %r from sequence 1", exc, proj.name)
        for p in (path, path.with_name(path.name + ".wal")):
            p.unlink(missing_ok=True)
        return UserStore.open(path, proj)


async def run_live(ctx: Context, proj: Projection, dest: Path, stop: asyncio.Event) -> int:
    """Follow the log into the projection until `stop`; returns the position reached.

    Raises ProjectionFailed (after publishing what is applied) when the projection raises.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    store = await asyncio.to_thread(open_live, proj, dest)
    applier = Applier(store)
    lock = asyncio.Lock()  # one thread at a time on the connection
    failed: list[Exception] = []
    try:
        bus = await ctx.bus(f"projection-{proj.name}")
    except BaseException:
        store.close()
        raise
    log.info("projecting %r (version %d) from sequence %d into %s, published at %s",
             proj.name, proj.version, applier.applied_seq + 1, store.path, dest)
    try:
        first = int((await bus.js.stream_info(topology.EVENTS)).state.first_seq)
        if first > applier.applied_seq + 1:
            folder = archive_dir(ctx.cfg)
            if folder is None:
                raise ProjectionGap(
                    f"projection {proj.name!r} is at sequence {applier.applied_seq}: sequences "
                    f"{applier.applied_seq + 1}..{first - 1} are gone from GRACE_EVENTS "
                    "(events.max_age) and no archive is configured (archive.dir). Start it with "
                    "the config that sets archive.dir (-c); nothing was applied")
            log.warning("sequences %d..%d have left GRACE_EVENTS (events.max_age): reading them "
                        "from the archive %s", applier.applied_seq + 1, first - 1, folder)
            await asyncio.to_thread(catch_up, ctx.url(), applier, folder)
    except BaseException:
        store.close()
        await bus.close()
        raise

    async def ensure(next_seq: int) -> str:
        start = max(next_seq, applier.applied_seq + 1)
        return await topology.ensure_consumer(bus.js, topology.EVENTS,
                                              topology.reader_consumer_config(start))

    async def on_batch(ds: list[Delivery[bytes]]) -> None:
        if failed:
            return  # stopping: apply nothing past the failed event
        async with lock:
            try:
                await asyncio.to_thread(applier.feed, [(d.seq, d.subject, d.item) for d in ds])
            except Exception as exc:  # noqa: BLE001 - stop here; the consumer would skip it
                failed.append(exc)
                stop.set()

    async def publish() -> None:
        async with lock:
            await asyncio.to_thread(store.publish, dest)

    consumer: PullConsumer[bytes] = PullConsumer(
        bus, topology.EVENTS, ensure, on_batch, decoder=bytes, stage=f"projection-{proj.name}",
        ack="none", batch=5000, max_buffer=20000, start_seq=applier.applied_seq + 1)
    every = float(ctx.cfg.projection.publish_every)
    task = asyncio.create_task(consumer.run(), name="consume")
    try:
        published = -1
        while not stop.is_set() and not task.done():
            if applier.applied_seq != published or not dest.exists():  # noqa: ASYNC240
                seq = applier.applied_seq
                await publish()
                published = seq
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
        if task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    finally:
        consumer.stop()
        with contextlib.suppress(Exception):
            await task
        try:
            await publish()
        finally:
            await asyncio.to_thread(store.close)
            await bus.close()
    if failed:
        raise failed[0]
    log.info("projection %r stopped at sequence %d; %s published", proj.name,
             applier.applied_seq, dest)
    return applier.applied_seq
