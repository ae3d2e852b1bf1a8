"""grace.heartbeat in a real child process; health_signal sees its gap and its death."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import msgspec
import psutil
import pytest

from grace import config, events, heartbeat, kernelstate
from grace.bus import Bus
from grace.durations import parse_duration
from producers.base import make_env
from producers.health_signal import HealthSignal
from producers.state import StateStore
from tests.support import wait_for

CHILD = """
import signal, time, grace.heartbeat
hb = grace.heartbeat.start("svc", interval=0.1)
assert hb is not None
signal.signal(signal.SIGUSR1, lambda *_: hb.stop())  # a hung service: alive, silent
while True:
    time.sleep(1)
"""


def _cfg(tmp_path: Path, host: str, timeout: str = "0.5s") -> config.Config:
    cfg = config.load(None)
    kernel = config.Kernel(name="svc", command=["python"], heartbeat_timeout=parse_duration(timeout))
    return msgspec.structs.replace(cfg, host=host, kernels=[kernel], config_dir=str(tmp_path))


async def test_kernel_that_stops_heartbeating_is_a_gap_and_a_dead_one_is_process_gone(
        bus: Bus, nats_url: str, tmp_path: Path) -> None:
    host = "hb-" + uuid.uuid4().hex[:8]
    cfg = _cfg(tmp_path, host)
    env = make_env(cfg, StateStore(tmp_path / "state"), bus)
    await env.shared.heartbeats.listen(bus.nc)
    trig = HealthSignal(env)
    child = subprocess.Popen([sys.executable, "-c", CHILD],
                             env={**os.environ, "GRACE_NATS_URL": nats_url, "GRACE_HOST": host})
    try:
        await wait_for(lambda: env.shared.heartbeats.pid("svc") == child.pid, timeout=10)
        assert (await trig.check()).findings == []
        child.send_signal(signal.SIGUSR1)  # alive, but silent
        gap = await wait_for(lambda: _findings(trig), timeout=10)
        [f] = gap
        assert isinstance(f, events.KernelHeartbeatGap)
        # reported once the gap passed the timeout; gap_s is rounded to the millisecond
        assert f.reason == "heartbeat_gap" and f.gap_s is not None and f.gap_s >= f.timeout_s == 0.5
        assert f.pid == child.pid
        child.kill()
        child.wait()
        [f] = (await trig.check()).findings
        assert f.reason == "process_gone" and f.pid == child.pid
    finally:
        child.kill()
        child.wait()
        await env.shared.heartbeats.close()


async def test_a_kernel_suspended_by_shed_load_is_not_a_gap_but_one_stopped_by_others_is(
        bus: Bus, nats_url: str, tmp_path: Path) -> None:
    host = "hb-" + uuid.uuid4().hex[:8]
    env = make_env(_cfg(tmp_path, host), StateStore(tmp_path / "state"), bus)
    await env.shared.heartbeats.listen(bus.nc)
    trig = HealthSignal(env)
    child = subprocess.Popen([sys.executable, "-c", CHILD],
                             env={**os.environ, "GRACE_NATS_URL": nats_url, "GRACE_HOST": host})
    try:
        await wait_for(lambda: env.shared.heartbeats.pid("svc") == child.pid, timeout=10)
        child.send_signal(signal.SIGSTOP)  # what shed_load does, and records as "suspended"
        kernelstate.write(kernelstate.state_path(env.cfg), [kernelstate.Recorded(
            kernel="svc", index=0, pid=child.pid, create_time=psutil.Process(child.pid).create_time(),
            state="suspended")])
        await asyncio.sleep(1.0)  # twice the heartbeat timeout
        result = await trig.check()
        assert result.findings == []
        assert result.stats["kernels_suspended"] == 1
        # the same stop by someone else (the record says running): a hung kernel, a gap
        kernelstate.write(kernelstate.state_path(env.cfg), [kernelstate.Recorded(
            kernel="svc", index=0, pid=child.pid, create_time=psutil.Process(child.pid).create_time())])
        [gap] = (await trig.check()).findings
        assert isinstance(gap, events.KernelHeartbeatGap) and gap.reason == "heartbeat_gap"
        assert gap.pid == child.pid and gap.instance == 0
    finally:
        child.kill()
        child.wait()
        await env.shared.heartbeats.close()


async def _findings(trig: HealthSignal) -> list[events.Trigger] | None:
    return (await trig.check()).findings or None


async def test_kernel_never_heard_is_a_gap_after_its_timeout_from_listening(tmp_path: Path) -> None:
    now = [1000.0]
    cfg = _cfg(tmp_path, "h1", timeout="15s")
    env = make_env(cfg, StateStore(tmp_path / "s"), clock=lambda: now[0])
    env.shared.heartbeats.listening = True
    env.shared.heartbeats.started_at = 1000.0
    trig = HealthSignal(env)
    now[0] = 1014.0
    assert (await trig.check()).findings == []
    now[0] = 1016.0
    [f] = (await trig.check()).findings
    assert isinstance(f, events.KernelHeartbeatGap) and f.last_seen is None and f.gap_s == 16.0


def test_heartbeat_without_url_is_a_noop_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRACE_NATS_URL", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert heartbeat.start("api") is None
    assert any("GRACE_NATS_URL" in str(w.message) for w in caught)


async def test_heartbeater_sends_heartbeat_json_on_the_topology_subject(bus: Bus, nats_url: str) -> None:
    host = "hb-" + uuid.uuid4().hex[:8]
    got: list[bytes] = []

    async def on(msg: object) -> None:
        got.append(msg.data)  # type: ignore[attr-defined]

    sub = await bus.nc.subscribe(f"grace.heartbeat.{host}.api", cb=on)
    hb = heartbeat.start("api", url=nats_url, host=host, interval=0.05)
    assert hb is not None
    try:
        await wait_for(lambda: len(got) >= 2, timeout=5)
    finally:
        hb.stop()
        await sub.unsubscribe()
    beat = msgspec.json.decode(got[0], type=events.Heartbeat)
    assert beat.name == "api" and beat.kind == "kernel" and beat.pid == os.getpid()
    assert time.time() - beat.time.timestamp() < 10


async def test_heartbeats_resume_after_the_server_restarts(fresh_server: object) -> None:
    from grace import bus as bus_mod
    from grace.embedded import EmbeddedServer

    assert isinstance(fresh_server, EmbeddedServer)
    hb = heartbeat.start("api", url=fresh_server.url, host="restart", interval=0.05)
    assert hb is not None
    try:
        await wait_for(lambda: hb.sent >= 2, timeout=5)
        fresh_server.kill()
        await wait_for(lambda: hb.last_error is not None, timeout=5)
        fresh_server.restart()
        b = await bus_mod.connect(fresh_server.url, host="restart", source="t")
        got: list[bytes] = []

        async def on(msg: object) -> None:
            got.append(msg.data)  # type: ignore[attr-defined]

        await b.nc.subscribe("grace.heartbeat.restart.api", cb=on)
        await wait_for(lambda: len(got) >= 2, timeout=10)
        await b.close()
    finally:
        hb.stop()
