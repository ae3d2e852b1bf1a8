"""A hold on a kernel under `grace up` on the example as shipped (30 s cycles, shipped
playbooks): the supervisor leaves the held reporter dead, starts it once the hold is
released, and a hold in force when all of Grace restarts keeps the reporter from being
started at boot (phase 5 says so) until it is released. Effects are counted in the world:
the reporter's processes, found by their environment.

The holds are published as `hold_added`/`hold_released` events with `grace events
publish` (the operator's `grace hold` writes the same events). This tests the
supervisor's side only: the reporter is killed right after a health_signal check, so the
shipped kernel_heartbeat_gap playbook (which needs that check to see the process gone)
cannot restart it within the ~15 s each held window lasts (the next check is 30 s later).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from grace import bus as bus_mod
from grace import events
from grace.embedded import read_url
from tests.e2e.conftest import (
    Running,
    booted,
    eventually,
    expect,
    instance_pids,
    shipped_copy,
    watch_from_now,
)

pytestmark = pytest.mark.slow
HOST = "demo"
HELD_S = 8.0  # how long the test watches a held, dead reporter (its backoff restarts in < 1 s)


def publish(running: Running, type_name: str, data: dict[str, object]) -> None:
    out = subprocess.run([sys.executable, "-m", "grace.app", "events", "publish", type_name,
                          "--data", json.dumps(data), "--host", HOST, "-c", str(running.config)],
                         capture_output=True, check=False, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def add_hold(running: Running, target: str) -> str:
    hold_id = f"h-{uuid.uuid4().hex[:8]}"
    until = events.now() + timedelta(minutes=30)
    publish(running, "hold_added", {"hold_id": hold_id, "target": target, "for_s": 1800.0,
                                    "until": until.isoformat().replace("+00:00", "Z"),
                                    "reason": "migrating", "by": "alice", "via": "cli"})
    return hold_id


def release(running: Running, hold_id: str, target: str) -> None:
    publish(running, "hold_released", {"hold_id": hold_id, "target": target, "by": "alice",
                                       "via": "cli"})


async def stays_dead(running: Running, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert instance_pids(running, "reporter") == {}, "the held reporter was started"
        await asyncio.sleep(0.2)


async def connect(running: Running) -> bus_mod.Bus:
    url = read_url(running.data_dir)
    assert url, "grace up wrote no nats.url"
    return await bus_mod.connect(url, host=HOST, source="grace/demo/e2e-test")


def reporter(d: events.Payload) -> bool:
    return getattr(d, "kernel", "") == "reporter"


async def test_a_held_reporter_is_not_restarted_until_released_also_across_a_restart_of_grace(
        tmp_path: Path) -> None:
    root = tmp_path / "system"
    cfg = shipped_copy(root, HOST)
    with booted(root, cfg) as running:
        b = await connect(running)
        try:
            w = await watch_from_now(b)
            hold = add_hold(running, "kernel:reporter")
            # right after a health check: the next one (and any playbook) is 30 s away
            await expect(w, events.CheckCompleted, lambda d: d.trigger == "health_signal", timeout=40)
            (old,) = instance_pids(running, "reporter").values()
            os.kill(old, signal.SIGKILL)
            await expect(w, events.KernelHeld, lambda d: reporter(d) and d.hold_id == hold, timeout=5)
            await stays_dead(running, HELD_S)
            exits = [e.data for e in w.seen if isinstance(e.data, events.KernelExited)]
            assert [d.pid for d in exits if reporter(d)] == [old]  # the exit is recorded as usual
            assert not [e for e in w.seen if isinstance(e.data, (events.KernelRestarted,
                                                                 events.KernelStarted))
                        and reporter(e.data)]

            release(running, hold, "kernel:reporter")
            new = await eventually(lambda: instance_pids(running, "reporter").get(0), timeout=10)
            assert new != old
            await expect(w, events.KernelRestarted, lambda d: reporter(d) and d.pid == new, timeout=5)

            hold = add_hold(running, "kernel:reporter")  # in force when all of Grace stops
            await w.close()
        finally:
            await b.close()
    assert instance_pids(running, "reporter") == {}

    with booted(root, cfg) as running:
        up_log = running.log.read_text(errors="replace")
        line = next(x for x in up_log.splitlines() if "phase 5/7" in x)
        assert " ok " in line and f"reporter[0] held by hold {hold} (kernel:reporter, by alice" in line, line
        assert instance_pids(running, "api") and instance_pids(running, "worker")
        b = await connect(running)
        try:
            w = await watch_from_now(b)
            await stays_dead(running, 3.0)
            release(running, hold, "kernel:reporter")
            pid = await eventually(lambda: instance_pids(running, "reporter").get(0), timeout=10)
            await expect(w, events.KernelStarted, lambda d: reporter(d) and d.pid == pid, timeout=5)
            await w.close()
        finally:
            await b.close()
