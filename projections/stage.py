"""`grace project`: follow GRACE_EVENTS into `<data_dir>/projection.duckdb`.

An ephemeral, ack-less reader starts at the stored last sequence + 1 (and is
re-created from there after a reconnect). The live file is private to this
process; every `projection.publish_every` (when something changed) and at a
clean shutdown it is copied to `<data_dir>/dashboard.duckdb`, the file anyone
may open read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from grace import topology
from grace.bus import Bus
from grace.cliutil import Context
from grace.consume import Delivery, PullConsumer
from projections import archiver
from projections.projector import Projector
from projections.store import open_live

log = logging.getLogger(__name__)

LIVE_FILE = "projection.duckdb"
DASHBOARD_FILE = "dashboard.duckdb"
DRAIN_S = 10.0  # how long a clean stop waits for the log's tail
HEARTBEAT_S = 5.0


def live_path(data_dir: Path) -> Path:
    return data_dir / LIVE_FILE


def dashboard_path(data_dir: Path) -> Path:
    return data_dir / DASHBOARD_FILE


async def _every(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep `seconds` unless `stop` is set first; True while running."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return not stop.is_set()


async def publisher(projector: Projector, dest: Path, every: float, stop: asyncio.Event) -> None:
    """Publish the dashboard file when the projection moved on since the last time."""
    published = -1
    while True:
        if projector.applied_seq != published or not dest.exists():  # noqa: ASYNC240 - one stat()
            try:
                published = await projector.publish(dest)
            except Exception as exc:  # noqa: BLE001 - keep projecting; say what failed
                log.error("publishing %s failed: %r; retrying in %.0fs (check disk space and "
                          "permissions of %s)", dest, exc, every, dest.parent)
        if not await _every(every, stop):
            return


async def run_stage(ctx: Context, stop: asyncio.Event) -> None:
    """Project the log until `stop` is set; publish the dashboard file on the way out."""
    from projections.http import serve

    data_dir = ctx.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    bus = await ctx.bus("projector")
    try:
        store = await asyncio.to_thread(open_live, live_path(data_dir))
    except BaseException:
        await bus.close()
        raise
    projector = Projector(store)
    dest = dashboard_path(data_dir)
    log.info("projecting GRACE_EVENTS from sequence %d into %s", projector.applied_seq + 1,
             store.path)
    await _say_if_expired(bus, projector.applied_seq + 1)

    async def ensure(next_seq: int) -> str:
        start = max(next_seq, projector.reduced_seq + 1)
        return await topology.ensure_consumer(bus.js, topology.EVENTS,
                                              topology.reader_consumer_config(start))

    async def on_batch(ds: list[Delivery[bytes]]) -> None:
        await projector.feed([(d.seq, d.subject, d.item) for d in ds])

    consumer: PullConsumer[bytes] = PullConsumer(
        bus, topology.EVENTS, ensure, on_batch, decoder=bytes, stage="projector", ack="none",
        batch=5000, max_buffer=20000, start_seq=projector.applied_seq + 1)
    # the console's actions publish as the operator, on their own connection
    http = await serve(ctx.cfg, projector, bus, lambda: ctx.bus("console"))
    tasks = [asyncio.create_task(consumer.run(), name="consume"),
             asyncio.create_task(publisher(projector, dest, float(ctx.cfg.projection.publish_every),
                                           stop), name="publish"),
             asyncio.create_task(_heartbeats(bus, stop), name="heartbeat")]
    if ctx.cfg.archive.dir:
        tasks.append(asyncio.create_task(
            archiver.run(bus, ctx.cfg.path(ctx.cfg.archive.dir), ctx.cfg.archive, stop),
            name="archive"))
    try:
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for t in done:
            if t is not stopper and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        await _drain(bus, projector)
    finally:
        stop.set()
        consumer.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        if http is not None:
            await http.cleanup()
        await projector.flush()
        try:
            await projector.publish(dest)
        finally:
            await projector.close()
            await bus.close()
        log.info("projection stopped at sequence %d; %s published", projector.applied_seq, dest)


async def _say_if_expired(bus: Bus, next_seq: int) -> None:
    """Loudly, when events this projection never read have left the stream (events.max_age)."""
    state = (await bus.js.stream_info(topology.EVENTS)).state
    first, last = int(state.first_seq), int(state.last_seq)
    if first > next_seq and last >= next_seq:
        log.error("GRACE_EVENTS starts at sequence %d but this projection is at %d: sequences "
                  "%d..%d expired before it read them (it was stopped for longer than "
                  "events.max_age). Rebuild it with `grace replay --into FILE` (it reads the "
                  "archive), then put FILE in place of %s", first, next_seq - 1, next_seq,
                  first - 1, LIVE_FILE)


async def _drain(bus: Bus, projector: Projector, timeout: float = DRAIN_S) -> None:
    """On a clean stop, take in what the log holds now, so the last dashboard file has it."""
    try:
        target = (await bus.js.stream_info(topology.EVENTS)).state.last_seq
    except Exception as exc:  # noqa: BLE001 - no server: publish what we have
        log.warning("could not read the log's last sequence before stopping: %r", exc)
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while projector.reduced_seq < target and loop.time() < deadline:  # noqa: ASYNC110 - a counter
        await asyncio.sleep(0.02)
    if projector.reduced_seq < target:
        log.warning("stopped at sequence %d of %d: the rest is projected on the next start",
                    projector.reduced_seq, target)


async def _heartbeats(bus: Bus, stop: asyncio.Event) -> None:
    while True:
        try:
            await bus.heartbeat("project", "stage")
        except Exception as exc:  # noqa: BLE001 - disconnected: the next one will do
            log.debug("heartbeat not sent: %r", exc)
        if not await _every(HEARTBEAT_S, stop):
            return
