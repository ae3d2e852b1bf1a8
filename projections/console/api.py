"""The console's read API (`GET /api/...`) and the page itself (`GET /`).

Every value comes from the projection by SQL (projections.queries, projections.console.queries),
read through `Projector.db` like the dashboard endpoint, as of the request's wall clock.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from aiohttp import web

from grace.config import Config
from projections import queries as dash
from projections.console import openapi, queries, sse
from projections.console.actions import Actions, BusFactory, error
from projections.projector import Projector
from projections.store import utcnow

STATIC = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}
MAX_LIMIT = 500


def _static(name: str) -> bytes:
    return resources.files("projections.console").joinpath("static", name).read_bytes()


def _int(request: web.Request, key: str, default: int | None, lo: int, hi: int) -> int | None:
    text = request.query.get(key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f'{{"error": "{key} must be an integer"}}',
                                 content_type="application/json") from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=f'{{"error": "{key} must be within {lo}..{hi}"}}',
                                 content_type="application/json")
    return value


class Api:
    def __init__(self, cfg: Config, projector: Projector) -> None:
        self.cfg = cfg
        self.projector = projector
        self.con = projector.store.con

    async def overview(self, _: web.Request) -> web.Response:
        def read() -> dict[str, Any]:
            now = utcnow()
            body = dash.dashboard(self.con, now=now, window_s=float(self.cfg.projection.degraded_window),
                                  interval_s=float(self.cfg.monitor.interval))
            return {"dashboard": body, "last_seq": self.projector.applied_seq,
                    "kernels": queries.kernels(self.con), "stages": queries.stages(self.con, now),
                    "open_tasks": queries.open_tasks(self.con)}

        return web.json_response(await self.projector.db(read))

    async def incidents(self, request: web.Request) -> web.Response:
        outcome = request.query.get("outcome") or None
        if outcome is not None and outcome not in queries.OUTCOMES:
            return error(400, f"outcome must be one of {', '.join(queries.OUTCOMES)}")
        limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        before = _int(request, "before", None, 0, 2**62)
        rows = await self.projector.db(lambda: queries.incidents(
            self.con, now=utcnow(), host=request.query.get("host") or None,
            playbook=request.query.get("playbook") or None, outcome=outcome, before=before,
            limit=limit or 100))
        return web.json_response({"last_seq": self.projector.applied_seq, "items": rows})

    async def incident(self, request: web.Request) -> web.Response:
        try:
            seq = int(request.match_info["seq"])
        except ValueError:
            return error(400, "the incident id is the log sequence number of its decision")
        if not 0 <= seq < 2**62:
            return error(404, f"no decision at log sequence {seq}")
        events = await self.projector.db(queries.chain, self.con, seq)
        if events is None:
            return error(404, f"no decision at log sequence {seq}; incident ids are the `seq` of "
                              "/api/incidents rows")
        return web.json_response({"seq": seq, "events": events})

    async def playbooks(self, _: web.Request) -> web.Response:
        rows = await self.projector.db(lambda: queries.playbooks(self.con, utcnow()))
        return web.json_response({"items": rows})

    async def snapshots(self, _: web.Request) -> web.Response:
        rows = await self.projector.db(lambda: queries.snapshots(self.con, utcnow()))
        return web.json_response({"items": rows})

    async def page(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in STATIC:
            raise web.HTTPNotFound
        return web.Response(body=_static(name), content_type=STATIC[name],
                            headers={"Cache-Control": "no-cache"})


def mount(app: web.Application, cfg: Config, projector: Projector,
          operator_bus: BusFactory | None = None) -> None:
    """Serve the console on `app`: `/`, `/static/*`, `/api/*`."""
    api = Api(cfg, projector)
    actions = Actions(cfg, projector, operator_bus)
    feed = sse.Feed(projector.applied_seq)
    projector.on_applied.append(feed.applied)
    app.on_shutdown.append(feed.close)
    app.on_cleanup.append(actions.close)
    doc = openapi.document()

    async def stream(request: web.Request) -> web.StreamResponse:
        return await sse.stream(request, feed)

    async def spec(_: web.Request) -> web.Response:
        return web.json_response(doc)

    r = app.router
    r.add_get("/", api.page)
    r.add_get("/static/{name}", api.page)
    r.add_get("/api/overview", api.overview)
    r.add_get("/api/incidents", api.incidents)
    r.add_get("/api/incidents/{seq}", api.incident)
    r.add_get("/api/playbooks", api.playbooks)
    r.add_get("/api/snapshots", api.snapshots)
    r.add_get("/api/stream", stream)
    r.add_get("/api/auth", actions.auth)
    r.add_get("/api/openapi.json", spec)
    r.add_post("/api/approvals/{command_id}/approve", actions.approve)
    r.add_post("/api/approvals/{command_id}/deny", actions.deny)
    r.add_post("/api/holds", actions.add_hold)
    r.add_post("/api/holds/{hold_id}/release", actions.release_hold)
