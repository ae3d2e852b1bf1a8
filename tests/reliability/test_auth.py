"""`grace auth init`: one NATS user per component, allowed only its own subjects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from grace import auth, events, topology
from grace import bus as bus_mod
from grace.embedded import EmbeddedServer


@pytest_asyncio.fixture(loop_scope="session")
async def secured(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedServer, Path]]:
    data = tmp_path / "data"
    auth.init(data)
    server = EmbeddedServer(data, extra_conf=auth.server_conf(data))
    server.start()
    admin_user, admin_pw = auth.credentials(data, "up")
    admin = await bus_mod.connect_and_ensure(server.url, host="h", source="grace/h/up",
                                             user=admin_user, password=admin_pw)
    await admin.close()
    yield server, data
    server.stop()


async def connect_as(server: EmbeddedServer, data: Path, component: str) -> bus_mod.Bus:
    user, password = auth.credentials(data, component)
    return await bus_mod.connect_and_ensure(server.url, host="h", source=f"grace/h/{component}",
                                            user=user, password=password)


async def can_publish(b: bus_mod.Bus, payload: events.Payload) -> bool:
    try:
        await b.publish(b.event(payload), timeout=1.0)
    except Exception:  # noqa: BLE001 - a permissions violation surfaces as a timeout
        return False
    return True


FINDING = events.ModelCorruption(path="m.pkl", expected_sha256="a", actual_sha256="b", reason="x")
COMMAND = events.RestartKernel(kernel="api")
RESULT = events.CommandSucceeded(command_id="c1", action="restart_kernel")
DECISION = events.CommandIssued(playbook="p", command_id="c1", action="restart_kernel", target="api",
                                cause_ids=[])


async def test_a_producer_cannot_publish_commands(secured: tuple[EmbeddedServer, Path]) -> None:
    server, data = secured
    b = await connect_as(server, data, "produce")
    try:
        assert await can_publish(b, FINDING)
        assert await can_publish(b, events.SnapshotDue(every_s=3600.0, slot=1))  # its schedule
        assert not await can_publish(b, events.SnapshotTaken(path="m.pkl", snapshot="s", kind="model",
                                                             sha256="a", size=1))
        assert not await can_publish(b, COMMAND)
        assert not await can_publish(b, DECISION)
    finally:
        await b.close()


async def test_a_viewer_cannot_publish_anything(secured: tuple[EmbeddedServer, Path]) -> None:
    server, data = secured
    b = await connect_as(server, data, "tail")
    try:
        for payload in (FINDING, COMMAND, RESULT, DECISION):
            assert not await can_publish(b, payload), payload.TYPE
    finally:
        await b.close()


async def test_an_actuator_writes_only_results_and_kernel_events(
        secured: tuple[EmbeddedServer, Path]) -> None:
    server, data = secured
    b = await connect_as(server, data, "act")
    try:
        assert await can_publish(b, RESULT)
        assert await can_publish(b, events.KernelStarted(kernel="api", pid=1))
        assert not await can_publish(b, FINDING)
        assert not await can_publish(b, COMMAND)
        assert not await can_publish(b, DECISION)
    finally:
        await b.close()


async def test_the_processor_writes_decisions_and_commands_only(secured: tuple[EmbeddedServer, Path]) -> None:
    server, data = secured
    b = await connect_as(server, data, "process")
    try:
        assert await can_publish(b, COMMAND)
        assert await can_publish(b, DECISION)
        assert not await can_publish(b, FINDING)
        assert not await can_publish(b, RESULT)
    finally:
        await b.close()
    admin_user, admin_pw = auth.credentials(data, "cli")
    admin = await bus_mod.connect(server.url, host="h", source="t", user=admin_user, password=admin_pw)
    try:
        stored = (await admin.js.stream_info(topology.COMMANDS)).state.messages
    finally:
        await admin.close()
    assert stored == 1  # only the processor's command reached the work queue


def test_missing_credentials_say_to_run_auth_init(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="grace auth init"):
        auth.credentials(tmp_path, "produce")
