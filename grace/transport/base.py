"""The transport contract: what every NATS implementation gives the stages.

Two implementations hold it: `fast` (Grace's own protocol fast paths, the
default) and `public` (nats-py's public JetStream API only, `nats.fast_path:
false`). Both are tested by the same contract suite (tests/transport/).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import msgspec
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from grace.errors import BusError

log = logging.getLogger(__name__)

RawHandler = Callable[[bytes, bytes, bytes, bytes | None], None]  # subject, reply, data, headers
RawMsg = tuple[bytes, bytes, bytes, bytes | None]  # subject, reply, data, headers
Raw = tuple[bytes, bytes, bytes]  # subject, reply (the ack subject), data
PubItem = tuple[str, bytes, str]  # subject, payload, message id
Ensure = Callable[[int], Awaitable[str]]  # next stream sequence -> consumer name


class ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class PubAck(msgspec.Struct):
    """The broker's answer to a JetStream publish."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: ApiError | None = None


class PayloadTooLarge(BusError):
    """An event does not fit the server's max_payload; nothing was sent, the connection is fine."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what, self.size, self.limit = what, size, limit
        super().__init__(
            f"{what} is {size} bytes, over the NATS server's max_payload of {limit} bytes; it was "
            "not sent. Make the event smaller, or raise max_payload in the nats-server config.")


async def drain_or_close(nc: Client) -> None:
    """Close a connection, draining what is in flight first when it can."""
    if not nc.is_closed:
        try:
            await nc.drain()
        except Exception:  # noqa: BLE001 - closing anyway
            await nc.close()


# The header block of every event publish: JetStream dedupes by the event's id (an ASCII token).
# `MSG_ID_HEADER % msg_id.encode()`, written out where it runs per message.
MSG_ID_HEADER = b"NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n"


def check_payload(nc: Client, subject: str, payload: bytes, headers: int, what: str = "") -> None:
    """Refuse (before sending) what the server would refuse by dropping the connection."""
    if nc.is_closed:
        raise BusError(f"cannot publish to {subject}: the NATS connection is closed")
    if nc.is_draining_pubs:  # as nats-py: while subscriptions drain, acks must still go out
        raise BusError(f"cannot publish to {subject}: the NATS connection is draining (closing)")
    size = len(payload) + headers
    if size > nc.max_payload:
        raise PayloadTooLarge(what or f"the message for {subject}", size, nc.max_payload)


class Feed(Protocol):
    """Keeps pull requests outstanding on one consumer and hands deliveries on.

    Deliveries go to `sink` (subject, ack subject, data), status handling and
    consumer re-creation stay inside. `on_recreate` runs after the consumer was
    re-created from the reader's position: deliveries buffered from the old one
    must be dropped (the new consumer sends them again).
    """

    name: str  # the consumer's name now
    recreated: int  # how often the consumer was re-created

    async def start(self) -> None:
        """Create (or find) the consumer and subscribe for its deliveries."""

    async def top_up(self, room: int) -> None:
        """Make sure messages keep coming while the reader can take `room` more."""

    async def stop(self) -> None:
        """Stop asking; unsubscribe."""

    def request_failed(self) -> None:
        """Asking failed (e.g. a timeout while a leader is elected): re-ensure the consumer."""


class Transport(Protocol):
    """A connected NATS client with JetStream, as Grace's stages use it."""

    @property
    def fast(self) -> bool:
        """True for the fast implementation."""

    @property
    def nc(self) -> Client:
        """The nats-py client underneath."""

    @property
    def js(self) -> JetStreamContext:
        """Its JetStream context (stream and consumer management, KV)."""

    async def publish_batch(self, items: Sequence[PubItem], *, timeout: float = 30.0,
                            window: int = 2000) -> list[PubAck]:
        """Publish with broker acks, `window` in flight; in order. Checks every size first."""

    async def ack(self, reply: str, kind: bytes = b"+ACK") -> None:
        """Acknowledge one delivery (or all up to it, for an AckAll consumer)."""

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        """Core-NATS subscription whose handler gets (subject, reply, data, headers)."""

    def feed(self, stream: str, ensure: Ensure, *, sink: Callable[[list[Raw]], None],
             wake: Callable[[], None], on_recreate: Callable[[], None],
             position: Callable[[], int], stage: str, batch: int, expires: float) -> Feed:
        """A pull feed on `stream` whose consumer `ensure(position())` creates."""

    async def close(self) -> None:
        """Drain and close."""


def idle_heartbeat_for(expires: float) -> float:
    """The idle heartbeat a pull request asks for: 5 s, and under half its expiry (the server
    refuses one of half or more: `400 Bad Request - heartbeat value too large`)."""
    return min(5.0, expires * 0.4)


async def ensure_retrying(ensure: Ensure, next_seq: int, *, stage: str, stream: str,
                          attempts: int = 50) -> str:
    """ensure() with retries: at start the server may still be electing a leader."""
    delay = 0.1
    for attempt in range(attempts):
        try:
            return await ensure(next_seq)
        except (TimeoutError, BusError, ConnectionError) as exc:
            err: Exception = exc
        except Exception as exc:
            if type(exc).__module__.split(".")[0] != "nats":
                raise
            err = exc
        if attempt == attempts - 1:
            raise BusError(f"{stage}: cannot create consumer on {stream}: {err!r}. Is JetStream "
                           "up and does the stream exist (`grace up` creates it)?")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")
