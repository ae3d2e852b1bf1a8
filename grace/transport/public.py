"""The public-API transport: nats-py's JetStream API and nothing private.

`nats.fast_path: false` (or GRACE_FAST_PATH=0) runs every stage on this one:
the way out when a nats-py release breaks the fast path's assumptions. It
publishes with `js.publish_async` (pipelined, acked), pulls with
`js.pull_subscribe_bind(...).fetch(..., heartbeat=...)` and acks by the
delivery's reply subject, as `Msg.ack` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from grace.errors import BusError
from grace.transport.base import (
    Ensure,
    PubAck,
    PubItem,
    Raw,
    RawHandler,
    check_payload,
    drain_or_close,
    ensure_retrying,
    idle_heartbeat_for,
)

log = logging.getLogger(__name__)

_HEADER_BYTES = len(b"NATS/1.0\r\nNats-Msg-Id: \r\n\r\n")


class PublicClient(Client):
    """nats-py's Client; `subscribe_raw` is built on the public `subscribe`."""

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        """Subscribe so that `handler(subject, reply, data, headers)` runs for each message."""
        async def cb(msg: Msg) -> None:
            handler(msg.subject.encode(), msg.reply.encode(), msg.data, None)

        return await self.subscribe(subject, cb=cb)


class PublicTransport:
    """The transport on nats-py's public JetStream API (`nats.fast_path: false`)."""

    fast = False

    def __init__(self, nc: PublicClient) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=10.0)

    async def publish_batch(self, items: Sequence[PubItem], *, timeout: float = 30.0,
                            window: int = 2000) -> list[PubAck]:
        for subject, payload, msg_id in items:
            check_payload(self.nc, subject, payload, _HEADER_BYTES + len(msg_id))
        out: list[PubAck] = []
        for start in range(0, len(items), window):
            futures = [await self.js.publish_async(subject, payload,
                                                   headers={"Nats-Msg-Id": msg_id})
                       for subject, payload, msg_id in items[start: start + window]]
            try:
                acks = await asyncio.wait_for(asyncio.gather(*futures), timeout)
            except TimeoutError:
                left = sum(1 for f in futures if not f.done())
                raise BusError(f"{left} of {len(futures)} publishes got no broker ack within "
                               f"{timeout:.0f}s; retry (ids dedupe)") from None
            except nats.js.errors.APIError as exc:
                raise BusError(f"the server refused a publish: {exc.description} (code "
                               f"{exc.code}); retry (ids dedupe)") from None
            except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
                raise BusError("the server refused a publish: no stream captures this subject "
                               "(code 503); retry (ids dedupe)") from None
            out.extend(PubAck(stream=a.stream, seq=a.seq, duplicate=bool(a.duplicate))
                       for a in acks)
        return out

    async def ack(self, reply: str, kind: bytes = b"+ACK") -> None:
        await self.nc.publish(reply, kind)

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        return await self.nc.subscribe_raw(subject, handler)

    def feed(self, stream: str, ensure: Ensure, *, sink: Callable[[list[Raw]], None],
             wake: Callable[[], None], on_recreate: Callable[[], None],
             position: Callable[[], int], stage: str, batch: int, expires: float) -> PublicFeed:
        return PublicFeed(self.js, stream, ensure, sink=sink, wake=wake, on_recreate=on_recreate,
                          position=position, stage=stage, batch=batch, expires=expires)

    async def close(self) -> None:
        await drain_or_close(self.nc)


