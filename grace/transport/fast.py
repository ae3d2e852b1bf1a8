"""The fast transport: pipelined raw publishes and hand-made pull requests.

nats-py's `fetch` manages ~10k msg/s here; sending pull requests to
`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` ourselves and reading the
replies once per socket read (`FastClient.subscribe_batch`) is several times
faster. Every request carries an idle heartbeat; status messages are handled
one by one (grace.transport.status). A consumer that was deleted, is missing,
or misses two heartbeats is re-created from the reader's position.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

import msgspec
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from grace.errors import BusError
from grace.transport import status as st
from grace.transport.acks import parse_ack
from grace.transport.base import (
    MSG_ID_HEADER,
    ApiError,
    Ensure,
    PubAck,
    PubItem,
    Raw,
    RawHandler,
    RawMsg,
    check_payload,
    drain_or_close,
    ensure_retrying,
    idle_heartbeat_for,
)
from grace.transport.fastclient import FastClient

log = logging.getLogger(__name__)

_ack_decoder = msgspec.json.Decoder(PubAck)


class _Window:
    """Acks outstanding for one pipelined batch of publishes."""

    __slots__ = ("acks", "done", "left")

    def __init__(self, n: int) -> None:
        self.acks: list[PubAck | None] = [None] * n
        self.left = n
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class FastTransport:
    """The default transport (`nats.fast_path: true`)."""

    fast = True

    def __init__(self, nc: FastClient) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=10.0)
        self._ack_prefix = ""
        self._windows: dict[int, _Window] = {}
        self._window_no = 0

    async def publish_batch(self, items: Sequence[PubItem], *, timeout: float = 30.0,
                            window: int = 2000) -> list[PubAck]:
        """Publish (subject, payload, msg id) triples with broker acks, `window` in flight."""
        if items:  # closed or draining: refused before anything is sent
            check_payload(self.nc, items[0][0], b"", 0)
        limit = self.nc.max_payload
        blocks: list[bytes] = []
        for subject, payload, msg_id in items:  # one pass: the header, then the size
            hdr = MSG_ID_HEADER % msg_id.encode()
            if len(payload) + len(hdr) > limit:
                check_payload(self.nc, subject, payload, len(hdr))  # raises, naming it
            blocks.append(hdr)
        if not self._ack_prefix:
            self._ack_prefix = self.nc.new_inbox()
            await self.nc.subscribe_raw(self._ack_prefix + ".*.*", self._on_ack)
        out: list[PubAck] = []
        for start in range(0, len(items), window):
            part = items[start: start + window]
            check_payload(self.nc, part[0][0], b"", 0)  # closed or draining: nothing more is sent
            self._window_no += 1
            no = self._window_no
            win = self._windows[no] = _Window(len(part))
            prefix = f"{self._ack_prefix}.{no}."
            try:
                for i, (subject, payload, _) in enumerate(part):
                    await self.nc.publish_raw(subject, payload, reply=f"{prefix}{i}",
                                              headers=blocks[start + i], checked=True)
                await asyncio.wait_for(asyncio.shield(win.done), timeout)
            except TimeoutError:
                raise BusError(f"{win.left} of {len(part)} publishes got no broker ack within "
                               f"{timeout:.0f}s; retry (ids dedupe)") from None
            finally:
                self._windows.pop(no, None)
            for ack in win.acks:
                assert ack is not None
                if ack.error is not None:
                    raise BusError(f"the server refused a publish: {ack.error.description} "
                                   f"(code {ack.error.code}); retry (ids dedupe)")
                out.append(ack)
        return out

    def _on_ack(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        _, _, tail = subject.rpartition(b".")
        head = subject[: len(subject) - len(tail) - 1]
        no = int(head[head.rfind(b".") + 1:])
        win = self._windows.get(no)
        if win is None:
            return
        i = int(tail)
        if win.acks[i] is not None:
            return
        if not data and headers:  # 503 no responders: no stream for this subject
            ack = PubAck(error=ApiError(code=503, description="no stream captures this subject"))
        else:
            try:
                ack = _ack_decoder.decode(data)
            except msgspec.DecodeError:
                ack = PubAck(error=ApiError(description=f"unreadable ack {data[:100]!r}"))
        win.acks[i] = ack
        win.left -= 1
        if win.left == 0 and not win.done.done():
            win.done.set_result(None)

    async def ack(self, reply: str, kind: bytes = b"+ACK") -> None:
        await self.nc.publish_raw(reply, kind)

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        return await self.nc.subscribe_raw(subject, handler)

    def feed(self, stream: str, ensure: Ensure, *, sink: Callable[[list[Raw]], None],
             wake: Callable[[], None], on_recreate: Callable[[], None],
             position: Callable[[], int], stage: str, batch: int, expires: float) -> FastFeed:
        return FastFeed(self.nc, stream, ensure, sink=sink, wake=wake, on_recreate=on_recreate,
                        position=position, stage=stage, batch=batch, expires=expires)

    async def close(self) -> None:
        await drain_or_close(self.nc)


class FastFeed:
    """Pull requests sent by hand; replies read once per socket read."""

    def __init__(self, nc: FastClient, stream: str, ensure: Ensure, *,
                 sink: Callable[[list[Raw]], None], wake: Callable[[], None],
                 on_recreate: Callable[[], None], position: Callable[[], int], stage: str,
                 batch: int, expires: float) -> None:
        self.nc, self.stream, self.ensure = nc, stream, ensure
        self.sink, self.wake, self.on_recreate, self.position = sink, wake, on_recreate, position
        self.stage, self.batch, self.expires = stage, batch, expires
        self.heartbeat = idle_heartbeat_for(expires)
        self.name = ""
        self.recreated = 0  # how often the consumer was re-created (tests and logs read it)
        self._requests: deque[list[float]] = deque()  # [deadline, remaining]
        self._inbox = ""
        self._sub: Subscription | None = None
        self._reconnects = 0
        self._recreate = ""  # why the consumer must be re-created on the next turn, or ''
        self._heard = 0.0  # when the inbox last got anything while a request was outstanding
        self._retired: set[bytes] = set()  # ephemeral consumers replaced: drop their deliveries

    async def start(self) -> None:
        self.name = await ensure_retrying(self.ensure, self.position(), stage=self.stage,
                                          stream=self.stream)
        self._reconnects = self.nc.stats.get("reconnects", 0)
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe_batch(self._inbox, self._on_msgs)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:  # noqa: BLE001 - the connection may be gone
                log.debug("%s: unsubscribing the pull inbox failed: %r", self.stage, exc)
            self._sub = None

    def _on_msgs(self, msgs: list[RawMsg]) -> None:
        """The parser's hand-over (once per socket read): pull-request bookkeeping, then `sink`."""
        requests = self._requests
        retired = self._retired
        self._heard = time.monotonic()
        got: list[Raw] = []
        counted = 0  # deliveries of `got` already counted against their pull requests
        for subject, reply, data, headers in msgs:
            if not data and headers and (code := st.status_of(headers)):
                action = st.classify(code, st.description_of(headers), stage=self.stage,
                                     consumer=f"{self.stream}/{self.name}")
                if action is st.Action.ALIVE:
                    continue
                self._spend(len(got) - counted)  # the deliveries before it; then it ends one
                counted = len(got)
                if requests:
                    requests.popleft()
                if action is st.Action.RECREATE:
                    self._recreate = f"status {code} {st.description_of(headers)}"
                continue
            if retired and parse_ack(reply).consumer in retired:
                continue  # a late delivery of a consumer replaced since: the new one sends it
            got.append((subject, reply, data))
        self._spend(len(got) - counted)
        if got:
            self.sink(got)
        self.wake()

    def _spend(self, k: int) -> None:
        """`k` deliveries arrived: they fill the oldest outstanding requests first."""
        requests = self._requests
        while k > 0 and requests:
            req = requests[0]
            if req[1] > k:
                req[1] -= k
                return
            k -= int(req[1])
            requests.popleft()

    async def _request(self) -> None:
        n = self.batch
        if not self._requests:
            self._heard = time.monotonic()
        self._requests.append([time.monotonic() + self.expires, n])
        body = json.dumps({"batch": n, "expires": int(self.expires * 1e9),
                           "idle_heartbeat": int(self.heartbeat * 1e9)}).encode()
        await self.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.name}", body,
                              reply=self._inbox)

    async def _recreate_consumer(self, why: str) -> None:
        old = self.name
        self._requests.clear()
        self.name = await self.ensure(self.position())
        if self.name != old:
            self._retired.add(old.encode())
        self.recreated += 1
        self.on_recreate()
        log.warning("%s: consumer %s on %s re-created as %s from sequence %d (%s)", self.stage,
                    old, self.stream, self.name, self.position(), why)

    async def top_up(self, room: int) -> None:
        now = time.monotonic()
        requests = self._requests
        while requests and requests[0][0] < now:
            requests.popleft()
        if not self.nc.is_connected:
            return
        reconnects = self.nc.stats.get("reconnects", 0)
        if reconnects != self._reconnects:
            self._reconnects = reconnects
            self._recreate = self._recreate or "reconnected"
        elif requests and now - self._heard > 2 * self.heartbeat + 0.5:
            self._recreate = self._recreate or (
                f"missed two idle heartbeats ({now - self._heard:.1f}s without a word)")
        if self._recreate:
            why, self._recreate = self._recreate, ""
            try:
                await self._recreate_consumer(why)
            except Exception as exc:  # noqa: BLE001 - retried on the next turn
                log.warning("%s: re-creating consumer on %s failed (%s), retrying: %r",
                            self.stage, self.stream, why, exc)
                self._recreate = why
                return
        outstanding = sum(r[1] for r in requests)
        while len(requests) < 2 and outstanding + self.batch <= room:
            await self._request()
            outstanding += self.batch

    def request_failed(self) -> None:
        """A request could not be sent (e.g. a timeout while a leader is elected): re-ensure."""
        self._recreate = self._recreate or "a pull request failed"
