"""`grace up` on the example exactly as shipped (30 s monitor interval, shipped thresholds and
playbooks; only the ports differ): the faults that need several monitor cycles still heal.

The module's own Grace, not the shared fixture's (that one runs a 1 s interval and lowered
thresholds for speed). Kernel processes are counted by their supervisor's state file, so
another Grace of host `demo` on this machine is never counted.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import psutil
import pytest
import pytest_asyncio

from grace import bus as bus_mod
from grace import demo, events
from grace.embedded import free_port, read_url
from tests.e2e.conftest import BOOT_TIMEOUT_S, Running, eventually, expect, watch_from_now

pytestmark = pytest.mark.slow
INTERVAL_S = 30


def pids(running: Running, kernel: str) -> set[int]:
    """Live processes of `kernel` started by this Grace's supervisor."""
    mark = str(running.data_dir.resolve()) + "/"
    out = set()
    for p in psutil.process_iter(["pid"]):
        try:
            env = p.environ()
            if (env.get("GRACE_KERNEL") == kernel and env.get("GRACE_KERNEL_STATE", "").startswith(mark)
                    and p.status() != psutil.STATUS_ZOMBIE):
                out.add(p.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
    return out


@pytest.fixture(scope="module")
def shipped_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("shipped") / "system"
    demo.init_copy(root)
    cfg = root / "grace.yaml"
    text = cfg.read_text()
    assert f"interval: {INTERVAL_S}s" in text and "thresholds" not in text  # as shipped
    http = f"127.0.0.1:{free_port()}"
    cfg.write_text(text.replace("18080", str(free_port())).replace("127.0.0.1:8181", http))
    log = root / "up.log"
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "grace.cli", "up", "-c", str(cfg)], stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    running = Running(root, cfg, proc, f"http://{http}", log)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while "phase 7/7" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"grace up did not boot:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    yield running
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out.close()


@pytest_asyncio.fixture(loop_scope="session")
async def shipped_bus(shipped_up: Running) -> AsyncIterator[bus_mod.Bus]:
    url = read_url(shipped_up.data_dir)
    assert url, "grace up wrote no nats.url"
    b = await bus_mod.connect(url, host="demo", source="grace/demo/e2e-test")
    yield b
    await b.close()


async def test_a_2s_health_answer_gives_latency_spike_and_scales_up_the_api_pool(
        shipped_up: Running, shipped_bus: bus_mod.Bus) -> None:
    before = await eventually(lambda: pids(shipped_up, "api"), timeout=30)
    assert len(before) == 1
    w = await watch_from_now(shipped_bus)
    try:
        assert "2s" in shipped_up.fault("latency")
        t0 = time.monotonic()
        spike = await expect(w, events.LatencySpike, lambda d: d.kernel == "api",
                             timeout=INTERVAL_S + 15)
        detected_s = time.monotonic() - t0
        # the shipped playbook wants two spikes within 2m: the next cycle's re-publication
        done = await expect(w, events.CommandSucceeded, lambda d: d.action == "scale_workers"
                            and d.playbook == "api_latency_spike", timeout=2 * INTERVAL_S + 20)
        acted_s = time.monotonic() - t0
    finally:
        (shipped_up.root / "slow_health").unlink(missing_ok=True)
        await w.close()
    assert spike.p95_ms > spike.threshold_ms == 500.0 and spike.timeouts >= 3
    assert done.details["to"] == 2
    after = await eventually(lambda: len(pids(shipped_up, "api")) == 2 and pids(shipped_up, "api"),
                             timeout=20)
    assert before < after  # the first instance kept, one more running
    print(f"latency_spike after {detected_s:.0f}s, api scaled up after {acted_s:.0f}s")


async def test_a_queue_flood_scales_the_workers_up_and_back_down_at_low_backlog(
        shipped_up: Running, shipped_bus: bus_mod.Bus) -> None:
    assert len(await eventually(lambda: pids(shipped_up, "worker"), timeout=30)) == 1
    w = await watch_from_now(shipped_bus)
    try:
        shipped_up.fault("queue-flood")  # 1000 jobs over max_backlog 200
        await expect(w, events.QueueBacklog, lambda d: d.kernel == "worker", timeout=INTERVAL_S + 15)
        up = await expect(w, events.CommandSucceeded, lambda d: d.action == "scale_workers"
                          and d.playbook == "high_queue_backlog", timeout=30)
        assert up.details["to"] == 2
        await eventually(lambda: len(pids(shipped_up, "worker")) == 2, timeout=20)
        # two workers drain the jobs; at <= low_backlog (10) with 2 > pool.min, one goes back
        low = await expect(w, events.QueueBacklogLow, lambda d: d.kernel == "worker",
                           timeout=4 * INTERVAL_S)
        down = await expect(w, events.CommandSucceeded, lambda d: d.action == "scale_workers"
                            and d.playbook == "scale_down_when_backlog_low", timeout=30)
    finally:
        await w.close()
    assert low.backlog <= low.threshold == 10 and low.workers == 2 and low.min_workers == 1
    assert down.details["to"] == 1
    await eventually(lambda: len(pids(shipped_up, "worker")) == 1, timeout=30)
    w = await watch_from_now(shipped_bus)
    try:  # at pool.min the condition clears: nothing more is given back
        await expect(w, events.ConditionCleared, lambda d: d.condition == "queue_backlog_low",
                     timeout=2 * INTERVAL_S + 15)
    finally:
        await w.close()

