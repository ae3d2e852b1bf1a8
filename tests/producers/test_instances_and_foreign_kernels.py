"""health_signal and resource_pressure per kernel instance, and for a service Grace did not
write: the example's plain `python -m http.server` with the SHIPPED example settings
(heartbeat_timeout 45s, monitor 30s/5s), real processes and HTTP, an injected clock."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import psutil
import pytest

from grace import config, events, kernelstate
from grace.config import Config
from grace.embedded import free_port
from producers.base import Env, make_env
from producers.health_signal import HealthSignal
from producers.resource_pressure import ResourcePressure, Sample, culprit
from producers.state import StateStore
from tests.support import wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "grace.yaml"
INTERVAL = 30.0  # the shipped monitor.interval


def shipped(tmp_path: Path) -> Config:
    """The shipped example config, on a free port and with its data dir under tmp_path."""
    cfg = config.load(EXAMPLE)
    assert float(cfg.monitor.interval) == INTERVAL
    port = free_port()
    kernels = []
    for k in cfg.kernels:
        if k.name == "static":
            cmd = [port if c == "18090" else c for c in k.command]
            health_url = (k.health_url or "").replace("18090", str(port))
            kernels.append(msgspec.structs.replace(k, command=[str(c) for c in cmd], health_url=health_url))
        else:
            kernels.append(k)
    return msgspec.structs.replace(cfg, kernels=kernels, data_dir=str(tmp_path / "data"),
                                   host="t-" + os.urandom(4).hex())


def record(cfg: Config, *procs: tuple[str, int, subprocess.Popen[bytes], str]) -> None:
    """Write the supervisor's record of kernel instances, as the actuator does."""
    kernelstate.write(kernelstate.state_path(cfg), [
        kernelstate.Recorded(kernel=k, index=i, pid=p.pid,
                             create_time=psutil.Process(p.pid).create_time(), state=st)
        for k, i, p, st in procs])


