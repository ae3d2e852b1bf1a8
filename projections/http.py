"""HTTP from the projector's live connection: the console (/, /api/), /operator/dashboard,
/metrics, /healthz, and the intake (POST /hooks/alertmanager, POST /events: projections.intake).

Metrics come from a custom Prometheus collector that queries the projection
at scrape time, so they can never disagree with the dashboard file.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import duckdb
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from grace import topology
from grace.bus import Bus
from grace.config import Config
from projections import console, intake, queries
from projections.projector import Projector
from projections.store import utcnow

log = logging.getLogger(__name__)


class ProjectionCollector:
    """Prometheus collector: counts and lag read from the projection when scraped."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.stream_last_seq = 0  # set before each scrape (needs the bus, which is async)
        self.now: datetime | None = None

    def collect(self) -> Iterator[Metric]:
        con = self.con
        checks = CounterMetricFamily("grace_checks", "Trigger checks run, by trigger and outcome",
                                     labels=["trigger", "outcome"])
        for trigger, outcome, n in con.execute(queries.CHECKS_BY_TRIGGER).fetchall():
            checks.add_metric([trigger, outcome], n)
        yield checks
        issues = CounterMetricFamily("grace_issues", "Findings reported, by trigger and type",
                                     labels=["trigger", "type"])
        for trigger, type_, n in con.execute(queries.ISSUES_BY_TRIGGER).fetchall():
            issues.add_metric([trigger, type_], n)
        yield issues
        findings = CounterMetricFamily(
            "grace_findings", "Distinct findings (a re-publication while active counts once), "
            "by trigger and type", labels=["trigger", "type"])
        for trigger, type_, n in con.execute(queries.FINDINGS).fetchall():
            findings.add_metric([trigger, type_], n)
        yield findings
        tasks = GaugeMetricFamily("grace_fix_tasks", "Fix tasks by state (open until reported; "
                                  "unverified: nothing was checked)", labels=["state"])
        for state, n in queries.fix_tasks(con).items():
            tasks.add_metric([state], n)
        yield tasks
        now = self.now or utcnow()
        yield GaugeMetricFamily("grace_holds_active", "Holds (maintenance windows) in force now",
                                value=queries.holds(con, now)["active"])
        yield GaugeMetricFamily("grace_approvals_pending",
                                "Commands waiting for `grace approve` (not denied or expired)",
                                value=queries.approvals(con, now)["pending"])
        actions = CounterMetricFamily("grace_actions", "Command results, by action and outcome",
                                      labels=["action", "outcome"])
        for action, outcome, n in con.execute(queries.ACTIONS_BY_OUTCOME).fetchall():
            actions.add_metric([action, outcome], n)
        yield actions
        kernels = GaugeMetricFamily("grace_kernels", "Kernel instances by state", labels=["state"])
        for state, n in con.execute(queries.KERNELS_BY_STATE).fetchall():
            kernels.add_metric([state], n)
        yield kernels
        st = queries.state(con)
        last_seq = st["last_seq"] or 0
        yield GaugeMetricFamily("grace_projection_last_seq", "Last log sequence applied",
                                value=last_seq)
        yield CounterMetricFamily("grace_projection_events", "Events applied", value=st["events"] or 0)
        yield CounterMetricFamily("grace_projection_unknown_events",
                                  "Events kept with an unknown type or invalid payload",
                                  value=st["unknown_events"] or 0)
        lag = max(0, self.stream_last_seq - last_seq)
        yield GaugeMetricFamily("grace_projection_lag_events",
                                "Events in the log not yet in the projection", value=lag)
        lag_s = 0.0
        if lag and st["last_event_time"] is not None:
            # the newest applied event's age: how far behind the projection is, at least
            lag_s = max(0.0, ((self.now or utcnow()) - st["last_event_time"]).total_seconds())
        yield GaugeMetricFamily("grace_projection_lag_seconds",
                                "Age of the newest applied event while events are pending",
                                value=lag_s)


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":PORT" means every interface


def make_app(cfg: Config, projector: Projector, bus: Bus | None,
             operator_bus: Callable[[], Awaitable[Bus]] | None = None) -> web.Application:
    collector = ProjectionCollector(projector.store.con)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)

    async def stream_last_seq() -> int:
        if bus is None:
            return projector.applied_seq
        info = await bus.js.stream_info(topology.EVENTS)
        return int(info.state.last_seq)

    async def dashboard(_: web.Request) -> web.Response:
        body = await projector.db(lambda: queries.dashboard(
            projector.store.con, now=utcnow(), window_s=float(cfg.projection.degraded_window),
            interval_s=float(cfg.monitor.interval)))
        return web.json_response(body)

    async def metrics(_: web.Request) -> web.Response:
        collector.stream_last_seq = await stream_last_seq()
        collector.now = utcnow()
        text = await projector.db(generate_latest, registry)
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ok", "last_seq": projector.applied_seq}
        try:
            body["lag_events"] = max(0, await stream_last_seq() - projector.applied_seq)
        except Exception as exc:  # noqa: BLE001 - NATS down: still answer, and say so
            body["status"], body["nats"] = "degraded", repr(exc)
        if projector.write_error:
            body["status"], body["write_error"] = "failing", projector.write_error
        return web.json_response(body, status=503 if body["status"] == "failing" else 200)

    app = web.Application()
    app.router.add_get("/operator/dashboard", dashboard)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    intake.add_routes(app, cfg, bus)  # POST /hooks/alertmanager, POST /events
    console.mount(app, cfg, projector, operator_bus)
    return app


async def serve(cfg: Config, projector: Projector, bus: Bus | None,
                operator_bus: Callable[[], Awaitable[Bus]] | None = None) -> web.AppRunner | None:
    """Listen on `http.listen` ('' turns HTTP off). A busy port is logged, not fatal."""
    if not cfg.http.listen:
        return None
    host, port = parse_listen(cfg.http.listen)
    runner = web.AppRunner(make_app(cfg, projector, bus, operator_bus), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.error("cannot listen on %s (http.listen): %s; the projection keeps running without "
                  "HTTP. Free the port or set another http.listen in the config.",
                  cfg.http.listen, exc)
        await runner.cleanup()
        return None
    log.info("console on http://%s:%d/, dashboard on /operator/dashboard, metrics on /metrics",
             host, port)
    return runner
