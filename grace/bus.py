"""The NATS connection every stage shares: connect, publish with broker acks, reject.

Consuming lives in `grace.consume`; subject names in `grace.topology`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api

from grace import embedded, events, topology
from grace.errors import BusError, ConnectFailed
from grace.events import Event, Heartbeat
from grace.fastnats import FastClient, header_block

log = logging.getLogger(__name__)

_hb_encoder = msgspec.json.Encoder()


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class PubAck(msgspec.Struct):
    """The broker's answer to a JetStream publish."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_ack_decoder = msgspec.json.Decoder(PubAck)


class _Window:
    """Acks outstanding for one pipelined batch of publishes."""

    __slots__ = ("acks", "done", "left")

    def __init__(self, n: int) -> None:
        self.acks: list[PubAck | None] = [None] * n
        self.left = n
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


def resolve_url(url: str | None, data_dir: Path | None) -> str:
    """`--nats URL`, else `GRACE_NATS_URL`, else the embedded server's `<data_dir>/nats.url`."""
    url = url or os.environ.get("GRACE_NATS_URL")
    if url:
        return url
    if data_dir is not None:
        found = embedded.read_url(data_dir)
        if found:
            return found
    where = f"{data_dir}/nats.url" if data_dir else "a data dir"
    raise ConnectFailed(
        f"no NATS URL: pass --nats URL, set GRACE_NATS_URL, or start Grace (`grace up`) so that "
        f"{where} names its embedded server.")


class Bus:
    """A connected NATS client plus JetStream, with Grace's publish helpers."""

    def __init__(self, nc: FastClient, host: str, source: str) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=10.0)
        self.host = host
        self.source = source
        self.rejected_count = 0
        self._ack_prefix = ""
        self._windows: dict[int, _Window] = {}
        self._window_no = 0

    # ---------------------------------------------------------------- events

    def event(self, data: events.Payload, *, id: str | None = None, subject: str | None = None,
              host: str | None = None) -> Event:
        """Wrap a payload as an event from this stage."""
        return events.make_event(data, host=host or self.host, source=self.source, id=id,
                                 subject=subject)

    @staticmethod
    def subject_of(ev: Event) -> str:
        """Where an event or command is published: the topology decides."""
        data = ev.data
        if isinstance(data, events.Command):
            return topology.command_subject(ev.host, data.TYPE)
        if isinstance(data, events.FixTask):
            return topology.task_subject(ev.host, data.kind)
        return topology.event_subject(data.CATEGORY, data.TYPE, ev.host)

    async def publish(self, ev: Event, timeout: float = 10.0) -> api.PubAck:
        """Publish one event and wait for the broker's ack (dedup by Nats-Msg-Id = id)."""
        return await self.js.publish(self.subject_of(ev), events.encode(ev), timeout=timeout,
                                     headers={"Nats-Msg-Id": ev.id})

    async def publish_many(self, evs: Sequence[Event], timeout: float = 30.0,
                           window: int = 2000) -> list[PubAck]:
        """Publish many events pipelined; return when every one is acked, in order.

        Raises BusError if any publish failed or timed out; some may be stored
        already, and re-publishing the whole list is safe: ids dedupe.
        """
        items = [(self.subject_of(ev), events.encode(ev), ev.id) for ev in evs]
        return await self.publish_raw_many(items, timeout=timeout, window=window)

    async def publish_raw_many(self, items: Sequence[tuple[str, bytes, str]], *,
                               timeout: float = 30.0, window: int = 2000) -> list[PubAck]:
        """Publish (subject, payload, msg id) triples with broker acks, `window` in flight."""
        if not self._ack_prefix:
            self._ack_prefix = self.nc.new_inbox()
            await self.nc.subscribe_raw(self._ack_prefix + ".*.*", self._on_ack)
        out: list[PubAck] = []
        for start in range(0, len(items), window):
            part = items[start: start + window]
            self._window_no += 1
            no = self._window_no
            win = self._windows[no] = _Window(len(part))
            prefix = f"{self._ack_prefix}.{no}."
            try:
                for i, (subject, payload, msg_id) in enumerate(part):
                    await self.nc.publish_raw(subject, payload, reply=f"{prefix}{i}",
                                              headers=header_block({"Nats-Msg-Id": msg_id}))
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

    def _on_ack(self, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
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
            ack = PubAck(error=_ApiError(code=503, description="no stream captures this subject"))
        else:
            try:
                ack = _ack_decoder.decode(data)
            except msgspec.DecodeError:
                ack = PubAck(error=_ApiError(description=f"unreadable ack {data[:100]!r}"))
        win.acks[i] = ack
        win.left -= 1
        if win.left == 0 and not win.done.done():
            win.done.set_result(None)

    async def reject(self, raw: bytes, reason: str, *, stage: str, subject: str = "",
                     seq: int | None = None) -> None:
        """Keep a message that failed to decode or validate, with its reason. Never drops it."""
        headers = {topology.H_REJECT_REASON: _header_safe(reason),
                   topology.H_REJECT_STAGE: stage, topology.H_REJECT_SUBJECT: subject}
        if seq is not None:
            headers[topology.H_REJECT_SEQ] = str(seq)
            headers["Nats-Msg-Id"] = f"{stage}:{subject}:{seq}"
        body = raw if len(raw) <= events.MAX_PAYLOAD - 4096 else raw[: events.MAX_PAYLOAD - 4096]
        await self.js.publish(topology.rejected_subject(stage), body, headers=headers)
        self.rejected_count += 1
        log.warning("rejected a message on %s: %s", subject or "?", reason)

    # ---------------------------------------------------------------- heartbeats

    async def heartbeat(self, name: str, kind: str = "stage", seq: int = 0) -> None:
        """Core-NATS heartbeat on grace.heartbeat.<host>.<name>; never stored."""
        hb = Heartbeat(name=name, kind=kind, pid=os.getpid(), time=events.now(), seq=seq)  # type: ignore[arg-type]
        await self.nc.publish(topology.heartbeat_subject(self.host, name), _hb_encoder.encode(hb))

    async def close(self) -> None:
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:  # noqa: BLE001 - closing anyway
                await self.nc.close()


def split_servers(url: str) -> list[str]:
    """`nats://a:4222,nats://b:4222` -> both; a cluster URL list is comma-separated."""
    return [u.strip() for u in url.split(",") if u.strip()]


async def _probe(url: str, timeout: float) -> None:
    """Fail fast when nothing listens: nats-py would retry the first connect forever."""
    from urllib.parse import urlparse

    last: Exception | None = None
    for server in split_servers(url):
        parsed = urlparse(server if "://" in server else f"nats://{server}")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout)
        except (TimeoutError, OSError) as exc:
            last = exc
            continue
        writer.close()
        return
    raise last or ConnectionError("no server URL given")


