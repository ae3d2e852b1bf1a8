"""The fast consume loop: pull requests read by a plain subscription callback.

nats-py's `fetch` manages ~10k msg/s here; sending pull requests to
`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` ourselves and reading the
replies in a subscription callback is several times faster. Deliveries are
buffered (bounded), decoded in batches, handed to the stage, then acked: after
the handler returned, never before. A message that fails to decode goes to
GRACE_REJECTED with its reason; a handler that raises on one message (not a
bus error) sends that message there too, and the stage goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from grace import events
from grace.bus import Bus
from grace.errors import BusError, EventError
from grace.fastnats import RawMsg, status_of

log = logging.getLogger(__name__)

T = TypeVar("T")
AckMode = Literal["all", "each", "none"]


Raw = tuple[bytes, bytes, bytes]  # subject, reply (the ack subject), data


@dataclass(slots=True)
class Delivery(Generic[T]):
    """One message from a stream, decoded."""

    seq: int  # stream sequence
    delivered: int  # 1 on first delivery
    subject: str
    item: T
    reply: str


def stream_seq(reply: bytes) -> int:
    """The stream sequence alone from a JetStream ack subject (see parse_ack_subject)."""
    tokens = reply.split(b".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


def parse_ack_subject(reply: bytes) -> tuple[int, int, int]:
    """(stream sequence, delivery count, pending) from a JetStream ack subject, old or new form."""
    tokens = reply.split(b".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(tokens[5]), int(tokens[4]), int(tokens[8])
    # $JS.ACK.<domain>.<acchash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<rnd>]
    return int(tokens[7]), int(tokens[6]), int(tokens[10])


class PullConsumer(Generic[T]):
    """Consume `stream`/`consumer` in batches until `stop()`.

    `ensure(next_seq)` creates (or checks) the consumer and returns its name; it
    is called at start and again after a reconnect, so a server restart or an
    ephemeral consumer that vanished resumes where this reader left off.
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
        self._requests: deque[list[float]] = deque()  # [deadline, remaining]
        self._wake = asyncio.Event()
        self._stopping = False
        self._name = ""
        self._inbox = ""
        self._reconnects = 0
        self.idle = asyncio.Event()  # set while nothing is buffered or being handled

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _on_msgs(self, msgs: list[RawMsg]) -> None:
        """The parser's hand-over (once per socket read): pull-request bookkeeping, then `_take`."""
        requests = self._requests
        got: list[Raw] = []
        for subject, reply, data, headers in msgs:
            if not data and headers:
                status = status_of(headers)
                if status in ("404", "408", "409"):  # request ended: no messages / expired / limits
                    if requests:
                        requests.popleft()
                    if status == "409":
                        log.debug("%s: pull request ended: %r", self.stage, headers)
                continue
            got.append((subject, reply, data))
            if requests:
                req = requests[0]
                req[1] -= 1
                if req[1] <= 0:
                    requests.popleft()
        if got:
            self._take(got)
        self._wake.set()

    def _take(self, got: list[Raw]) -> None:
        """Buffer deliveries for the run loop (a subclass may handle them here instead)."""
        self._buf.extend(got)
        self.idle.clear()

    async def _ensure_retrying(self, attempts: int = 50) -> str:
        """ensure() with retries: at start the server may still be electing a leader."""
        delay = 0.1
        for attempt in range(attempts):
            try:
                return await self.ensure(self.next_seq)
            except (TimeoutError, BusError, ConnectionError) as exc:
                err: Exception = exc
            except Exception as exc:  # nats-py raises several unrelated types
                if type(exc).__module__.split(".")[0] != "nats":
                    raise
                err = exc
            if attempt == attempts - 1:
                raise BusError(f"{self.stage}: cannot create consumer on {self.stream}: {err!r}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def _request(self) -> None:
        n = self.batch
        self._requests.append([time.monotonic() + self.expires, n])
        body = json.dumps({"batch": n, "expires": int(self.expires * 1e9)}).encode()
        await self.bus.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self._name}", body,
                                  reply=self._inbox)

    async def _top_up(self) -> None:
        now = time.monotonic()
        while self._requests and self._requests[0][0] < now:
            self._requests.popleft()
        if not self.bus.nc.is_connected:
            return
        reconnects = self.bus.nc.stats.get("reconnects", 0)
        if reconnects != self._reconnects:
            self._reconnects = reconnects
            self._requests.clear()
            try:
                self._name = await self.ensure(self.next_seq)
            except Exception as exc:  # noqa: BLE001 - retried on the next turn
                log.warning("%s: re-creating consumer after reconnect failed: %r", self.stage, exc)
                self._reconnects = -1
                return
        outstanding = sum(r[1] for r in self._requests)
        while len(self._requests) < 2 and len(self._buf) + outstanding + self.batch <= self.max_buffer:
            await self._request()
            outstanding += self.batch

    async def run(self) -> None:
        """Consume until stop(); raises only on a failure to set up."""
        self._name = await self._ensure_retrying()
        self._reconnects = self.bus.nc.stats.get("reconnects", 0)
        self._inbox = self.bus.nc.new_inbox()
        sub = await self.bus.nc.subscribe_batch(self._inbox, self._on_msgs)
        try:
            while not self._stopping:
                # cleared before the top-up awaits: what arrives meanwhile must wake the wait below
                self._wake.clear()
                try:
                    await self._top_up()
                except Exception as exc:  # noqa: BLE001 - e.g. a timeout while a leader is elected
                    log.warning("%s: requesting messages failed, retrying: %r", self.stage, exc)
                    self._reconnects = -1  # re-ensure the consumer on the next turn
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
            with contextlib.suppress(Exception):  # the connection may be gone
                await sub.unsubscribe()
            self.idle.set()

    async def run_until(self, until_seq: int, poll: float = 0.005) -> None:
        """run() until every message up to `until_seq` (or the consumer's last) is handled."""
        async def watch() -> None:
            while self.next_seq <= until_seq and self.pending != 0:  # noqa: ASYNC110 - counters
                await asyncio.sleep(poll)
            self.stop()

        watcher = asyncio.create_task(watch())
        try:
            await self.run()
        finally:
            watcher.cancel()

    async def _handle(self, msgs: list[Raw]) -> None:
        good: list[Delivery[T]] = []
        skip_below = self.next_seq if self.ack == "all" else 0
        decoder = self.decoder
        for subject, reply, data in msgs:
            tokens = reply.split(b".")
            if len(tokens) == 9:
                seq, delivered = int(tokens[5]), int(tokens[4])
            else:
                seq, delivered = int(tokens[7]), int(tokens[6])
            if seq < skip_below:
                continue  # redelivered after a reconnect: already handled and covered by an ack
            try:
                item = decoder(data)
            except EventError as exc:
                await self._reject(subject.decode(), reply.decode(), data, seq, exc.reason)
                continue
            except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the stage
                await self._reject(subject.decode(), reply.decode(), data, seq, f"undecodable: {exc!r}")
                continue
            good.append(Delivery(seq, delivered, subject.decode(), item, reply.decode()))
        if good:
            await self._deliver(good)
        last_seq, _, self.pending = parse_ack_subject(msgs[-1][1])
        self.next_seq = max(self.next_seq, last_seq + 1)
        self.handled += len(good)
        if self.ack == "all":
            await self.bus.nc.publish_raw(msgs[-1][1].decode(), b"+ACK")

    async def _deliver(self, good: list[Delivery[T]]) -> None:
        delay = 0.2
        while True:
            try:
                await self.handler(good)
                break
            except (TimeoutError, BusError, ConnectionError) as exc:
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
                await self.bus.nc.publish_raw(d.reply, b"+ACK")

    async def _deliver_one_by_one(self, good: list[Delivery[T]]) -> None:
        for d in good:
            try:
                await self.handler([d])
            except (TimeoutError, BusError, ConnectionError):
                raise
            except Exception as exc:  # noqa: BLE001 - poison message: keep it, say why
                raw = events.encode(d.item) if isinstance(d.item, events.Event) else b""
                await self._reject_raw(raw, d.subject, d.seq, f"{self.stage} failed to handle it: {exc!r}")
            if self.ack == "each":
                await self.bus.nc.publish_raw(d.reply, b"+ACK")

    async def _reject(self, subject: str, reply: str, data: bytes, seq: int, reason: str) -> None:
        await self._reject_raw(data, subject, seq, reason)
        if self.ack == "each":
            await self.bus.nc.publish_raw(reply, b"+ACK")

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
