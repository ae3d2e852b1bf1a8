"""The kernel supervisor against real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import psutil

from actuators.supervisor import Supervisor
from grace import events
from tests.actuators.helpers import kernel, kernel_processes, make_config, ready
from tests.support import wait_for


async def children_count(root: Path, n: int) -> None:
    """Wait until `n` kernels run: a child just forked shows the parent's command line until it execs."""
    await wait_for(lambda: len(live_children(root)) == n, timeout=5)


def live_children(root: Path) -> list[psutil.Process]:
    """The kernel processes of this test that are children of the test process."""
    me = os.getpid()
    return [p for p in kernel_processes(root) if p.ppid() == me]


async def test_dead_kernel_is_restarted_with_a_new_pid(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, kernels=[kernel("api", tmp_path, critical=True)])
    seen: list[events.Payload] = []
    sup = Supervisor(cfg, seen.append, backoff_base=0.05, poll_interval=0.05)
    await sup.start()
    try:
        (old,) = sup.pids("api")
        os.kill(old, signal.SIGKILL)
        await wait_for(lambda: sup.pids("api") and sup.pids("api")[0] != old, timeout=10)
        new = sup.pids("api")[0]
        assert psutil.Process(new).is_running()
        exited = [e for e in seen if isinstance(e, events.KernelExited)]
        assert exited and exited[0].pid == old and exited[0].code == -signal.SIGKILL
        assert not exited[0].expected
        assert any(isinstance(e, events.KernelRestarted) and e.pid == new for e in seen)
    finally:
        await sup.stop()
    assert not psutil.pid_exists(new) or psutil.Process(new).status() == psutil.STATUS_ZOMBIE


async def test_pool_scales_2_to_4_to_2_in_real_processes(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, kernels=[kernel("worker", tmp_path, pool={"min": 2, "max": 6})])
    seen: list[events.Payload] = []
    sup = Supervisor(cfg, seen.append)
    await sup.start()
    try:
        await children_count(tmp_path, 2)
        assert await sup.scale("worker", 4) == (2, 4)
        await children_count(tmp_path, 4)
        assert sorted(p.pid for p in live_children(tmp_path)) == sorted(sup.pids("worker"))
        assert await sup.scale("worker", 2) == (4, 2)
        await children_count(tmp_path, 2)
        assert await sup.scale("worker", 99) == (2, 6)  # clamped to the pool's max
        await children_count(tmp_path, 6)
        scaled = [(e.from_count, e.to_count) for e in seen if isinstance(e, events.KernelScaled)]
        assert scaled == [(2, 4), (4, 2), (2, 6)]
    finally:
        await sup.stop()
    assert live_children(tmp_path) == []


async def test_kernel_ignoring_sigterm_is_killed_after_stop_timeout(tmp_path: Path) -> None:
    k = kernel("stubborn", tmp_path, "--ignore-term", stop_timeout="0.5s")
    cfg = make_config(tmp_path, kernels=[k])
    seen: list[events.Payload] = []
    sup = Supervisor(cfg, seen.append)
    await sup.start()
    (pid,) = sup.pids("stubborn")
    await wait_for(lambda: ready(tmp_path, pid), timeout=10)
    await sup.stop()
    assert live_children(tmp_path) == []
    exited = [e for e in seen if isinstance(e, events.KernelExited)]
    assert exited[0].pid == pid and exited[0].code == -signal.SIGKILL and exited[0].expected
    assert isinstance(seen[0], events.WatchdogStarted) and seen[0].name == "kernel-supervisor"
    assert seen[0].tier == 2


async def test_kernels_get_their_heartbeat_environment(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    cfg = make_config(tmp_path, kernels=[kernel("w", tmp_path, "--env-file", str(env_file),
                                                pool={"min": 2, "max": 2})])
    sup = Supervisor(cfg, lambda e: None, nats_url="nats://127.0.0.1:4999")
    await sup.start()
    try:
        await wait_for(lambda: Path(f"{env_file}.1").exists(), timeout=10)
        env = json.loads(Path(f"{env_file}.1").read_text())
        assert env == {"GRACE_NATS_URL": "nats://127.0.0.1:4999", "GRACE_HOST": cfg.host,
                       "GRACE_KERNEL": "w", "GRACE_INSTANCE": "1"}
    finally:
        await sup.stop()


async def test_a_restarted_supervisor_adopts_its_running_kernels(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, kernels=[kernel("worker", tmp_path, pool={"min": 1, "max": 4})])
    state = tmp_path / "state.json"
    first = Supervisor(cfg, lambda e: None, state_file=state)
    await first.start()
    await first.scale("worker", 3)
    pids = sorted(first.pids("worker"))
    assert first._task is not None
    first._task.cancel()  # the first actuator "dies": its kernels keep running
    second = Supervisor(cfg, lambda e: None, state_file=state)
    await second.start()
    try:
        assert sorted(second.pids("worker")) == pids
        assert await second.scale("worker", 4) == (3, 4)
    finally:
        await second.stop()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in pids)


async def test_a_bare_python_command_runs_graces_interpreter(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, kernels=[{"name": "py", "command": ["python", str(tmp_path / "kernel.py"),
                                                                     str(tmp_path)]}])
    sup = Supervisor(cfg, lambda e: None)
    await sup.start()
    try:
        (pid,) = sup.pids("py")
        assert psutil.Process(pid).exe() == os.path.realpath(sys.executable)
    finally:
        await sup.stop()


async def test_an_instance_grace_stops_is_recorded_as_stopping_before_it_is_signalled(
        tmp_path: Path) -> None:
    """A trigger reading the record while a scale-down or restart runs must never see a
    recorded, running instance whose process is gone (that would be a death to heal)."""
    from grace import kernelstate

    k = kernel("worker", tmp_path, "--ignore-term", stop_timeout="1s", pool={"min": 1, "max": 3})
    state = tmp_path / "kernels.json"
    sup = Supervisor(make_config(tmp_path, kernels=[k]), lambda _e: None, state_file=state)
    await sup.start()
    try:
        await sup.scale("worker", 2)
        pids = sup.pids("worker")
        await wait_for(lambda: all(ready(tmp_path, p) for p in pids), timeout=10)
        for step in (sup.scale("worker", 1), sup.restart("worker", 0)):
            task = asyncio.ensure_future(step)
            while not task.done():  # a stubborn kernel: the stop takes its whole stop_timeout
                for r in kernelstate.read(state) or []:
                    if r.state == "running":
                        assert psutil.pid_exists(r.pid) and psutil.Process(r.pid).status() != \
                            psutil.STATUS_ZOMBIE, f"recorded running, but gone: {r}"
                await asyncio.sleep(0.02)
            await task
    finally:
        await sup.stop()
