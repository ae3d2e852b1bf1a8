"""The archiver: writes each closed segment of GRACE_EVENTS to the archive (projections.archive).

A segment is one `archive.segment` period of stream time; it is closed once its end is
`archive.after` old. The archiver resumes after the last manifest (a crash loses at most the
segment being written, a temp file never renamed into place: it is written again from the
stream). It runs in the projection stage (`grace project`) or alone (`grace archive run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from grace import topology
from grace.bus import Bus
from grace.config import Archive
from grace.consume import Delivery, PullConsumer
from grace.durations import fmt
from grace.transport.acks import stream_time_ns
from projections import archive
from projections.archive import ArchiveError, Item, Manifest, SegmentWriter

log = logging.getLogger(__name__)


def poll_interval(cfg: Archive) -> float:
    """How often the archiver looks for closed segments: well within the margin of one segment."""
    return max(0.2, min(float(cfg.segment) / 4, 30.0))


async def archive_closed(bus: Bus, folder: Path, cfg: Archive, now: float | None = None
                         ) -> list[Manifest]:
    """Write every segment closed at `now` (default: the clock) not yet archived."""
    seg_ns = int(cfg.segment * 1e9)
    for m in await asyncio.to_thread(archive.complete_orphans, folder, seg_ns):
        log.warning("archive: completed the manifest of %s, left without one by a crash", m.file)
    next_seq = archive.last_seq(folder) + 1
    state = (await bus.js.stream_info(topology.EVENTS)).state
    first, last = int(state.first_seq), int(state.last_seq)
    if last < next_seq:
        return []
    if first > next_seq:
        raise ArchiveError(
            f"GRACE_EVENTS starts at sequence {first} but the archive in {folder} ends at "
            f"{next_seq - 1}: sequences {next_seq}..{first - 1} expired before they were archived. "
            "Was the archiver (grace project) stopped for longer than the margin of events.max_age? "
            "Replays stop at that gap; restore the missing segments from a backup, or raise "
            "events.max_age")
    t = time.time() if now is None else now
    cutoff = int((t - float(cfg.after)) * 1e9) // seg_ns * seg_ns  # periods ending by it are closed
    written: list[Manifest] = []
    seg: SegmentWriter | None = None
    done = False

    async def close() -> None:
        nonlocal seg
        assert seg is not None
        m = await asyncio.to_thread(seg.close)
        seg = None
        log.info("archive: wrote %s (sequences %d..%d, %d bytes)", m.file, m.first_seq,
                 m.last_seq, m.bytes)
        written.append(m)

    failure: list[BaseException] = []
    expect = next_seq

    async def on_batch(ds: list[Delivery[bytes]]) -> None:
        # never raises: the consumer would retry or reject messages one by one, and a segment
        # must hold every sequence; a failure ends the pass and is raised after it
        nonlocal done
        try:
            await take(ds)
        except Exception as exc:  # noqa: BLE001 - re-raised once the consumer has stopped
            failure.append(exc)
            done = True
            consumer.stop()

    async def take(ds: list[Delivery[bytes]]) -> None:
        nonlocal done, seg, expect
        for d in ds:
            if done:
                return
            if d.seq != expect:
                raise ArchiveError(f"GRACE_EVENTS delivered sequence {d.seq} where {expect} was "
                                   "due; the segment is not written. Check the stream with "
                                   "`nats stream info GRACE_EVENTS`")
            expect += 1
            ts = stream_time_ns(d.raw_reply)
            period = ts // seg_ns * seg_ns
            if period + seg_ns > cutoff:
                done = True  # this period is still open: the pass ends here
                consumer.stop()
                return
            if seg is not None and period != seg.period[0]:
                await close()
            if seg is None:
                seg = SegmentWriter(folder, d.seq, period, period + seg_ns)
            if seg.add(Item(d.seq, ts, d.subject, d.item)):
                await asyncio.to_thread(seg.write_pending)

    async def ensure(seq: int) -> str:
        return await topology.ensure_consumer(bus.js, topology.EVENTS,
                                              topology.reader_consumer_config(seq, None))

    consumer: PullConsumer[bytes] = PullConsumer(
        bus, topology.EVENTS, ensure, on_batch, decoder=bytes, stage="archiver", ack="none",
        batch=5000, max_buffer=20000, start_seq=next_seq)
    try:
        await consumer.run_until(last)
        if failure:
            raise failure[0]
        if seg is not None:
            # its period ended by the cutoff: the stream gets no more events stamped within it
            await close()
    finally:
        if seg is not None:
            seg.abort()
    return written


async def run(bus: Bus, folder: Path, cfg: Archive, stop: asyncio.Event) -> None:
    """Archive closed segments every poll interval until `stop` is set."""
    every = poll_interval(cfg)
    log.info("archiving GRACE_EVENTS into %s (segments of %s, written %s after their end)",
             folder, fmt(cfg.segment), fmt(cfg.after))
    while not stop.is_set():
        try:
            await archive_closed(bus, folder, cfg)
        except ArchiveError as exc:
            log.error("archive: %s", exc)
        except Exception as exc:  # noqa: BLE001 - keep the stage up; say what failed, retry
            log.error("archive: writing segments to %s failed: %r; retrying in %.0fs (check "
                      "disk space and permissions)", folder, exc, every)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
