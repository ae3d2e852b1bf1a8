"""With `nats.auth: true` the intake publishes with the least roles that may: alerts as
`intake` (producer), `POST /events` as `ingest` (admin), rejects on the projector's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest_asyncio

from grace import auth, config, events, topology
from grace import bus as bus_mod
from grace.embedded import EmbeddedServer
from projections import intake
from tests.projections.intake_support import alert, host_events, notification, post, serve

HOST = "secured"


@pytest_asyncio.fixture(loop_scope="session")
async def secured(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedServer, Path]]:
    data = tmp_path / "data"
    auth.init(data)
    server = EmbeddedServer(tmp_path / "server", extra_conf=auth.server_conf(data))
    server.start()
    user, password = auth.credentials(data, "up")
    admin = await bus_mod.connect_and_ensure(server.url, host=HOST, source="t", user=user,
                                             password=password)  # only the admin makes streams
    await admin.close()
    yield server, data
    server.stop()


async def test_the_intake_publishes_alerts_events_and_rejects_with_auth_on(
        secured: tuple[EmbeddedServer, Path]) -> None:
    server, data = secured
    base = config.load(None)
    cfg = msgspec.structs.replace(base, nats=msgspec.structs.replace(base.nats, auth=True))
    user, password = auth.credentials(data, "project")
    projector = await bus_mod.connect_and_ensure(server.url, host=HOST, source="t", user=user,
                                                 password=password)
    try:
        async with serve(projector, data, HOST, cfg) as srv:
            status, body = await post(srv.url + intake.ALERTS_PATH,
                                      notification([alert("A", "fa", status="resolved",
                                                          ends="2026-12-02T10:01:00Z")]),
                                      srv.auth())
            assert status == 200 and body["stored"] == 2, body
            ev = events.make_event(events.HoldReleased(hold_id="h1", target="kernel:api", by="x"),
                                   host=HOST, source="t")
            status, body = await post(srv.url + intake.EVENTS_PATH, events.encode(ev), srv.auth())
            assert status == 200, body
            status, body = await post(srv.url + intake.EVENTS_PATH, b"{}", srv.auth())
            assert status == 400
        stored = await host_events(projector, HOST)
        assert [e.type for e in stored] == ["external_alert", "condition_cleared", "hold_released"]
        info = await projector.js.stream_info(topology.REJECTED)
        assert info.state.messages == 1
    finally:
        await projector.close()
