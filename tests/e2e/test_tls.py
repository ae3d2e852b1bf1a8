"""The whole pipeline over TLS: `grace up` with `nats.tls` starts its embedded server with TLS
(mutual, with a CA the test makes), every stage and kernel connects with it, and a corrupted
model is restored byte for byte."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
import pytest_asyncio
from nats.aio.msg import Msg

from grace import bus as bus_mod
from grace import events, topology
from grace.app import demo
from grace.embedded import read_url
from tests import pki
from tests.e2e.conftest import (
    Running,
    _commit,
    _configure,
    booted,
    expect,
    register,
    succeeded,
    watch_from_now,
)
from tests.support import wait_for

KERNELS = {"api", "worker", "reporter"}  # the example's kernels that send heartbeats


@pytest.fixture(scope="module")
def tls_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("tls") / "system"
    demo.init_copy(root)
    register(root)
    cfg = _configure(root)
    certs = pki.make(root.parent / "pki")  # outside the working copy: never committed
    text = cfg.read_text()
    nats_line = "nats: {url: null, replicas: 1}"
    assert nats_line in text
    tls = {"ca": str(certs.ca), "cert": str(certs.both.cert), "key": str(certs.both.key)}
    cfg.write_text(text.replace(nats_line, f"nats: {{url: null, replicas: 1, tls: {json.dumps(tls)}}}"))
    _commit(root, "TLS")
    with booted(root, cfg) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def tls_bus(tls_up: Running) -> AsyncIterator[bus_mod.Bus]:
    b = await tls_up.ctx().bus("e2e-test")  # the config's TLS files, as every stage uses them
    yield b
    await b.close()


def server_info(url: str) -> dict[str, object]:
    host, port = url.removeprefix("nats://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        line = s.makefile("rb").readline()
    assert line.startswith(b"INFO "), line
    return json.loads(line[5:])  # type: ignore[no-any-return]


async def test_the_embedded_server_requires_tls_and_client_certificates(tls_up: Running) -> None:
    url = read_url(tls_up.data_dir)
    assert url
    info = server_info(url)
    assert info["tls_required"] is True and info["tls_verify"] is True


async def test_every_kernel_heartbeats_over_tls(tls_bus: bus_mod.Bus) -> None:
    seen: set[str] = set()

    async def on(msg: Msg) -> None:
        seen.add(msgspec.json.decode(msg.data, type=events.Heartbeat).name)

    sub = await tls_bus.nc.subscribe(topology.heartbeat_filter("demo"), cb=on)
    try:
        await wait_for(lambda: seen >= KERNELS, timeout=30)
    finally:
        await sub.unsubscribe()


async def test_model_corruption_is_healed_over_tls(tls_up: Running, tls_bus: bus_mod.Bus) -> None:
    model = tls_up.root / "models" / "model.pkl"
    good = hashlib.sha256(model.read_bytes()).hexdigest()
    w = await watch_from_now(tls_bus)
    try:
        tls_up.fault("model-corruption")
        found = await expect(w, events.ModelCorruption, timeout=30)
        assert found.actual_sha256 != good
        await expect(w, events.CommandSucceeded, succeeded("restore_model_weights"), timeout=30)
        assert hashlib.sha256(model.read_bytes()).hexdigest() == good  # the world, not the log
        await expect(w, events.VerifyPassed, lambda d: d.playbook == "model_corruption_detected", 30)
    finally:
        await w.close()
