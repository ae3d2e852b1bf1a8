"""Grace heals itself: a crashed stage is restarted by the watchdog; SIGTERM stops everything
gracefully (kernels stopped, the dashboard file published, system_stopped in the log)."""

from __future__ import annotations

import asyncio
import signal
import time

import duckdb
import psutil
import pytest

from grace import bus as bus_mod
from grace import events
from tests.e2e.conftest import Running, expect, kernel_pids, stage_process, watch_from_now

pytestmark = pytest.mark.slow


async def test_a_killed_stage_is_restarted_by_the_watchdog(grace_up: Running,
                                                           log_bus: bus_mod.Bus) -> None:
    victim = stage_process(grace_up.proc.pid, "process")
    w = await watch_from_now(log_bus)
    try:
        victim.kill()  # SIGKILL: a crash, not a stop
        restarted = await expect(w, events.StageRestarted, lambda d: d.stage == "process", timeout=30)
    finally:
        await w.close()
    assert restarted.exit_code == -signal.SIGKILL and restarted.attempt >= 1
    fresh = stage_process(grace_up.proc.pid, "process")
    assert fresh.pid != victim.pid and fresh.is_running()


async def test_sigterm_stops_everything_gracefully(grace_up: Running) -> None:
    kernels = kernel_pids("demo", "api") | kernel_pids("demo", "worker") | kernel_pids("demo", "reporter")
    stages = [c.pid for c in psutil.Process(grace_up.proc.pid).children(recursive=True)]
    assert kernels
    grace_up.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(grace_up.proc.wait, 90)
    assert code == 0, grace_up.log.read_text()[-2000:]
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
              for p in kernels | set(stages)):
        assert time.monotonic() < deadline, "kernels or stages outlived grace up"
        await asyncio.sleep(0.2)
    con = duckdb.connect(str(grace_up.data_dir / "dashboard.duckdb"), read_only=True)
    try:
        [(stopped,)] = con.execute("SELECT count(*) FROM events WHERE type = 'system_stopped'").fetchall()
        running = con.execute("SELECT count(*) FROM kernels WHERE state = 'running'").fetchone()
    finally:
        con.close()
    assert stopped == 1  # published after the stop event: nothing acked was left behind
    assert running == (0,)
