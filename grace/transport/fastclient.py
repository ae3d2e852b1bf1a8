"""A nats-py client with the fast paths Grace's hot loops need.

nats-py builds a `Msg` and parses headers for every delivery, then hands it to
the callback through a queue and a task; at JetStream rates that costs more
than the work. `FastClient` lets a subscription receive the raw protocol
fields synchronously, and publish pre-encoded header blocks. It relies on
nats-py internals (`_process_msg`, `_send_command`, `_flush_pending`,
`_flush_queue`, the parser's state), so nats-py is pinned to one minor
release and tests/transport/test_fast_path_assumptions.py names any that
changed. `nats.fast_path: false` runs Grace without any of this.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ProtocolError
from nats.protocol.parser import (
    AWAITING_CONTROL_LINE,
    AWAITING_MSG_PAYLOAD,
    CRLF_SIZE,
    ERR_RE,
    INFO_RE,
    MAX_CONTROL_LINE_SIZE,
    OK_RE,
    PING_RE,
    PONG_RE,
    Parser,
)

from grace.errors import BusError
from grace.transport.base import RawHandler, RawMsg, check_payload

BatchHandler = Callable[[list[RawMsg]], None]


async def _never_called(_msg: Msg) -> None:  # pragma: no cover - raw and batch handlers run instead
    return None


class FastClient(Client):
    """nats-py Client plus raw subscriptions and raw header publishes."""

    def __init__(self) -> None:
        super().__init__()
        self._raw_handlers: dict[int, RawHandler] = {}
        self._batch_handlers: dict[bytes, BatchHandler] = {}  # by sid as it appears on the wire
        self._ps = FastParser(self)

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        """Subscribe so that `handler(subject, reply, data, headers)` runs inline for each message."""
        sub = await self.subscribe(subject, cb=_never_called)
        self._raw_handlers[sub._id] = handler
        return sub

    async def subscribe_batch(self, subject: str, handler: BatchHandler) -> Subscription:
        """Subscribe so that `handler([(subject, reply, data, headers), ...])` runs inline once per
        read from the socket, with every message of this subscription that read completed."""
        sub = await self.subscribe(subject, cb=_never_called)
        self._batch_handlers[b"%d" % sub._id] = handler
        return sub

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                           headers: bytes | None) -> None:  # nats-py passes None without headers
        batch = self._batch_handlers.get(b"%d" % sid) if self._batch_handlers else None
        if batch is not None:  # a message the parser's fast run left to the general path
            self.stats["in_msgs"] += 1
            self.stats["in_bytes"] += len(data)
            batch([(subject, reply, data, headers)])
            return
        handler = self._raw_handlers.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers or b"")
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        handler(subject, reply, data, headers)

    async def publish_raw(self, subject: str, payload: bytes, *, reply: str = "",
                          headers: bytes = b"", checked: bool = False) -> None:
        """Publish with a pre-built header block (`NATS/1.0\\r\\nName: value\\r\\n\\r\\n`).

        Checks what nats-py's `publish` checks, before anything is sent: a closed or
        draining client, a full reconnect buffer, and the server's max_payload
        (`checked`: the caller checked the batch this message belongs to just before).
        """
        if not checked:
            check_payload(self, subject, payload, len(headers))
        if not self.is_connected and self._pending_data_size + len(payload) > self._max_pending_size:
            raise BusError(f"cannot publish to {subject}: disconnected from NATS and the reconnect "
                           "buffer is full; retry once reconnected")
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


def read_in_chunks_of(size: int) -> None:
    """Make the nats-py clients of this process read their socket up to `size` bytes at a time.

    nats-py reads 32 KiB at a time (a module constant, also its stream buffer limit). A
    process that only streams the log (the replay's reader) parses and forwards bigger
    batches with bigger reads: fewer parser calls, loop turns and pipe writes per message.
    Call before connecting.
    """
    from nats.aio import client

    client.DEFAULT_BUFFER_SIZE = size


class FastParser(Parser):
    """nats-py's protocol parser without its hot-path costs.

    The original matches every control line against regexes (MSG before HMSG, and
    JetStream deliveries are HMSG) and deletes each consumed message from the
    front of its buffer, moving the rest every time. This one splits control
    lines and walks an offset, compacting the buffer once per read. Messages of a
    batch subscription (`FastClient.subscribe_batch`) that are complete in the
    buffer are collected in one tight loop and handed over once per read, with no
    coroutine per message. Other control lines (PING, PONG, INFO, +OK, -ERR) use
    the original expressions.
    """

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        buf.extend(data)
        pos, n, nc = 0, len(buf), self.nc
        sinks: dict[bytes, BatchHandler] = getattr(nc, "_batch_handlers", None) or {}
        got: dict[bytes, list[RawMsg]] = {}
        frozen = bytes(buf) if sinks else b""  # slicing bytes is one step, a view's two
        view = memoryview(buf)  # one copy per payload, not two; released before resizing
        try:
            while pos < n:
                if self.state == AWAITING_CONTROL_LINE:
                    if sinks:
                        pos = self._batch_run(frozen, pos, n, sinks, got)
                        if pos >= n:
                            break
                    end = buf.find(b"\r\n", pos)
                    if end < 0:
                        if n - pos > MAX_CONTROL_LINE_SIZE:
                            raise ProtocolError("nats: control line too long")
                        break
                    first = buf[pos]
                    if first == 0x4D or first == 0x48:  # 'M' (MSG) or 'H' (HMSG)
                        self._msg_line(bytes(view[pos:end]).split())
                        pos = end + 2
                        continue
                    line = bytes(view[pos:end + 2])
                    pos = end + 2
                    await self._other_line(line)
                    if buf is not self.buf:  # reset (reconnect) while we awaited
                        return
                else:
                    needed = self.needed
                    if n - pos < needed + CRLF_SIZE:
                        break
                    arg = self.msg_arg
                    hn = self.header_needed
                    if hn > 0:
                        hdr: bytes | None = bytes(view[pos:pos + hn])
                        payload = bytes(view[pos + hn:pos + needed])
                        self.header_needed = 0
                    else:
                        hdr = None
                        payload = bytes(view[pos:pos + needed])
                    pos += needed + CRLF_SIZE
                    self.state = AWAITING_CONTROL_LINE
                    await nc._process_msg(arg["sid"], arg["subject"], arg["reply"], payload, hdr)
                    if buf is not self.buf:
                        return
        finally:
            view.release()
            if pos and buf is self.buf:
                del buf[:pos]
            if got:
                nc.stats["in_msgs"] += sum(len(m) for m in got.values())
                for sid, msgs in got.items():
                    sinks[sid](msgs)

    @staticmethod
    def _batch_run(buf: bytes, pos: int, n: int, sinks: dict[bytes, BatchHandler],
                   got: dict[bytes, list[RawMsg]]) -> int:
        """Collect the complete messages of batch subscriptions from `pos`; return where the
        first thing that is not one starts (another line, a partial message, another sid)."""
        find = buf.find
        while pos < n:
            end = find(b"\r\n", pos)
            if end < 0:
                return pos
            parts = buf[pos:end].split()
            k = len(parts)
            verb = parts[0] if k else b""
            try:
                if verb == b"HMSG" and (k == 5 or k == 6):
                    hn, total = int(parts[-2]), int(parts[-1])
                    reply = parts[3] if k == 6 else b""
                elif verb == b"MSG" and (k == 4 or k == 5):
                    hn, total = 0, int(parts[-1])
                    reply = parts[3] if k == 5 else b""
                else:
                    return pos
            except ValueError:
                return pos  # the general path reports the malformed line
            sid = parts[2]
            if sid not in sinks:
                return pos
            start = end + 2
            stop = start + total
            if stop + CRLF_SIZE > n:
                return pos  # incomplete: the general path waits for the rest
            msg: RawMsg
            if hn:
                msg = (parts[1], reply, buf[start + hn:stop], buf[start:start + hn])
            else:
                msg = (parts[1], reply, buf[start:stop], None)
            ms = got.get(sid)
            if ms is None:
                ms = got[sid] = []
            ms.append(msg)
            pos = stop + CRLF_SIZE
        return pos

    def _msg_line(self, parts: list[bytes]) -> None:
        try:
            if parts[0] == b"MSG" and len(parts) in (4, 5):
                reply = parts[3] if len(parts) == 5 else b""
                self.needed, self.header_needed = int(parts[-1]), 0
            elif parts[0] == b"HMSG" and len(parts) in (5, 6):
                reply = parts[3] if len(parts) == 6 else b""
                self.needed, self.header_needed = int(parts[-1]), int(parts[-2])
            else:
                raise ValueError(parts[0])
        except (ValueError, IndexError):
            raise ProtocolError("nats: malformed MSG") from None
        self.msg_arg = {"subject": parts[1], "sid": int(parts[2]), "reply": reply}
        self.state = AWAITING_MSG_PAYLOAD

    async def _other_line(self, line: bytes) -> None:
        nc = self.nc
        if OK_RE.match(line):
            return
        if (m := ERR_RE.match(line)) is not None:
            await nc._process_err(m.groups()[0].decode().lower())
        elif PING_RE.match(line):
            await nc._process_ping()
        elif PONG_RE.match(line):
            await nc._process_pong()
        elif (m := INFO_RE.match(line)) is not None:
            await nc._process_info(json.loads(m.groups()[0].decode()))
        else:
            raise ProtocolError("nats: unknown protocol")