def start_static(cfg: Config) -> subprocess.Popen[bytes]:
    k = cfg.kernel("static")
    assert k is not None and k.health_url
    argv = [sys.executable if k.command[0] == "python" else k.command[0], *k.command[1:]]
    proc = subprocess.Popen(argv, cwd=str(EXAMPLE.parent), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def up() -> bool:
        try:
            with urllib.request.urlopen(k.health_url or "", timeout=1):
                return True
        except OSError:
            return False

    deadline = time.monotonic() + 15
    while not up():
        assert time.monotonic() < deadline, "http.server did not come up"
        time.sleep(0.1)
    return proc


def env_at(cfg: Config, tmp_path: Path, now: list[float]) -> Env:
    env = make_env(cfg, StateStore(tmp_path / "state"), clock=lambda: now[0])
    env.shared.heartbeats.listening = True
    env.shared.heartbeats.started_at = now[0]
    return env


def about(res_findings: list[events.Trigger], kernel: str) -> list[events.Trigger]:
    return [f for f in res_findings if getattr(f, "kernel", None) == kernel]


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait()


async def test_a_healthy_http_server_without_heartbeats_is_never_a_finding(tmp_path: Path) -> None:
    cfg = shipped(tmp_path)
    static = start_static(cfg)
    try:
        record(cfg, ("static", 0, static, "running"))
        now = [1000.0]
        trig = HealthSignal(env_at(cfg, tmp_path, now))
        for _ in range(20):  # ten minutes of 30 s cycles in virtual time, real probes
            now[0] += INTERVAL
            res = await trig.check()
            assert about(res.findings, "static") == []
            assert res.stats["kernels_by_health_url"] >= 1 and not res.errors
    finally:
        stop(static)


async def test_a_stopped_http_server_is_a_gap_after_its_timeout_and_a_killed_one_is_gone(
        tmp_path: Path) -> None:
    cfg = shipped(tmp_path)
    k = cfg.kernel("static")
    assert k is not None and float(k.heartbeat_timeout or 0) == 45.0
    static = start_static(cfg)
    try:
        record(cfg, ("static", 0, static, "running"))
        now = [1000.0]
        trig = HealthSignal(env_at(cfg, tmp_path, now))
        now[0] += INTERVAL
        assert about((await trig.check()).findings, "static") == []
        os.kill(static.pid, signal.SIGSTOP)  # hung; not Grace's shed_load (the record says running)
        now[0] += INTERVAL  # one failed probe: 30 s without an answer, under the 45 s timeout
        assert about((await trig.check()).findings, "static") == []
        now[0] += INTERVAL  # the second: 60 s > 45 s
        [gap] = about((await trig.check()).findings, "static")
        assert isinstance(gap, events.KernelHeartbeatGap)
        assert (gap.reason, gap.signal, gap.instance, gap.pid) == ("heartbeat_gap", "health_url", 0,
                                                                    static.pid)
        assert gap.gap_s is not None and gap.gap_s >= 60.0 and gap.last_seen is not None
        static.kill()
        static.wait()
        now[0] += 1.0
        [gone] = about((await trig.check()).findings, "static")
        assert isinstance(gone, events.KernelHeartbeatGap) and gone.reason == "process_gone"
        assert gone.pid == static.pid and gone.instance == 0
    finally:
        stop(static)


async def test_a_kernel_suspended_by_grace_is_not_a_gap_but_one_stopped_by_others_is(
        tmp_path: Path) -> None:
    cfg = shipped(tmp_path)
    static = start_static(cfg)
    try:
        os.kill(static.pid, signal.SIGSTOP)
        record(cfg, ("static", 0, static, "suspended"))  # what shed_load leaves in the record
        now = [1000.0]
        trig = HealthSignal(env_at(cfg, tmp_path, now))
        for _ in range(4):
            now[0] += INTERVAL
            res = await trig.check()
            assert about(res.findings, "static") == [] and res.stats["kernels_suspended"] == 1
        record(cfg, ("static", 0, static, "running"))  # the same stop, not Grace's doing
        now[0] += INTERVAL
        [gap] = about((await trig.check()).findings, "static")
        assert isinstance(gap, events.KernelHeartbeatGap) and gap.signal == "health_url"
    finally:
        stop(static)


SLEEPER = "import time\ntime.sleep(120)\n"


async def test_one_silent_instance_of_a_pool_is_a_gap_and_its_sibling_is_not(tmp_path: Path) -> None:
    cfg = shipped(tmp_path)
    a = subprocess.Popen([sys.executable, "-c", SLEEPER])
    b = subprocess.Popen([sys.executable, "-c", SLEEPER])
    try:
        record(cfg, ("api", 0, a, "running"), ("api", 1, b, "running"))
        now = [1000.0]
        env = env_at(cfg, tmp_path, now)
        trig = HealthSignal(env)

        def beat(index: int, pid: int) -> None:
            env.shared.heartbeats.record(events.Heartbeat(name="api", instance=index, pid=pid,
                                                          time=datetime.now(UTC)))

        for _ in range(3):
            now[0] += 2.0
            beat(0, a.pid)
            beat(1, b.pid)
        assert about((await trig.check()).findings, "api") == []
        for _ in range(4):  # instance 1 falls silent (hung); instance 0 keeps beating
            now[0] += 2.0
            beat(0, a.pid)
        [gap] = about((await trig.check()).findings, "api")
        assert isinstance(gap, events.KernelHeartbeatGap)
        assert (gap.instance, gap.pid, gap.signal) == (1, b.pid, "heartbeat")
        assert gap.severity == "critical"  # api is critical in the example
    finally:
        stop(a, b)


async def test_a_kernel_with_neither_signal_is_judged_by_its_process_alone(tmp_path: Path) -> None:
    cfg = shipped(tmp_path)  # worker: no heartbeat_timeout, no health_url
    w = subprocess.Popen([sys.executable, "-c", SLEEPER])
    try:
        record(cfg, ("worker", 0, w, "running"))
        now = [1000.0]
        trig = HealthSignal(env_at(cfg, tmp_path, now))
        for _ in range(5):
            now[0] += 600.0  # silence for any length of time is no finding
            assert about((await trig.check()).findings, "worker") == []
        w.kill()
        w.wait()
        [gone] = about((await trig.check()).findings, "worker")
        assert isinstance(gone, events.KernelHeartbeatGap) and gone.reason == "process_gone"
        assert gone.signal == "process" and gone.instance == 0
    finally:
        stop(w)


def test_the_memory_culprit_is_the_instance_over_its_budget_else_the_largest_non_critical() -> None:
    cfg = config.load(EXAMPLE)
    api, worker, reporter = (cfg.kernel(n) for n in ("api", "worker", "reporter"))
    assert api and worker and reporter and reporter.max_rss_mb == 200
    big_api = Sample(api, 0, 900.0)
    over = culprit([big_api, Sample(worker, 1, 150.0), Sample(reporter, 0, 320.0)])
    assert over is not None and (over.kernel.name, over.index) == ("reporter", 0)
    under = culprit([big_api, Sample(worker, 0, 50.0), Sample(worker, 1, 150.0),
                     Sample(reporter, 0, 120.0)])
    assert under is not None and (under.kernel.name, under.index) == ("worker", 1)  # api is critical
    assert culprit([big_api]) is None


HOG = "data = b\"x\" * (260 * 1024 * 1024)\nimport time\ntime.sleep(120)\n"


async def test_memory_pressure_of_a_kernel_names_the_instance_holding_the_memory(tmp_path: Path) -> None:
    cfg = shipped(tmp_path)  # reporter: max_rss_mb 200, sustained_samples 3 (shipped)
    small = subprocess.Popen([sys.executable, "-c", SLEEPER])
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    try:
        await wait_for(lambda: psutil.Process(hog.pid).memory_info().rss > 250e6, timeout=20)
        record(cfg, ("reporter", 0, small, "running"), ("reporter", 1, hog, "running"))
        env = make_env(cfg, StateStore(tmp_path / "state"))
        trig = ResourcePressure(env)
        found: list[events.Trigger] = []
        for _ in range(cfg.thresholds.resource_pressure.sustained_samples):
            found = about((await trig.check()).findings, "reporter")
            await asyncio.sleep(0.05)
        [mem] = [f for f in found if isinstance(f, events.MemoryPressure)]
        assert (mem.instance, mem.culprit_kernel, mem.culprit_instance) == (1, "reporter", 1)
        assert mem.rss_mb is not None and mem.rss_mb > 200
    finally:
        stop(small, hog)


@pytest.mark.parametrize(("value", "expected"), [("2", 2), ("", 0)])
def test_heartbeats_carry_the_instance_the_supervisor_gives(monkeypatch: pytest.MonkeyPatch,
                                                            value: str, expected: int) -> None:
    from grace import heartbeat

    monkeypatch.setenv("GRACE_INSTANCE", value)
    hb = heartbeat.start("api", url="nats://127.0.0.1:9", host="h", interval=60)
    assert hb is not None
    try:
        body = msgspec.json.decode(hb._payload(), type=events.Heartbeat)
        assert body.instance == expected and body.name == "api"
    finally:
        hb.stop(0.1)


async def test_a_restarted_instance_gets_its_grace_period_and_a_wrappers_child_may_beat(
        tmp_path: Path) -> None:
    cfg = shipped(tmp_path)  # api: heartbeat_timeout 6s
    new = subprocess.Popen([sys.executable, "-c", SLEEPER])
    try:
        now = [1000.0]
        env = env_at(cfg, tmp_path, now)
        trig = HealthSignal(env)
        # the previous process of instance 0 beat last at 1000 and was replaced by `new`
        env.shared.heartbeats.record(events.Heartbeat(name="api", instance=0, pid=999_999,
                                                      time=datetime.now(UTC)))
        record(cfg, ("api", 0, new, "running"))
        now[0] = 1010.0  # the old heartbeat is 10 s old, but it is not this process's
        assert about((await trig.check()).findings, "api") == []
        now[0] = 1012.0  # a heartbeat from another pid after the start: the kernel's own child
        env.shared.heartbeats.record(events.Heartbeat(name="api", instance=0, pid=new.pid + 1,
                                                      time=datetime.now(UTC)))
        now[0] = 1017.0
        assert about((await trig.check()).findings, "api") == []
        now[0] = 1019.0  # 7 s since the last heartbeat > 6 s
        [gap] = about((await trig.check()).findings, "api")
        assert isinstance(gap, events.KernelHeartbeatGap) and gap.pid == new.pid
    finally:
        stop(new)
