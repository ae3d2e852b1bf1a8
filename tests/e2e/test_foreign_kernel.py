"""A service Grace did not write (the example's plain `python -m http.server`, no heartbeats),
under `grace up` at the SHIPPED defaults (30 s interval, shipped thresholds): ten quiet
minutes with no finding and no command about it, one restart when it hangs (SIGSTOP), and
an immediate restart when it is killed. Real time on purpose: this is the soak test."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import urllib.request

import psutil
import pytest

from grace import bus as bus_mod
from grace import events
from tests.e2e.conftest import Running, eventually, expect, pids, watch_from_now

pytestmark = pytest.mark.slow
QUIET_S = 600.0


def _about_static(e: events.Event) -> bool:
    d = e.data
    if isinstance(d, events.Trigger) and not isinstance(d, events.ConditionCleared):
        return "static" in (getattr(d, "kernel", None), getattr(d, "culprit_kernel", None))
    if isinstance(d, (events.CommandIssued, events.DecisionSuppressed)):
        return "kernel=static" in d.target or (isinstance(d, events.CommandIssued)
                                               and d.params.get("kernel") == "static")
    return False


def _static_url(running: Running) -> str:
    m = re.search(r"http://127.0.0.1:(\d+)/\n", running.config.read_text())
    assert m
    return f"http://127.0.0.1:{m.group(1)}/"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def test_a_plain_http_server_is_left_alone_when_healthy_and_restarted_when_hung_or_killed(
        shipped_up: Running, shipped_bus: bus_mod.Bus) -> None:
    url = _static_url(shipped_up)
    await eventually(lambda: _answers(url), timeout=30)
    [first] = await eventually(lambda: pids(shipped_up, "static"), timeout=30)
    w = await watch_from_now(shipped_bus)
    try:
        # 1. ten quiet minutes: health_signal runs every 30 s and judges it by its health_url
        await asyncio.sleep(QUIET_S)
        noisy = [e.data for e in w.seen if _about_static(e)]
        assert noisy == [], f"findings or decisions about a healthy static kernel: {noisy[:5]}"
        checks = [e.data for e in w.seen if isinstance(e.data, events.CheckCompleted)
                  and e.data.trigger == "health_signal"]
        assert len(checks) >= QUIET_S / 30 - 2  # it really was judged, cycle after cycle
        assert all(c.stats.get("kernels_by_health_url", 0) >= 1 for c in checks)
        assert pids(shipped_up, "static") == {first} and _answers(url)

        # 2. hung: SIGSTOP (not Grace's shed_load) -> its health answer stops -> one restart
        os.kill(first, signal.SIGSTOP)
        gap = await expect(w, events.KernelHeartbeatGap, lambda d: d.kernel == "static", timeout=150)
        assert gap.signal == "health_url" and gap.instance == 0 and gap.pid == first
        await expect(w, events.CommandSucceeded, lambda d: d.action == "restart_kernel"
                     and d.target.startswith("static"), timeout=60)
        [second] = await eventually(lambda: pids(shipped_up, "static") - {first}, timeout=30)
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
        await eventually(lambda: _answers(url), timeout=30)
        await asyncio.sleep(70)  # two more cycles: the finding clears, nothing restarts it again
        restarts = [e.data for e in w.seen if isinstance(e.data, events.CommandIssued)
                    and e.data.action == "restart_kernel" and e.data.params.get("kernel") == "static"]
        assert len(restarts) == 1, restarts
        assert pids(shipped_up, "static") == {second}

        # 3. killed: the supervisor starts a new process at once
        t0 = time.monotonic()
        os.kill(second, signal.SIGKILL)
        [third] = await eventually(lambda: pids(shipped_up, "static") - {second}, timeout=10)
        await eventually(lambda: _answers(url), timeout=10)
        print(f"killed static kernel answering again after {time.monotonic() - t0:.1f}s "
              f"(pids {first} -> {second} -> {third})")
    finally:
        await w.close()
