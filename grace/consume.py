"""The consume loop: a stage's deliveries, decoded, handled, then acked.

The transport's feed (grace.transport: fast or public-API) keeps pull
requests outstanding, handles status messages and re-creates a consumer that
vanished, from this reader's position. Deliveries are buffered (bounded),
decoded in batches, handed to the stage, then acked: after the handler
returned, never before. A message that fails to decode goes to GRACE_REJECTED
with its reason; a handler that raises on one message (not a bus error) sends
that message there too, and the stage goes on. An event too big to publish
(PayloadTooLarge) is not retried: it is such a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import nats.errors
import nats.js.errors

from grace import events
from grace.bus import Bus
from grace.errors import BusError, EventError
from grace.transport import PayloadTooLarge, Raw
from grace.transport.acks import parse_ack_subject, seqs_delivered, stream_seq

log = logging.getLogger(__name__)

# The bus failing under a handler, not the message: the batch is retried (with backoff), never
# rejected. A cluster that is electing a leader or catching up after a network partition
# answers 503 (ServiceUnavailable) or not at all for a while.
TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError, BusError, ConnectionError, nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError, nats.errors.ConnectionReconnectingError)

__all__ = ["AckMode", "Delivery", "PullConsumer", "Raw", "parse_ack_subject", "read_range",
           "stream_seq"]

T = TypeVar("T")
AckMode = Literal["all", "each", "none"]


@dataclass(slots=True)
class Delivery(Generic[T]):
    """One message from a stream, decoded (its subject and ack subject when asked for)."""

    seq: int  # stream sequence
    delivered: int  # 1 on first delivery
    raw_subject: bytes
    item: T
    raw_reply: bytes  # the ack subject

    @property
    def subject(self) -> str:
        return self.raw_subject.decode()

    @property
    def reply(self) -> str:
        return self.raw_reply.decode()


class PullConsumer(Generic[T]):
    """Consume `stream`/`consumer` in batches until `stop()`.

    `ensure(next_seq)` creates (or checks) the consumer and returns its name; it
    is called at start and again whenever the consumer must be re-created (a
    reconnect, a deletion, missed heartbeats), so the reader resumes where it
    left off: nothing lost, nothing handled twice.
    """

    def __init__(self, bus: Bus, stream: str, ensure: Callable[[int], Awaitable[str]],
                 handler: Callable[[list[Delivery[T]]], Awaitable[None]], *,
                 decoder: Callable[[bytes], T] = events.decode,  # type: ignore[assignment]
                 stage: str = "consumer", ack: AckMode = "all", batch: int = 2000,
                 max_buffer: int = 10000, expires: float = 10.0, start_seq: int = 1) -> None:
        self.bus, self.stream, self.ensure, self.handler = bus, stream, ensure, handler
        self.decoder, self.stage, self.ack = decoder, stage, ack
        self.batch, self.max_buffer, self.expires = batch, max_buffer, expires
        self.next_seq = start_seq  # the first sequence not yet handled
        self.handled = 0
        self.rejected = 0
        self.pending = -1  # messages left for this consumer after the last batch (-1: unknown)
        self._buf: deque[Raw] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self.feed = bus.transport.feed(
            stream, ensure, sink=self._take, wake=self._wake.set, on_recreate=self._buf.clear,
            position=lambda: self.next_seq, stage=stage, batch=batch, expires=expires)
        self.idle = asyncio.Event()  # set while nothing is buffered or being handled

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _take(self, got: list[Raw]) -> None:
        """Buffer deliveries for the run loop (a subclass may handle them here instead)."""
        self._buf.extend(got)
        self.idle.clear()

    async def _top_up(self) -> None:
        await self.feed.top_up(self.max_buffer - len(self._buf))

    async def run(self) -> None:
        """Consume until stop(); raises only on a failure to set up."""
        await self.feed.start()
        try:
            while not self._stopping:
                # cleared before the top-up awaits: what arrives meanwhile must wake the wait below
                self._wake.clear()
                try:
                    await self._top_up()
                except (TimeoutError, BusError, ConnectionError) as exc:
                    log.warning("%s: requesting messages failed, retrying: %r", self.stage, exc)
                    self.feed.request_failed()  # re-ensure the consumer on the next turn
                    await asyncio.sleep(0.2)
                    continue
                except Exception as exc:
                    if type(exc).__module__.split(".")[0] != "nats":
                        raise
                    log.warning("%s: requesting messages failed, retrying: %r", self.stage, exc)
                    self.feed.request_failed()
                    await asyncio.sleep(0.2)
                    continue
                if not self._buf:
                    self.idle.set()
                    wait = min(self.expires / 2, 5.0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                    continue
                take = min(len(self._buf), self.batch)
                msgs = [self._buf.popleft() for _ in range(take)]
                await self._handle(msgs)
        finally:
            await self.feed.stop()
            self.idle.set()

    async def run_until(self, until_seq: int, poll: float = 0.005) -> None:
        """run() until every message up to `until_seq` (or the consumer's last) is handled."""
        async def watch() -> None:
            while self.next_seq <= until_seq and self.pending != 0:  # noqa: ASYNC110 - polls counters the consumer loop moves
                await asyncio.sleep(poll)
            self.stop()

        watcher = asyncio.create_task(watch())
        try:
            await self.run()
        finally:
            watcher.cancel()

    async def _handle(self, msgs: list[Raw]) -> None:
        good: list[Delivery[T]] = []
        # in-order readers skip what a re-created consumer sends again; "each" (a work
        # queue) sees lower sequences on redelivery and must not skip them
        skip_below = self.next_seq if self.ack != "each" else 0
        decoder = self.decoder
        for (subject, reply, data), (seq, delivered) in zip(
                msgs, seqs_delivered([m[1] for m in msgs]), strict=True):
            if seq < skip_below:
                continue  # sent again by a re-created consumer: already handled
            try:
                item = decoder(data)
            except EventError as exc:
                await self._reject(subject.decode(), reply.decode(), data, seq, exc.reason)
                continue
            except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the stage
                await self._reject(subject.decode(), reply.decode(), data, seq, f"undecodable: {exc!r}")
                continue
            good.append(Delivery(seq, delivered, subject, item, reply))
        if good:
            await self._deliver(good)
        last_seq, _, self.pending = parse_ack_subject(msgs[-1][1])
        self.next_seq = max(self.next_seq, last_seq + 1)
        self.handled += len(good)
        if self.ack == "all":
            await self.bus.ack(msgs[-1][1].decode())

    async def _deliver(self, good: list[Delivery[T]]) -> None:
        delay = 0.2
        while True:
            try:
                await self.handler(good)
                break
            except PayloadTooLarge as exc:  # retrying cannot help: keep the message, say why
                log.error("%s: %s; rejecting the %d messages that led to it one by one",
                          self.stage, exc, len(good))
                await self._deliver_one_by_one(good)
                return
            except TRANSIENT as exc:
                log.warning("%s: bus error while handling %d messages, retrying in %.1fs: %r",
                            self.stage, len(good), delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # noqa: BLE001 - isolate the message that fails
                log.error("%s: handler failed on a batch of %d: %r; retrying one by one",
                          self.stage, len(good), exc)
                await self._deliver_one_by_one(good)
                return
        if self.ack == "each":
            for d in good:
                await self.bus.ack(d.reply)

    async def _deliver_one_by_one(self, good: list[Delivery[T]]) -> None:
        for d in good:
            try:
                await self.handler([d])
            except PayloadTooLarge as exc:
                raw = events.encode(d.item) if isinstance(d.item, events.Event) else b""
                await self._reject_raw(raw, d.subject, d.seq, f"{self.stage}: {exc}")
            except TRANSIENT:
                raise
            except Exception as exc:  # noqa: BLE001 - poison message: keep it, say why
                raw = events.encode(d.item) if isinstance(d.item, events.Event) else b""
                await self._reject_raw(raw, d.subject, d.seq, f"{self.stage} failed to handle it: {exc!r}")
            if self.ack == "each":
                await self.bus.ack(d.reply)

    async def _reject(self, subject: str, reply: str, data: bytes, seq: int, reason: str) -> None:
        await self._reject_raw(data, subject, seq, reason)
        if self.ack == "each":
            await self.bus.ack(reply)

    async def _reject_raw(self, raw: bytes, subject: str, seq: int, reason: str) -> None:
        self.rejected += 1
        while True:
            try:
                await self.bus.reject(raw, reason, stage=self.stage, subject=subject, seq=seq)
                return
            except Exception as exc:  # noqa: BLE001 - must not lose it: retry
                log.warning("%s: could not store a rejected message yet: %r", self.stage, exc)
                await asyncio.sleep(0.5)


async def read_range(bus: Bus, start_seq: int, handler: Callable[[list[Delivery[Any]]], Awaitable[None]],
                     *, until_seq: int | None = None, decoder: Callable[[bytes], Any] = events.decode,
                     filter_subject: str = "grace.events.>", stage: str = "reader",
                     batch: int = 1000) -> int:
    """Read GRACE_EVENTS from `start_seq` to `until_seq` (default: the last now); return the last seq."""
    from grace import topology

    if until_seq is None:
        info = await bus.js.stream_info(topology.EVENTS)
        until_seq = info.state.last_seq
    if until_seq < start_seq:
        return start_seq - 1
    first = True

    async def ensure(next_seq: int) -> str:
        nonlocal first
        name = await topology.ensure_consumer(
            bus.js, topology.EVENTS, topology.reader_consumer_config(next_seq, filter_subject))
        if first:
            first = False
            info = await bus.js.consumer_info(topology.EVENTS, name)
            if info.num_pending == 0:
                consumer.pending = 0
        return name

    consumer: PullConsumer[Any]

    async def on_batch(items: list[Delivery[Any]]) -> None:
        await handler(items)

    consumer = PullConsumer(bus, topology.EVENTS, ensure, on_batch, decoder=decoder, stage=stage,
                            ack="none", batch=batch, start_seq=start_seq)
    await consumer.run_until(until_seq)
    return consumer.next_seq - 1