class PublicFeed:
    """One `fetch` at a time in a task; a wait for new messages asks for one, then a batch."""

    def __init__(self, js: JetStreamContext, stream: str, ensure: Ensure, *,
                 sink: Callable[[list[Raw]], None], wake: Callable[[], None],
                 on_recreate: Callable[[], None], position: Callable[[], int], stage: str,
                 batch: int, expires: float) -> None:
        self.js, self.stream, self.ensure = js, stream, ensure
        self.sink, self.wake, self.on_recreate, self.position = sink, wake, on_recreate, position
        self.stage, self.batch, self.expires = stage, batch, expires
        self.heartbeat = idle_heartbeat_for(expires)
        self.name = ""
        self.recreated = 0
        self._psub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._flowing = True  # the last fetch got messages: ask for a whole batch at once
        self._recreate = ""

    async def start(self) -> None:
        self.name = await ensure_retrying(self.ensure, self.position(), stage=self.stage,
                                          stream=self.stream)
        self._psub = await self.js.pull_subscribe_bind(self.name, self.stream)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except BaseException as exc:  # noqa: BLE001 - cancelled or failed: stopping anyway
                log.debug("%s: the last fetch ended with %r", self.stage, exc)
            self._task = None
        if self._psub is not None:
            try:
                await self._psub.unsubscribe()
            except Exception as exc:  # noqa: BLE001 - the connection may be gone
                log.debug("%s: unsubscribing the pull inbox failed: %r", self.stage, exc)
            self._psub = None

    def request_failed(self) -> None:
        self._recreate = self._recreate or "a pull request failed"

    async def _fetch(self, psub: JetStreamContext.PullSubscription, n: int) -> None:
        # only the wait for one new message carries a heartbeat: nats-py's batch fetch first
        # asks with no_wait and no expiry, which the server refuses with a heartbeat
        heartbeat = self.heartbeat if n == 1 else None
        try:
            msgs = await psub.fetch(n, timeout=self.expires, heartbeat=heartbeat)
        except nats.js.errors.FetchTimeoutError:  # heartbeats came, messages did not: alive
            self._flowing = False
            return
        except TimeoutError:  # not one heartbeat within the expiry
            self._flowing = False
            await self._check_consumer("missed its idle heartbeats")
            return
        except (nats.js.errors.APIError, nats.errors.NoRespondersError) as exc:
            self._flowing = False
            log.warning("%s: pull request on %s/%s failed: %s", self.stage, self.stream,
                        self.name, _describe(exc))
            await self._check_consumer(f"a pull request failed: {_describe(exc)}")
            await asyncio.sleep(0.2)  # a refusal that repeats must not spin
            return
        finally:
            self.wake()
        self._flowing = len(msgs) > 0
        self.sink([(m.subject.encode(), m.reply.encode(), m.data) for m in msgs])

    async def _check_consumer(self, why: str) -> None:
        """Is the consumer still there? If not, re-create it on the next turn."""
        try:
            await self.js.consumer_info(self.stream, self.name)
        except nats.js.errors.NotFoundError:
            self._recreate = f"consumer not found after it {why}"
        except Exception as exc:  # noqa: BLE001 - a leader election, a reconnect: ask again
            log.info("%s: consumer %s/%s %s; checking it failed: %r", self.stage, self.stream,
                     self.name, why, exc)

    async def _recreate_consumer(self, why: str) -> None:
        old = self.name
        if self._psub is not None:
            try:
                await self._psub.unsubscribe()
            except Exception as exc:  # noqa: BLE001 - the old inbox may be gone with the connection
                log.debug("%s: unsubscribing the old pull inbox failed: %r", self.stage, exc)
            self._psub = None
        self.name = await self.ensure(self.position())
        self._psub = await self.js.pull_subscribe_bind(self.name, self.stream)
        self.recreated += 1
        self.on_recreate()
        log.warning("%s: consumer %s on %s re-created as %s from sequence %d (%s)", self.stage,
                    old, self.stream, self.name, self.position(), why)

    async def top_up(self, room: int) -> None:
        if self._task is not None:
            if not self._task.done():
                return
            self._task.result()
            self._task = None
        if self._recreate:
            why, self._recreate = self._recreate, ""
            try:
                await self._recreate_consumer(why)
            except Exception as exc:  # noqa: BLE001 - retried on the next turn
                log.warning("%s: re-creating consumer on %s failed (%s), retrying: %r",
                            self.stage, self.stream, why, exc)
                self._recreate = why
                return
        if self._psub is None or room < self.batch:
            return
        n = self.batch if self._flowing else 1
        self._task = asyncio.get_running_loop().create_task(self._fetch(self._psub, n))



def _describe(exc: Exception) -> str:
    """`409 Consumer Deleted`-style text for nats-py's API errors, repr otherwise."""
    if isinstance(exc, nats.js.errors.APIError) and exc.code:
        return f"{exc.code} {exc.description or ''}".strip()
    return repr(exc)
