"""Remedies per instance under `grace up` on the example as shipped (30 s cycles, shipped
thresholds): one hung instance of a pool is restarted alone, and the leaking reporter's
memory pressure is cleared by restarting it, with no kernel left suspended. Effects are
counted in the world: pids and process states."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from grace import bus as bus_mod
from grace import events
from tests.e2e.conftest import Running, all_states, eventually, expect, instance_pids, watch_from_now

pytestmark = pytest.mark.slow
HOST = "demo"
INTERVAL_S = 30  # the shipped monitor.interval


def publish(running: Running, type_name: str, data: dict[str, object]) -> None:
    out = subprocess.run([sys.executable, "-m", "grace.app", "events", "publish", type_name,
                          "--data", json.dumps(data), "--host", HOST, "-c", str(running.config)],
                         capture_output=True, check=False, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


async def test_one_hung_instance_of_a_two_instance_pool_is_restarted_alone(
        shipped_up: Running, shipped_bus: bus_mod.Bus) -> None:
    publish(shipped_up, "scale_workers", {"kernel": "api", "to": 2})
    pids = await eventually(lambda: (p := instance_pids(shipped_up, "api")) and len(p) == 2 and p,
                            timeout=30)
    await asyncio.sleep(3)  # both instances heartbeating
    w = await watch_from_now(shipped_bus)
    try:
        os.kill(pids[1], signal.SIGSTOP)  # hung, not shed by Grace
        gap = await expect(w, events.KernelHeartbeatGap, lambda d: d.kernel == "api",
                           timeout=2 * INTERVAL_S + 15)
        assert (gap.instance, gap.pid, gap.reason) == (1, pids[1], "heartbeat_gap")
        done = await expect(w, events.CommandSucceeded, lambda d: d.action == "restart_kernel"
                            and d.target == "api[1]", timeout=INTERVAL_S)
        assert done.details["restarted"] == 1
        after = await eventually(lambda: (p := instance_pids(shipped_up, "api")).get(1) not in
                                 (None, pids[1]) and p, timeout=30)
        assert after[0] == pids[0]  # the sibling: the very same process, never restarted
        assert psutil.Process(pids[0]).status() != psutil.STATUS_STOPPED
        assert not psutil.pid_exists(pids[1]) or psutil.Process(pids[1]).status() == psutil.STATUS_ZOMBIE
        await asyncio.sleep(INTERVAL_S + 5)  # a whole cycle more: instance 0 is never reported
        gaps = [e.data for e in w.seen if isinstance(e.data, events.KernelHeartbeatGap)
                and e.data.kernel == "api"]
        assert {g.instance for g in gaps} == {1}  # instance 0 was never reported
        restarts = [e.data for e in w.seen if isinstance(e.data, events.CommandIssued)
                    and e.data.action == "restart_kernel" and e.data.params.get("kernel") == "api"]
        assert [r.params.get("instance") for r in restarts] == [1]
    finally:
        for pid in instance_pids(shipped_up, "api").values():
            os.kill(pid, signal.SIGCONT)
        await w.close()
    publish(shipped_up, "scale_workers", {"kernel": "api", "to": 1})


async def test_memory_pressure_of_the_leaking_reporter_is_cleared_by_restarting_it(
        shipped_up: Running, shipped_bus: bus_mod.Bus) -> None:
    [old] = (await eventually(lambda: instance_pids(shipped_up, "reporter"), timeout=30)).values()
    w = await watch_from_now(shipped_bus)
    try:
        shipped_up.fault("memory-leak")
        await eventually(lambda: psutil.Process(old).memory_info().rss > 250e6, timeout=30)
        # sustained_samples (3) cycles over its max_rss_mb
        mem = await expect(w, events.MemoryPressure, lambda d: d.kernel == "reporter",
                           timeout=4 * INTERVAL_S + 15)
        assert (mem.culprit_kernel, mem.culprit_instance) == ("reporter", 0)
        await expect(w, events.CommandSucceeded, lambda d: d.action == "restart_kernel"
                     and d.target == "reporter[0]", timeout=INTERVAL_S)
        [new] = (await eventually(lambda: (p := instance_pids(shipped_up, "reporter")).get(0) != old
                                  and p, timeout=30)).values()
        await expect(w, events.ConditionCleared, lambda d: d.condition == "memory_pressure"
                     and d.key.get("kernel") == "reporter", timeout=2 * INTERVAL_S + 15)
        await asyncio.sleep(5)  # the new reporter runs its loop with the flag still there
        assert psutil.Process(new).memory_info().rss < 200e6  # restarted: the memory is freed
        states = all_states(shipped_up)
        assert states and not any(psutil.STATUS_STOPPED in s for s in states.values()), states
        shed = [e for e in w.seen if isinstance(e.data, events.CommandIssued)
                and e.data.action == "shed_load"]
        assert shed == []  # memory pressure never SIGSTOPs anything
    finally:
        (shipped_up.root / "leak_memory").unlink(missing_ok=True)
        await w.close()
