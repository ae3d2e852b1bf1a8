"""The replay's reader process: GRACE_EVENTS from a sequence, as framed batches on stdout.

`python -m projections.reader URL START [UNTIL] [--archive DIR]`. With an archive
(projections.archive), the archived events come first, read from its Parquet files, then
the stream from the next sequence: no gap and no overlap, checked by sequence. Reading NATS (protocol
parsing, the pull loop) and reducing + writing DuckDB each need about one core
at replay speed; two processes use both cores instead of sharing one GIL.
Frames: 4-byte big-endian length, then msgpack. The first frame is
`{"until": N}`; each next one is a list of [seq, subject, raw] up to N.
"""

from __future__ import annotations

import asyncio
import gc
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from grace import topology
from grace.bus import connect
from grace.consume import Delivery, PullConsumer, parse_ack_subject, stream_seq
from grace.errors import GraceError
from grace.transport.fastclient import read_in_chunks_of

PULL = 5_000
AHEAD = 4 << 20  # bytes the reader may buffer ahead of the writer before it stops pulling
FRAME = 10_000  # archived events per frame
READ = 256 << 10  # bytes per socket read (nats-py's default is 32 KiB)
_HEADER = struct.Struct(">I")
_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[tuple[int, str, bytes]])


class LogGapError(GraceError):
    """Sequences the replay needs are neither in the archive nor in the stream."""


def frame(obj: Any) -> bytes:
    body = _encoder.encode(obj)
    return _HEADER.pack(len(body)) + body


class RangeConsumer(PullConsumer[bytes]):
    """PullConsumer whose deliveries go out as frames straight from the socket reads.

    A replay reads every message exactly once, ack-less, and decodes nothing: the
    general loop's buffer, Delivery per message and subject/reply decoding were a
    third of this process's CPU. Pulling, reconnects and `ensure` stay the base's;
    no new pull request goes out while more than AHEAD bytes wait for the writer.
    """

    def __init__(self, *args: Any, until: int, out: asyncio.StreamWriter, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.until, self.out = until, out

    def _take(self, got: list[tuple[bytes, bytes, bytes]]) -> None:
        next_seq, until, batch = self.next_seq, self.until, []
        for subject, reply, data in got:
            seq = stream_seq(reply)
            if next_seq <= seq <= until:
                batch.append((seq, subject.decode(), data))
        last_seq, _, self.pending = parse_ack_subject(got[-1][1])
        self.next_seq = max(next_seq, last_seq + 1)
        self.handled += len(batch)
        if batch:
            self.out.write(frame(batch))

    async def _top_up(self) -> None:
        await self.out.drain()  # the writer is behind: pull no more until it catches up
        await super()._top_up()


def read_frames(stream: IO[bytes]) -> Iterator[bytes]:
    """The frame bodies of `stream` until EOF."""
    while True:
        head = stream.read(4)
        if len(head) < 4:
            return
        (n,) = _HEADER.unpack(head)
        body = stream.read(n)
        if len(body) < n:
            return
        yield body


def decode_batch(body: bytes) -> list[tuple[int, str, bytes]]:
    return _batch_decoder.decode(body)


async def _from_archive(folder: Path, start: int, until: int, out: asyncio.StreamWriter) -> int:
    """Write the archived events start..until as frames; return the next sequence to read."""
    from projections import archive_read as archive  # DuckDB: only replays that read an archive

    next_seq = start
    for rows in archive.read_batches(folder, start, until):
        if rows[0][0] != next_seq:
            raise archive.ArchiveError(f"the archive in {folder} jumps from sequence "
                                       f"{next_seq - 1} to {rows[0][0]}; run `grace archive "
                                       "verify`")
        for i in range(0, len(rows), FRAME):
            out.write(frame(rows[i:i + FRAME]))
        next_seq = rows[-1][0] + 1
        await out.drain()
    return next_seq


async def read(url: str, start: int, until: int | None, archive_dir: Path | None = None) -> None:
    bus = await connect(url, host="replay", source="grace/replay/reader", name="grace-replay-reader")
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    out = asyncio.StreamWriter(transport, protocol, None, loop)
    transport.set_write_buffer_limits(high=AHEAD)
    try:
        info = await bus.js.stream_info(topology.EVENTS)
        last = int(info.state.last_seq)
        until = last if until is None else min(until, last)  # never wait for events to come
        out.write(frame({"until": until}))
        if until < start:
            return
        if archive_dir is not None:
            start = await _from_archive(archive_dir, start, until, out)
            if until < start:
                return
        first = int(info.state.first_seq)
        if first > start:
            where = (f"the archive in {archive_dir} ends at {start - 1}" if archive_dir is not None
                     else "no archive is configured (archive.dir)")
            raise LogGapError(
                f"sequences {start}..{first - 1} are gone: GRACE_EVENTS starts at {first} and "
                f"{where}. Restore the missing archive segments from a backup (`grace archive "
                "verify` lists them)")

        async def ensure(next_seq: int) -> str:
            # the whole stream, unfiltered: a filter (even one matching every subject) costs
            # the server a subject match per message (~7% of its CPU here)
            return await topology.ensure_consumer(bus.js, topology.EVENTS,
                                                  topology.reader_consumer_config(next_seq, None))

        consumer = RangeConsumer(bus, topology.EVENTS, ensure, _unused, decoder=bytes,
                                 stage="replay", ack="none", batch=PULL, max_buffer=4 * PULL,
                                 start_seq=start, until=until, out=out)

        await consumer.run_until(until, poll=0.01)
    finally:
        # drain() alone returns below the low-water mark; what is still buffered when the
        # loop ends is lost, so wait for an empty buffer before closing
        transport.set_write_buffer_limits(high=0)
        await out.drain()
        out.close()
        await bus.close()


async def _unused(_: list[Delivery[bytes]]) -> None:  # RangeConsumer writes frames itself
    raise AssertionError("not called")


def main(argv: list[str]) -> int:
    archive_dir = None
    if "--archive" in argv:
        i = argv.index("--archive")
        archive_dir, argv = Path(argv[i + 1]), argv[:i] + argv[i + 2:]
    url, start = argv[0], int(argv[1])
    until = int(argv[2]) if len(argv) > 2 else None
    gc.set_threshold(200_000, 50, 100)  # allocation-heavy, few cycles: collect rarely
    read_in_chunks_of(READ)
    try:
        asyncio.run(read(url, start, until, archive_dir))
    except BrokenPipeError:
        return 1  # the writer went away; it reports why
    except Exception as exc:  # noqa: BLE001 - the parent prints this for the operator
        print(f"replay reader: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
