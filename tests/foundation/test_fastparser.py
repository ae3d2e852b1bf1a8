"""The fast protocol parser dispatches exactly what nats-py's own parser does, however the
bytes are split across reads (pure logic: a recording client, no server)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from grace.transport.fastclient import FastClient, FastParser


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                           headers: bytes | None) -> None:
        self.calls.append(("msg", sid, bytes(subject), bytes(reply), data, headers))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.calls.append(("info", info))

    async def _process_err(self, err: str) -> None:
        self.calls.append(("err", err))


def wire(rnd: random.Random, n: int) -> bytes:
    out = [b'INFO {"server_id":"x","max_payload":1048576}\r\n', b"+OK\r\n"]
    for i in range(n):
        body = bytes(rnd.randbytes(rnd.randint(0, 300)))
        kind = rnd.random()
        if kind < 0.4:
            hdr = b"NATS/1.0\r\nNats-Msg-Id: %d\r\n\r\n" % i
            out.append(b"HMSG grace.events.t.x.h 7 $JS.ACK.S.C.1.%d.%d.0.0 %d %d\r\n" % (
                i, i, len(hdr), len(hdr) + len(body)) + hdr + body + b"\r\n")
        elif kind < 0.5:
            hdr = b"NATS/1.0 408 Request Timeout\r\n\r\n"
            out.append(b"HMSG _INBOX.abc 3 %d %d\r\n" % (len(hdr), len(hdr)) + hdr + b"\r\n")
        elif kind < 0.8:
            out.append(b"MSG subj.%d 2 _INBOX.r.%d %d\r\n" % (i, i, len(body)) + body + b"\r\n")
        elif kind < 0.9:
            out.append(b"MSG subj.%d 2 %d\r\n" % (i, len(body)) + body + b"\r\n")
        else:
            out.append(rnd.choice([b"PING\r\n", b"PONG\r\n", b"-ERR 'Permissions Violation'\r\n"]))
    return b"".join(out)


async def dispatch(parser_cls: type[Parser], data: bytes, rnd: random.Random) -> list[tuple[Any, ...]]:
    rec = Recorder()
    p = parser_cls(rec)
    i = 0
    while i < len(data):
        step = rnd.choice([1, 2, 7, 64, 1000, 65536])
        await p.parse(data[i:i + step])
        i += step
    return rec.calls


@pytest.mark.parametrize("seed", range(5))
async def test_fast_parser_matches_nats_py_on_split_reads(seed: int) -> None:
    data = wire(random.Random(seed), 400)
    ours = await dispatch(FastParser, data, random.Random(seed + 100))
    theirs = await dispatch(Parser, data, random.Random(seed + 200))
    assert ours == theirs
    assert sum(1 for c in ours if c[0] == "msg") > 300


async def test_unknown_protocol_line_is_an_error() -> None:
    with pytest.raises(ProtocolError):
        await FastParser(Recorder()).parse(b"BOGUS line\r\n")
    with pytest.raises(ProtocolError):
        await FastParser(Recorder()).parse(b"MSG too few\r\n")


class BatchRecorder(Recorder):
    """A client with batch subscriptions on sids 7 and 3 and a raw one on sid 2, routed the way
    FastClient routes them (its own `_process_msg`, for messages left to the general path)."""

    _process_msg = FastClient._process_msg  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.stats = {"in_msgs": 0, "in_bytes": 0}
        self.by_sid: dict[int, list[tuple[Any, ...]]] = {2: [], 3: [], 7: []}
        self.handed: list[int] = []  # size of each hand-over to a batch handler
        self._batch_handlers = {b"7": self._batch(7), b"3": self._batch(3)}
        self._raw_handlers = {2: lambda s, r, d, h: self.by_sid[2].append((s, r, d, h))}

    def _batch(self, sid: int) -> Any:
        def handle(msgs: list[tuple[bytes, bytes, bytes, bytes | None]]) -> None:
            self.handed.append(len(msgs))
            self.by_sid[sid].extend(msgs)
        return handle


@pytest.mark.parametrize("seed", range(5))
async def test_batch_subscriptions_get_every_message_in_order_on_split_reads(seed: int) -> None:
    data = wire(random.Random(seed), 400)
    theirs = await dispatch(Parser, data, random.Random(seed + 200))
    expected: dict[int, list[tuple[Any, ...]]] = {2: [], 3: [], 7: []}
    for call in theirs:
        if call[0] == "msg":
            expected[call[1]].append(tuple(call[2:]))
    rec = BatchRecorder()
    parser = FastParser(rec)
    rnd, i = random.Random(seed + 100), 0
    while i < len(data):
        step = rnd.choice([1, 2, 7, 64, 1000, 65536])
        await parser.parse(data[i:i + step])
        i += step
    assert rec.by_sid == expected
    assert rec.calls == [c for c in theirs if c[0] != "msg"]  # PING, INFO, -ERR: in order
    assert max(rec.handed) > 1  # whole reads were handed over at once, not message by message
