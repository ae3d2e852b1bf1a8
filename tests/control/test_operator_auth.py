"""With nats.auth on: only the operator role publishes people's decisions, and the operator
commands work as that role."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest_asyncio

from grace import auth, events
from grace import bus as bus_mod
from grace.config import Config
from grace.embedded import EmbeddedServer
from tests.control.support import cli, operator_config, operator_events, said
from tests.support import grace_cmd

HOLD = events.HoldAdded(hold_id="a1b2c3d4", target="kernel:api", until=datetime(
    2030, 1, 1, tzinfo=UTC), for_s=60, reason="r", by="x")
GRANT = events.ApprovalGranted(command_id="c1", by="x")
DENY = events.ApprovalDenied(command_id="c1", by="x", reason="no")
RELEASE = events.HoldReleased(hold_id="a1b2c3d4", target="kernel:api", by="grace", via="expiry",
                              reason="expired")


@dataclass
class Secured:
    root: Path
    cfg: Config
    server: EmbeddedServer

    async def connect(self, component: str) -> bus_mod.Bus:
        user, password = auth.credentials(self.cfg.data_path, component)
        return await bus_mod.connect_and_ensure(self.server.url, host=self.cfg.host,
                                                source=f"grace/t/{component}", user=user,
                                                password=password)


@pytest_asyncio.fixture(loop_scope="session")
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    """A config with nats.auth: true, `grace auth init` run by the real CLI, a server using it."""
    cfg = operator_config(tmp_path, nats={"auth": True})
    init = grace_cmd("auth", "init", "-c", str(tmp_path / "grace.yaml"))
    assert init.returncode == 0, init.stderr
    server = EmbeddedServer(tmp_path / "server", extra_conf=auth.server_conf(cfg.data_path))
    server.start()
    s = Secured(tmp_path, cfg, server)
    admin = await s.connect("up")  # only the admin creates the streams
    await admin.close()
    yield s
    server.stop()


async def can_publish(b: bus_mod.Bus, payload: events.Payload) -> bool:
    try:
        await b.publish(b.event(payload), timeout=1.0)
    except Exception:  # noqa: BLE001 - a permissions violation surfaces as a timeout
        return False
    return True


async def test_only_the_operator_role_publishes_holds_and_approvals(secured: Secured) -> None:
    operator = await secured.connect("operator")
    try:
        for payload in (HOLD, GRANT, DENY):
            assert await can_publish(operator, payload), payload.TYPE
        assert not await can_publish(operator, events.RestartKernel(kernel="api"))
    finally:
        await operator.close()
    for component in ("tail", "dashboard", "produce", "act", "project"):
        b = await secured.connect(component)
        try:
            for payload in (HOLD, GRANT, DENY, RELEASE):
                assert not await can_publish(b, payload), (component, payload.TYPE)
        finally:
            await b.close()
    processor = await secured.connect("process")
    try:  # the processor records a hold's expiry, and decides nothing for people
        assert await can_publish(processor, RELEASE)
        assert not await can_publish(processor, HOLD) and not await can_publish(processor, GRANT)
    finally:
        await processor.close()


async def test_the_operator_commands_work_with_auth_on(secured: Secured) -> None:
    root, url, host = secured.root, secured.server.url, secured.cfg.host
    added = cli(root, url, "hold", "add", "kernel:api/1", "--for", "15m", "--reason", "upgrade")
    assert added.returncode == 0, said(added)
    hold_id = added.stdout.split()[1]
    listed = json.loads(cli(root, url, "hold", "list", "--json").stdout)
    assert [h["hold_id"] for h in listed] == [hold_id]
    assert cli(root, url, "hold", "release", hold_id).returncode == 0

    processor = await secured.connect("process")
    try:
        await processor.publish(processor.event(events.ApprovalRequested(
            playbook="kernel_heartbeat_gap", command_id="cmd-auth-1", action="restart_kernel",
            target="api", cause_ids=[], within_s=900,
            expires_at=datetime.now(UTC) + timedelta(minutes=15))))
    finally:
        await processor.close()
    pending = json.loads(cli(root, url, "approvals", "--json").stdout)
    assert [p["command_id"] for p in pending] == ["cmd-auth-1"]
    ok = cli(root, url, "approve", "cmd-auth-1")
    assert ok.returncode == 0, said(ok)

    viewer = await secured.connect("tail")
    try:
        types = [e.type for e in await operator_events(viewer, host)]
    finally:
        await viewer.close()
    assert types == ["hold_added", "hold_released", "approval_granted"]
