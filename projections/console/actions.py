"""The console's actions: approve / deny a pending approval, add / release a hold.

Each needs the operator token (`Authorization: Bearer`, <data_dir>/auth/operator.token) and
runs the same checks and builds the same event as `grace approve | deny | hold` (grace.
operator_actions), against the hold and approval state of the projection. The event is
published on a connection of the `operator` role; no action publishes a command: an approval
is an `approval_granted` the processor acts on, as when the CLI sends it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import duckdb
import msgspec
from aiohttp import web

from grace import events, operator_actions, tokens
from grace.bus import Bus
from grace.config import Config
from grace.errors import GraceError
from grace.operator_state import LogState
from projections.console import queries
from projections.projector import Projector

log = logging.getLogger(__name__)

BusFactory = Callable[[], Awaitable[Bus]]
MAX_BODY = 16 * 1024
DEFAULT_BY = "console"


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def operator_state(con: duckdb.DuckDBPyConnection) -> tuple[LogState, list[str]]:
    """Holds and approvals as the projection holds them, and the playbooks it has seen."""
    state = LogState()
    for seq, time, type_, host, source, id_, data in queries.operator_events(con):
        raw = msgspec.json.encode({
            "specversion": "1.0", "datacontenttype": "application/json", "id": id_,
            "source": source, "time": time.isoformat() + "Z", "host": host, "type": type_,
            "data": json.loads(data)})
        state.apply(events.decode(raw))
        state.last_seq = seq
    return state, queries.playbook_names(con)


class Actions:
    """POST handlers; `operator_bus` opens the operator connection on first use."""

    def __init__(self, cfg: Config, projector: Projector, operator_bus: BusFactory | None) -> None:
        self.cfg = cfg
        self.projector = projector
        self.operator_bus = operator_bus
        self._bus: Bus | None = None

    async def close(self, _app: web.Application | None = None) -> None:
        if self._bus is not None:
            await self._bus.close()
            self._bus = None

    def authorize(self, request: web.Request) -> str | None:
        """Why the request may not act (None: it may)."""
        where = tokens.token_path(self.cfg.data_path)
        try:
            expected = tokens.read_token(self.cfg.data_path)
        except GraceError as exc:
            return str(exc)
        if expected is None:
            return (f"read-only: this Grace has no operator token ({where} is missing); create "
                    "it with `grace auth init` (or restart `grace up`), then paste it here")
        header = request.headers.get("Authorization")
        if not header:
            return (f"read-only: actions need the operator token (Authorization: Bearer); it is "
                    f"in {where} on the machine running Grace")
        if not tokens.bearer_ok(header, expected):
            return f"the token sent is not the operator token in {where}; paste that file's content"
        return None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    @staticmethod
    def _text(body: dict[str, Any], key: str, default: str | None = None) -> str | None:
        value = body.get(key, default)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{key!r} must be a string")
        return value

    async def _publish(self, ev: events.Event, duplicate: operator_actions.ActionRefused
                       ) -> web.Response:
        if self.operator_bus is None:
            return error(503, "this server has no NATS connection for actions (started without "
                              "one); use the `grace` CLI")
        try:
            if self._bus is None:
                self._bus = await self.operator_bus()
            ack = await self._bus.publish(ev)
        except GraceError as exc:
            return error(503, f"could not record the action in the log: {exc}")
        except Exception as exc:  # noqa: BLE001 - NATS errors of several types: say so, stay up
            log.warning("console action not published: %r", exc)
            return error(503, f"could not record the action in the log ({exc!r}); NATS may be "
                              "down: retry, or use the `grace` CLI")
        if ack.duplicate:
            return error(409, str(duplicate))
        return web.json_response({"type": ev.type, "id": ev.id, "host": ev.host, "seq": ack.seq,
                                  "data": msgspec.to_builtins(ev.data)})

    async def _run(self, request: web.Request,
                   build: Callable[[LogState, list[str], dict[str, Any], operator_actions.Actor],
                                   tuple[events.Event, operator_actions.ActionRefused]]
                   ) -> web.Response:
        why = self.authorize(request)
        if why is not None:
            return error(401, why)
        try:
            body = await self._body(request)
            by = (self._text(body, "by") or "").strip() or DEFAULT_BY
            actor = operator_actions.Actor(by=by, via="http", host=self.cfg.host,
                                           source=f"grace/{self.cfg.host}/console")
            state, names = await self.projector.db(operator_state, self.projector.store.con)
            ev, duplicate = build(state, names, body, actor)
        except BadRequest as exc:
            return error(400, str(exc))
        except operator_actions.ActionRefused as exc:
            return error(409, f"{exc} Nothing was published.")
        return await self._publish(ev, duplicate)

    async def approve(self, request: web.Request) -> web.Response:
        cid = request.match_info["command_id"]

        def build(state: LogState, _n: list[str], _b: dict[str, Any],
                  actor: operator_actions.Actor) -> tuple[events.Event, operator_actions.ActionRefused]:
            ev, _rec = operator_actions.decide(state, actor, cid, events.now())
            return ev, operator_actions.duplicate_decision(cid)

        return await self._run(request, build)

    async def deny(self, request: web.Request) -> web.Response:
        cid = request.match_info["command_id"]

        def build(state: LogState, _n: list[str], body: dict[str, Any],
                  actor: operator_actions.Actor) -> tuple[events.Event, operator_actions.ActionRefused]:
            reason = self._text(body, "reason") or ""
            ev, _rec = operator_actions.decide(state, actor, cid, events.now(), deny_reason=reason)
            return ev, operator_actions.duplicate_decision(cid)

        return await self._run(request, build)

    async def add_hold(self, request: web.Request) -> web.Response:
        def build(state: LogState, names: list[str], body: dict[str, Any],
                  actor: operator_actions.Actor) -> tuple[events.Event, operator_actions.ActionRefused]:
            target = self._text(body, "target") or ""
            ev = operator_actions.add_hold(
                self.cfg, state, actor, target=target, for_=self._text(body, "for"),
                reason=self._text(body, "reason") or "", playbook_names=names, now=events.now())
            return ev, operator_actions.ActionRefused("the same hold was recorded twice")

        return await self._run(request, build)

    async def release_hold(self, request: web.Request) -> web.Response:
        hold_id = request.match_info["hold_id"]

        def build(state: LogState, _n: list[str], _b: dict[str, Any],
                  actor: operator_actions.Actor) -> tuple[events.Event, operator_actions.ActionRefused]:
            ev, _rec = operator_actions.release_hold(state, actor, hold_id, events.now())
            return ev, operator_actions.duplicate_release(hold_id)

        return await self._run(request, build)

    async def auth(self, request: web.Request) -> web.Response:
        """Whether this request's token may act, and why not."""
        why = self.authorize(request)
        return web.json_response({"authorized": why is None, "reason": why or "",
                                  "token_file": str(tokens.token_path(self.cfg.data_path))})


class BadRequest(GraceError):
    """A request body or parameter this API cannot use."""
