"""`grace up` on the example exactly as shipped (30 s monitor interval, shipped thresholds and
playbooks; only the ports differ): the faults that need several monitor cycles still heal.

The module's own Grace, not the shared fixture's (that one runs a 1 s interval and lowered
thresholds for speed). Kernel processes are counted by their supervisor's state file, so
another Grace of host `demo` on this machine is never counted.
"""

from __future__ import annotations

import time

import pytest

from grace import bus as bus_mod
from grace import events
from tests.e2e.conftest import Running, eventually, expect, pids, watch_from_now

pytestmark = pytest.mark.slow
INTERVAL_S = 30


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

