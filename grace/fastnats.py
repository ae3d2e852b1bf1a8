"""A nats-py client with two fast paths Grace's hot loops need.

nats-py builds a `Msg` and parses headers for every delivery, then hands it to
the callback through a queue and a task; at JetStream rates that costs more
than the work. `FastClient` lets a subscription receive the raw protocol
fields synchronously, and publish pre-encoded header blocks. It relies on
nats-py's `_process_msg`/`_send_command`, so nats-py is pinned exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nats.aio.client import Client

RawHandler = Callable[[bytes, bytes, bytes, bytes], None]  # subject, reply, data, headers


class FastClient(Client):
    """nats-py Client plus raw subscriptions and raw header publishes."""

    def __init__(self) -> None:
        super().__init__()
        self._raw_handlers: dict[int, RawHandler] = {}

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Any:
        """Subscribe so that `handler(subject, reply, data, headers)` runs inline for each message."""
        async def unused(_msg: Any) -> None:  # pragma: no cover - never called
            return None

        sub = await self.subscribe(subject, cb=unused)
        self._raw_handlers[sub._id] = handler
        return sub

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                           headers: bytes) -> None:
        handler = self._raw_handlers.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        handler(subject, reply, data, headers)

    async def publish_raw(self, subject: str, payload: bytes, *, reply: str = "",
                          headers: bytes = b"") -> None:
        """Publish with a pre-built header block (`NATS/1.0\\r\\nName: value\\r\\n\\r\\n`)."""
        if headers:
            cmd = b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
                subject.encode(), reply.encode(), len(headers), len(headers) + len(payload),
                headers, payload)
        else:
            cmd = b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), reply.encode(), len(payload), payload)
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += len(payload)
        await self._send_command(cmd)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()


def header_block(headers: dict[str, str]) -> bytes:
    """Encode headers once (values must be single-line ASCII-safe tokens)."""
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"NATS/1.0\r\n{lines}\r\n".encode()


def status_of(headers: bytes) -> str:
    """The status code of a control message (`NATS/1.0 404 No Messages`), or ''."""
    if len(headers) > 9 and headers[8:9] == b" ":
        return headers[9:12].decode()
    return ""
