"""A projection with a story that ends now (so approvals are pending at the wall clock), and the
console app over it on a real aiohttp server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from aiohttp.test_utils import TestClient, TestServer

from grace import config as config_mod
from grace import events, tokens
from grace.bus import Bus, connect_and_ensure
from projections.http import make_app
from projections.projector import Projector
from projections.reducer import Reducer
from projections.store import Store
from tests.projections import sample

HOST = "web-1"


def recent_story(now: datetime) -> list[tuple[str, bytes]]:
    """sample.story() ending a minute ago, then a finding, an approval request (pending for
    15 minutes) and a suppression that cites that finding."""
    start = now - timedelta(seconds=120)
    pairs = sample.encoded(start=start)
    extra: list[events.Payload] = [
        events.ConfigDrift(path="config/db.yaml", expected_sha256="a", actual_sha256="b",
                           trigger="config_drift"),
    ]
    finding = events.make_event(extra[0], host=HOST, source="grace/web-1/produce",
                                id="finding-db", time=now - timedelta(seconds=30))
    request = events.make_event(events.ApprovalRequested(
        playbook="config_drift_detected", command_id="c9", action="restore_from_snapshot",
        target="config/db.yaml", cause_ids=["finding-db"], reason="config/db.yaml drifted",
        params={"path": "config/db.yaml"}, within_s=900, expires_at=now + timedelta(seconds=900)),
        host=HOST, source="grace/web-1/process", id="request-c9", time=now - timedelta(seconds=29))
    suppressed = events.make_event(events.DecisionSuppressed(
        playbook="config_drift_detected", reason="approval_pending", target="config/db.yaml",
        cause_ids=["finding-db"]), host=HOST, source="grace/web-1/process", id="supp-1",
        time=now - timedelta(seconds=28))
    for ev in (finding, request, suppressed):
        pairs.append((f"grace.events.{ev.category}.{ev.type}.{HOST}", events.encode(ev)))
    return pairs


def build(path: Path, pairs: list[tuple[str, bytes]]) -> Store:
    store = Store.open(path)
    store.apply(Reducer().reduce([(i + 1, s, raw) for i, (s, raw) in enumerate(pairs)]))
    return store


def config(data_dir: Path) -> config_mod.Config:
    return msgspec.structs.replace(config_mod.load(None), data_dir=str(data_dir), host=HOST)


@asynccontextmanager
async def console(tmp_path: Path, nats_url: str | None) -> AsyncIterator[tuple[TestClient[
        object, object], Projector, str]]:
    """(client, projector, token) over a fresh projection of recent_story()."""
    cfg = config(tmp_path / "data")
    token_file = tokens.write_token(cfg.data_path)
    store = build(tmp_path / "p.duckdb", recent_story(datetime.now(UTC)))
    projector = Projector(store)

    async def operator_bus() -> Bus:
        assert nats_url is not None
        return await connect_and_ensure(nats_url, host=HOST, source="grace/web-1/console")

    app = make_app(cfg, projector, None, operator_bus if nats_url else None)
    client: TestClient[object, object] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, projector, token_file.read_text().strip()
    finally:
        await client.close()
        await projector.close()
