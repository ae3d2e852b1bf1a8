"""Helpers for the HTTP intake tests: Alertmanager bodies, an in-process server, stream reads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from grace import config, events, tokens, topology
from grace.bus import Bus
from grace.consume import Delivery, read_range
from grace.embedded import free_port
from projections import intake


def alert(name: str, fp: str, status: str = "firing", starts: str = "2026-12-02T10:00:00Z",
          ends: str = "0001-01-01T00:00:00Z", **labels: str) -> dict[str, Any]:
    """One alert as Alertmanager sends it."""
    return {"status": status, "labels": {"alertname": name, **labels},
            "annotations": {"summary": f"{name} on {fp}"}, "startsAt": starts, "endsAt": ends,
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up", "fingerprint": fp}


def notification(alerts: list[dict[str, Any]], *, receiver: str = "grace",
                 truncated: int = 0) -> bytes:
    """An Alertmanager webhook body (payload version 4)."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return json.dumps({
        "version": "4", "groupKey": '{}:{alertname="HighLatency"}', "truncatedAlerts": truncated,
        "status": status, "receiver": receiver, "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency"}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "alerts": alerts}).encode()


@dataclass
class Server:
    """The intake on a real port, with its operator token."""

    url: str
    token: str
    cfg: config.Config

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@asynccontextmanager
async def serve(bus: Bus, data_dir: Path, host: str, cfg: config.Config | None = None
                ) -> AsyncIterator[Server]:
    """Mount the intake on an aiohttp app listening on a free port (the stage's own code)."""
    cfg = msgspec.structs.replace(cfg or config.load(None), host=host, data_dir=str(data_dir))
    tokens.write_token(data_dir)
    token = tokens.read_token(data_dir)
    assert token
    app = web.Application()
    intake.add_routes(app, cfg, bus)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Server(f"http://127.0.0.1:{port}", token, cfg)
    finally:
        await runner.cleanup()


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST and return (status, JSON body)."""
    async with aiohttp.ClientSession() as s, s.post(
            url, data=body, headers={"Content-Type": "application/json", **headers}) as r:
        text = await r.text()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = {"text": text}
        return r.status, parsed


async def host_events(bus: Bus, host: str, type_: str = "*") -> list[events.Event]:
    """Every event of `host` (and type) in the log, in order."""
    out: list[events.Event] = []

    async def keep(ds: list[Delivery[Any]]) -> None:
        out.extend(d.item for d in ds)

    await read_range(bus, 1, keep, filter_subject=topology.event_filter("*", type_, host))
    return out


async def rejected_since(bus: Bus, seq: int) -> list[str]:
    """The reasons of GRACE_REJECTED messages of the intake after stream sequence `seq`."""
    reasons = []
    last = (await bus.js.stream_info(topology.REJECTED)).state.last_seq
    for s in range(seq + 1, last + 1):
        msg = await bus.js.get_msg(topology.REJECTED, s)
        if msg.subject == topology.rejected_subject(intake.REJECT_STAGE) and msg.headers:
            reasons.append(msg.headers.get(topology.H_REJECT_REASON, ""))
    return reasons
