"""HTTP intake: `POST /hooks/alertmanager` (Alertmanager's webhook) and `POST /events`.

Both ask for the operator token (`Authorization: Bearer`, grace.tokens) and answer 2xx only
after JetStream acknowledged every event of the request, so a sender that retries until it
gets a 2xx (Alertmanager does) loses nothing when this process dies mid-request; ids derived
from the content make the retry store nothing twice. Bad input gets a 4xx with the reason and
is kept in GRACE_REJECTED (requests without the token are not: they never write to NATS).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
from aiohttp import web

from grace import events, tokens
from grace.bus import Bus
from grace.cliutil import Context
from grace.config import Config
from grace.errors import EventError, GraceError
from projections import alertmanager

log = logging.getLogger(__name__)

ALERTS_PATH = "/hooks/alertmanager"
EVENTS_PATH = "/events"
MAX_ALERTS_BODY = 8 * 1024 * 1024  # a notification of many alerts; each event stays under 1 MiB
MAX_EVENT_BODY = events.MAX_PAYLOAD
REJECT_STAGE = "intake"
MAX_DEPTH = 32  # containers inside an event's data: Python's json (a reader of the log) stops near 1000
_HOST = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # one subject token: no dots, no wildcards


class TooLarge(GraceError):
    """A request body over the endpoint's limit."""


