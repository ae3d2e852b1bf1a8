"""The NATS connection every stage shares: connect, publish with broker acks, reject.

The wire work is the transport's (`grace.transport`: fast, or nats-py's public
API when `nats.fast_path` is false); consuming lives in `grace.consume`;
subject names in `grace.topology`.
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
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api

from grace import embedded, events, topology, transport
from grace.errors import BusError, ConnectFailed
from grace.events import Event, Heartbeat
from grace.events.base import MAX_PAYLOAD, Payload
from grace.transport import PayloadTooLarge, PubAck, PubItem, RawHandler, Transport
from grace.transport.base import MSG_ID_HEADER, check_payload

log = logging.getLogger(__name__)
# a file a stage touches on each heartbeat (set by the watchdog that starts it): the watchdog
# tells a stage that cannot reach NATS from a hung one
STAGE_BEAT_ENV = "GRACE_STAGE_BEAT"

_hb_encoder = msgspec.json.Encoder()
_MSG_ID_HEADER = len(MSG_ID_HEADER % b"")  # the header block without the id

__all__ = ["Bus", "PayloadTooLarge", "PubAck", "connect", "connect_and_ensure", "resolve_url"]


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
    """A connected transport (NATS client plus JetStream) with Grace's publish helpers."""

    def __init__(self, tr: Transport, host: str, source: str) -> None:
        self.transport = tr
        self.nc = tr.nc
        self.js: JetStreamContext = tr.js
        self.host = host
        self.source = source
        self.rejected_count = 0

    # ---------------------------------------------------------------- events

    def event(self, data: Payload, *, id: str | None = None, subject: str | None = None,
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

    def check_size(self, ev: Event, raw: bytes) -> None:
        """Raise PayloadTooLarge (naming the event's type) if the server would refuse it."""
        check_payload(self.nc, self.subject_of(ev), raw, _MSG_ID_HEADER + len(ev.id),
                      what=f"event {ev.type} (id {ev.id})")

    async def publish(self, ev: Event, timeout: float = 10.0) -> api.PubAck:
        """Publish one event and wait for the broker's ack (dedup by Nats-Msg-Id = id).

        Raises PayloadTooLarge before sending anything when the event is over the
        server's max_payload; the connection stays up.
        """
        raw = events.encode(ev)
        self.check_size(ev, raw)
        return await self.js.publish(self.subject_of(ev), raw, timeout=timeout,
                                     headers={"Nats-Msg-Id": ev.id})

    async def publish_many(self, evs: Sequence[Event], timeout: float = 30.0,
                           window: int = 2000) -> list[PubAck]:
        """Publish many events pipelined; return when every one is acked, in order.

        An event over the server's max_payload is not sent: it goes to GRACE_REJECTED
        with the reason, and the others are published. Raises BusError if any publish
        failed or timed out; some may be stored already, and re-publishing the whole
        list is safe: ids dedupe.
        """
        items: list[PubItem] = []
        # a closed connection has no limit to read: then check_size says it is closed
        limit = 0 if self.nc.is_closed else self.nc.max_payload - _MSG_ID_HEADER
        for ev in evs:
            raw = events.encode(ev)
            if len(raw) + len(ev.id) > limit:  # the common case costs one comparison
                try:
                    self.check_size(ev, raw)
                except PayloadTooLarge as exc:
                    await self.reject(raw, str(exc), stage=self.source.rsplit("/", 1)[-1],
                                      subject=self.subject_of(ev))
                    continue
            items.append((self.subject_of(ev), raw, ev.id))
        return await self.transport.publish_batch(items, timeout=timeout, window=window)

    async def publish_raw_many(self, items: Sequence[PubItem], *, timeout: float = 30.0,
                               window: int = 2000) -> list[PubAck]:
        """Publish (subject, payload, msg id) triples with broker acks, `window` in flight.

        Raises PayloadTooLarge before sending anything if one is over max_payload.
        """
        return await self.transport.publish_batch(items, timeout=timeout, window=window)

    async def ack(self, reply: str, kind: bytes = b"+ACK") -> None:
        """Acknowledge a delivery by its ack subject."""
        await self.transport.ack(reply, kind)

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        """Core-NATS subscription whose handler gets (subject, reply, data, headers)."""
        return await self.transport.subscribe_raw(subject, handler)

    async def reject(self, raw: bytes, reason: str, *, stage: str, subject: str = "",
                     seq: int | None = None) -> None:
        """Keep a message that failed to decode or validate, with its reason. Never drops it.

        A body over the server's max_payload is kept truncated; the reason says so.
        """
        headers = {topology.H_REJECT_REASON: _header_safe(reason),
                   topology.H_REJECT_STAGE: stage, topology.H_REJECT_SUBJECT: subject}
        if seq is not None:
            headers[topology.H_REJECT_SEQ] = str(seq)
            headers["Nats-Msg-Id"] = f"{stage}:{subject}:{seq}"
        keep = min(MAX_PAYLOAD, self.nc.max_payload) - 4096
        body = raw if len(raw) <= keep else raw[:keep]
        await self.js.publish(topology.rejected_subject(stage), body, headers=headers)
        self.rejected_count += 1
        log.warning("rejected a message on %s: %s", subject or "?", reason)

    # ---------------------------------------------------------------- heartbeats

    async def heartbeat(self, name: str, kind: str = "stage", seq: int = 0) -> None:
        """Core-NATS heartbeat on grace.heartbeat.<host>.<name>; never stored. A stage started
        by a watchdog also touches its local beat file (STAGE_BEAT_ENV): alive while cut off."""
        if kind == "stage" and (beat := os.environ.get(STAGE_BEAT_ENV)):
            try:
                _touch(beat)  # a local write of a few microseconds, once per heartbeat
            except OSError as exc:
                log.warning("could not touch the stage beat file %s (%s): the watchdog then "
                            "hears this stage only through NATS", beat, exc)
        hb = Heartbeat(name=name, kind=kind, pid=os.getpid(), time=events.now(), seq=seq)  # type: ignore[arg-type]
        await self.nc.publish(topology.heartbeat_subject(self.host, name), _hb_encoder.encode(hb))

    async def close(self) -> None:
        await self.transport.close()


def _touch(path: str) -> None:
    Path(path).touch()


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


# A link that goes down sends no reset: without pings answered, nats-py would hold a dead
# connection for its default 2 x 2 minutes. 5 s x 3 moves a client to another node within ~20 s.
PING_INTERVAL_S = 5
MAX_OUTSTANDING_PINGS = 3


async def connect(url: str, *, host: str, source: str, name: str = "grace",
                  credentials: str | None = None, tls: Any = None,
                  user: str | None = None, password: str | None = None,
                  connect_timeout: float = 3.0, fast_path: bool = True) -> Bus:
    """Connect once (fail fast with the URL and what to do), then reconnect forever.

    `fast_path` (the config's `nats.fast_path`; GRACE_FAST_PATH=0 overrides it)
    picks the transport implementation.
    """
    async def on_error(exc: Exception) -> None:
        log.warning("NATS %s: %r", url, exc)

    async def on_disconnect() -> None:
        if not (nc.is_closed or nc.is_draining):
            log.warning("NATS %s: disconnected; reconnecting", url)

    async def on_reconnect() -> None:
        log.info("NATS %s: reconnected", url)

    try:
        await _probe(url, connect_timeout)
        nc = transport.new_client(transport.fast_path_enabled(fast_path))
        # nats-py annotates these timeouts as int; it accepts seconds as float
        opts: dict[str, Any] = {
            "servers": split_servers(url), "name": name, "connect_timeout": connect_timeout,
            "allow_reconnect": True, "max_reconnect_attempts": -1, "reconnect_time_wait": 0.25,
            "user_credentials": credentials, "user": user, "password": password, "tls": tls,
            "error_cb": on_error, "disconnected_cb": on_disconnect,
            "reconnected_cb": on_reconnect, "pending_size": 64 * 1024 * 1024,
            "ping_interval": PING_INTERVAL_S, "max_outstanding_pings": MAX_OUTSTANDING_PINGS}
        await asyncio.wait_for(nc.connect(**opts), timeout=connect_timeout * 3)
    except Exception as exc:  # noqa: BLE001 - nats-py raises several unrelated types here
        raise ConnectFailed(
            f"cannot connect to NATS at {url}: {exc!r}. Is the server running? Start one with "
            "`grace up`, or pass the right --nats URL (or GRACE_NATS_URL).") from None
    return Bus(transport.wrap(nc), host, source)


async def connect_and_ensure(url: str, *, host: str, source: str, replicas: int = 1,
                             ensure_timeout: float = 30.0, events_max_age: float | None = None,
                             **kw: Any) -> Bus:
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
                await topology.ensure_topology(bus.js, replicas, events_max_age)
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
