"""With `nats.auth: true` kernels connect as the `kernel` user `grace auth init` wrote: their
heartbeats arrive, so health_signal finds no gap and nobody restarts them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
import pytest_asyncio
from nats.aio.msg import Msg

from grace import bus as bus_mod
from grace import events, topology
from grace.app import demo
from grace.logwatch import LogWatcher, last_seq
from tests.e2e.conftest import (
    Running,
    _commit,
    _configure,
    booted,
    instance_pids,
    register,
)
from tests.support import grace_cmd, wait_for

KERNELS = ("api", "worker", "reporter")  # the example's kernels that send heartbeats
BEATS = 10  # per kernel: 20 s at the 2 s interval, past every heartbeat_timeout of the example


@pytest.fixture(scope="module")
def auth_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("auth") / "system"
    demo.init_copy(root)
    register(root)
    cfg = _configure(root)
    text = cfg.read_text()
    nats_line = "nats: {url: null, replicas: 1}"
    assert nats_line in text
    cfg.write_text(text.replace(nats_line, "nats: {url: null, replicas: 1, auth: true}"))
    _commit(root, "auth")
    init = grace_cmd("auth", "init", "-c", str(cfg))
    assert init.returncode == 0 and "kernel" in init.stdout, init.stderr
    with booted(root, cfg) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def admin_bus(auth_up: Running) -> AsyncIterator[bus_mod.Bus]:
    b = await auth_up.ctx().bus("up")  # the admin user: it may read everything
    yield b
    await b.close()


async def test_kernels_beat_as_the_kernel_user_and_are_not_restarted(
        auth_up: Running, admin_bus: bus_mod.Bus) -> None:
    pids = {k: instance_pids(auth_up, k) for k in KERNELS}
    assert all(pids.values()), pids
    watcher = LogWatcher(admin_bus, 1).start()  # the whole log since boot
    beats: dict[str, int] = dict.fromkeys(KERNELS, 0)

    async def on(msg: Msg) -> None:
        name = msgspec.json.decode(msg.data, type=events.Heartbeat).name
        beats[name] = beats.get(name, 0) + 1

    sub = await admin_bus.nc.subscribe(topology.heartbeat_filter("demo"), cb=on)
    try:
        await wait_for(lambda: all(beats[k] >= BEATS for k in KERNELS), timeout=90)
        end = await last_seq(admin_bus)  # read the log up to now (nothing is deleted this early)
        assert await watcher.wait(lambda seen: len(seen) >= end, timeout=30)
    finally:
        await sub.unsubscribe()
        await watcher.close()
    assert {k: instance_pids(auth_up, k) for k in KERNELS} == pids  # the same processes
    gaps = [e.data for e in watcher.seen if isinstance(e.data, events.KernelHeartbeatGap)]
    restarts = [e.data for e in watcher.seen
                if isinstance(e.data, events.KernelRestarted | events.KernelExited)]
    assert not gaps and not restarts, (gaps, restarts)