class Intake:
    """The two endpoints; publishing connections are opened on first use, closed on cleanup."""

    def __init__(self, cfg: Config, bus: Bus | None) -> None:
        self.cfg, self.bus = cfg, bus
        self._buses: dict[str, Bus] = {}
        self._lock = asyncio.Lock()

    async def publisher(self, component: str) -> Bus:
        """A connection as `component` (its own NATS role), opened once."""
        async with self._lock:
            found = self._buses.get(component)
            if found is not None:
                return found
            assert self.bus is not None
            urls = ",".join(u.geturl() for u in self.bus.nc.servers) or None
            ctx = Context(self.cfg, urls)
            # literal names: tests/foundation/test_roles.py finds them and checks their roles
            bus = await (ctx.bus("intake") if component == "intake" else ctx.bus("ingest"))
            self._buses[component] = bus
            return bus

    async def close(self, _app: web.Application) -> None:
        for bus in self._buses.values():
            await bus.close()
        self._buses.clear()

    async def authorized(self, request: web.Request) -> bool:
        expected = await asyncio.to_thread(tokens.read_token, self.cfg.data_path)
        return tokens.bearer_ok(request.headers.get("Authorization"), expected)

    async def reject(self, raw: bytes, reason: str, path: str, status: int = 400) -> web.Response:
        """Answer `status` with the reason, and keep the body in GRACE_REJECTED."""
        if self.bus is not None:
            try:
                await self.bus.reject(raw, reason, stage=REJECT_STAGE, subject=path)
            except Exception as exc:  # noqa: BLE001 - the answer still says what was wrong
                log.warning("could not record a rejected %s request in GRACE_REJECTED: %r",
                            path, exc)
        return web.json_response({"error": reason}, status=status)

    async def alerts(self, request: web.Request) -> web.Response:
        """Alertmanager's webhook: every alert an event, answered after the broker's acks."""
        return await self._handle(request, MAX_ALERTS_BODY, self._alerts)

    async def events(self, request: web.Request) -> web.Response:
        """One CloudEvents structured-mode event of a known Grace type, validated, published."""
        return await self._handle(request, MAX_EVENT_BODY, self._event)

    async def _handle(self, request: web.Request, limit: int,
                      body_handler: Callable[[bytes], Awaitable[web.Response]]) -> web.Response:
        path = request.path
        if not await self.authorized(request):
            log.warning("refused %s from %s: no valid operator token", path, request.remote)
            return web.json_response(
                {"error": "send the operator token as `Authorization: Bearer <token>`; "
                          f"it is in {tokens.token_path(self.cfg.data_path)} (`grace auth init` "
                          "writes it)"}, status=401)
        if self.bus is None:
            return web.json_response({"error": "not connected to NATS; retry later"}, status=503)
        try:
            raw = await _read(request, limit)
        except TooLarge as exc:
            return await self.reject(b"", str(exc), path, status=413)
        try:
            return await body_handler(raw)
        except EventError as exc:
            return await self.reject(raw, str(exc), path)
        except (GraceError, nats.errors.Error, OSError, TimeoutError) as exc:  # NATS: the sender retries
            log.warning("%s: could not publish (%r); answered 503 so the sender retries", path, exc)
            return web.json_response({"error": f"could not store the events: {exc}; retry "
                                               "(event ids dedupe)"}, status=503)

    async def _alerts(self, raw: bytes) -> web.Response:
        note = alertmanager.decode(raw)
        if note.truncated_alerts > 0:
            log.warning("Alertmanager left %d alerts out of a notification to %s (group %s): "
                        "raise max_alerts in its webhook_config to receive them all",
                        note.truncated_alerts, note.receiver, note.group_key)
        bus = await self.publisher("intake")
        evs = [bus.event(data, id=event_id) for event_id, data in alertmanager.to_payloads(note)]
        for ev in evs:
            if len(events.encode(ev)) > events.MAX_PAYLOAD:
                raise EventError(f"an alert of {ev.data.TYPE} is over the "
                                 f"{events.MAX_PAYLOAD}-byte event limit: shorten its labels or "
                                 "annotations", raw)
        acks = await bus.publish_many(evs) if evs else []
        body: dict[str, Any] = {
            "alerts": len(note.alerts), "events": len(evs),
            "stored": sum(1 for a in acks if not a.duplicate),
            "duplicates": sum(1 for a in acks if a.duplicate),
            "truncated_alerts": note.truncated_alerts}
        return web.json_response(body)

    async def _event(self, raw: bytes) -> web.Response:
        try:
            ev = events.decode(raw)  # the bus's decoding: envelope, type and data in one pass
        except RecursionError:
            raise EventError(f"JSON nested too deeply; an event nests at most {MAX_DEPTH} "
                             "levels", raw) from None
        data = ev.data
        if _deeper_than(msgspec.to_builtins(data), MAX_DEPTH):
            raise EventError(f"data nested deeper than {MAX_DEPTH} levels: every reader of the "
                             "log must be able to decode it; flatten it", raw)
        if isinstance(data, (events.Command, events.FixTask)):
            raise EventError(f"{data.TYPE} is not accepted here: commands come from playbooks "
                             "(grace approve for approvals), fix tasks from the actuator", raw)
        if not _HOST.match(ev.host):
            raise EventError(f"host {ev.host!r} cannot be a subject token: use letters, digits, "
                             "'-' and '_' only", raw)
        bus = await self.publisher("ingest")
        ack = await bus.publish(ev)
        return web.json_response({"id": ev.id, "type": data.TYPE, "seq": ack.seq,
                                  "duplicate": bool(ack.duplicate)})


def _deeper_than(value: object, limit: int) -> bool:
    """Whether `value` (JSON builtins) nests more than `limit` containers deep."""
    if isinstance(value, dict):
        return limit <= 0 or any(_deeper_than(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return limit <= 0 or any(_deeper_than(v, limit - 1) for v in value)
    return False


async def _read(request: web.Request, limit: int) -> bytes:
    """The body, refusing one over `limit` bytes before reading it all."""
    length = request.content_length
    if length is not None and length > limit:
        raise TooLarge(f"body of {length} bytes is over the {limit}-byte limit of {request.path}")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body over the {limit}-byte limit of {request.path}")
        chunks.append(chunk)


def add_routes(app: web.Application, cfg: Config, bus: Bus | None) -> None:
    """Mount the intake on the HTTP server (projections.http.make_app)."""
    intake = Intake(cfg, bus)
    app.router.add_post(ALERTS_PATH, intake.alerts)
    app.router.add_post(EVENTS_PATH, intake.events)
    app.on_cleanup.append(intake.close)