def _header_safe(text: str) -> str:
    return " ".join(text.split())[:1000]


async def connect(url: str, *, host: str, source: str, name: str = "grace",
                  credentials: str | None = None, tls: Any = None,
                  user: str | None = None, password: str | None = None,
                  connect_timeout: float = 3.0) -> Bus:
    """Connect once (fail fast with the URL and what to do), then reconnect forever."""
    async def on_error(exc: Exception) -> None:
        log.warning("NATS %s: %r", url, exc)

    async def on_disconnect() -> None:
        if not (nc.is_closed or nc.is_draining):
            log.warning("NATS %s: disconnected; reconnecting", url)

    async def on_reconnect() -> None:
        log.info("NATS %s: reconnected", url)

    try:
        await _probe(url, connect_timeout)
        nc = FastClient()
        # nats-py annotates these timeouts as int; it accepts seconds as float
        opts: dict[str, Any] = {
            "servers": split_servers(url), "name": name, "connect_timeout": connect_timeout,
            "allow_reconnect": True, "max_reconnect_attempts": -1, "reconnect_time_wait": 0.25,
            "user_credentials": credentials, "user": user, "password": password, "tls": tls,
            "error_cb": on_error, "disconnected_cb": on_disconnect, "reconnected_cb": on_reconnect,
            "pending_size": 64 * 1024 * 1024}
        await asyncio.wait_for(nc.connect(**opts), timeout=connect_timeout * 3)
    except Exception as exc:  # noqa: BLE001 - nats-py raises several unrelated types here
        raise ConnectFailed(
            f"cannot connect to NATS at {url}: {exc!r}. Is the server running? Start one with "
            "`grace up`, or pass the right --nats URL (or GRACE_NATS_URL).") from None
    return Bus(nc, host, source)


async def connect_and_ensure(url: str, *, host: str, source: str, replicas: int = 1,
                             ensure_timeout: float = 30.0, **kw: Any) -> Bus:
    """Connect and make sure the streams and buckets exist.

    JetStream answers API requests only once it has recovered its store (and, in a
    cluster, elected a leader): timeouts are retried for `ensure_timeout` seconds.
    """
    bus = await connect(url, host=host, source=source, **kw)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ensure_timeout
    try:
        while True:
            try:
                await topology.ensure_topology(bus.js, replicas)
                return bus
            except (TimeoutError, nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError,
                    nats.errors.NoRespondersError) as exc:
                if loop.time() > deadline:
                    raise BusError(
                        f"NATS at {url} accepted the connection but JetStream did not answer within "
                        f"{ensure_timeout:.0f}s ({exc!r}). Is JetStream enabled (-js) and has the "
                        "server finished recovering its store? Check the server's log.") from None
                await asyncio.sleep(0.25)
    except BaseException:
        await bus.close()
        raise


def chunks(items: Sequence[Event], size: int) -> Iterable[Sequence[Event]]:
    for i in range(0, len(items), size):
        yield items[i: i + size]
