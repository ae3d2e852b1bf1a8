"""Remedies per instance: restart_kernel of one pool instance leaves its siblings alone;
shed_load suspends only `shed.kernels`, and every shed kernel is resumed by resume_load
or, with no clear event at all, by the supervisor after `shed.max_s` (injected clock)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from actuators.supervisor import Supervisor
from grace import events, kernelstate
from tests.actuators.conftest import World
from tests.actuators.helpers import kernel, make_config


def status(pid: int) -> str:
    return str(psutil.Process(pid).status())


async def test_restarting_one_instance_leaves_its_siblings_running(world: World) -> None:
    await world.executor.handle(world.command(events.ScaleWorkers(kernel="worker", to=3)))
    before = {i.index: i.pid for i in world.supervisor.instances["worker"]}
    assert len(before) == 3
    result = await world.executor.handle(world.command(events.RestartKernel(kernel="worker", instance=1)))
    assert isinstance(result.data, events.CommandSucceeded), result.data
    assert result.data.target == "worker[1]"
    after = {i.index: i.pid for i in world.supervisor.instances["worker"]}
    assert after[0] == before[0] and after[2] == before[2]  # siblings: same processes
    assert after[1] != before[1] and psutil.Process(after[1]).is_running()
    assert not psutil.pid_exists(before[1]) or status(before[1]) == psutil.STATUS_ZOMBIE
    assert result.data.details["restarted"] == 1
    missing = await world.executor.handle(world.command(events.RestartKernel(kernel="worker", instance=7)))
    assert isinstance(missing.data, events.CommandFailed) and "no instance 7" in missing.data.reason


async def test_shed_load_suspends_only_the_kernels_config_names(world: World) -> None:
    await world.supervisor.scale("worker", 2)
    shed = await world.executor.handle(world.command(events.ShedLoad()))
    assert isinstance(shed.data, events.CommandSucceeded), shed.data
    assert sorted(shed.data.details["kernels"]) == ["batch", "worker"]
    assert all(status(p) == psutil.STATUS_STOPPED for n in ("batch", "worker")
               for p in world.supervisor.pids(n))
    assert all(status(p) != psutil.STATUS_STOPPED for p in world.supervisor.pids("api"))
    # one event per instance, so each instance's row in the projection says suspended
    stopped = {(e.kernel, e.instance) for e in world.emitted if isinstance(e, events.KernelSuspended)}
    assert stopped == {("batch", 0), ("worker", 0), ("worker", 1)}
    refused = await world.executor.handle(world.command(events.ShedLoad(kernels=["api"])))
    assert isinstance(refused.data, events.CommandFailed)
    # the record tells health_signal which stopped processes Grace suspended (none: no file here)
    resumed = await world.executor.handle(world.command(events.ResumeLoad()))
    assert isinstance(resumed.data, events.CommandSucceeded)
    assert all(status(p) != psutil.STATUS_STOPPED for n in ("batch", "worker")
               for p in world.supervisor.pids(n))
    back = [e for e in world.emitted if isinstance(e, events.KernelResumed)]
    assert {(e.kernel, e.instance) for e in back} == stopped
    assert all(e.reason.startswith("resume_load") for e in back)


async def test_without_shed_kernels_shed_load_suspends_nothing_and_says_what_to_configure(
        tmp_path: Path) -> None:
    cfg = make_config(tmp_path, kernels=[kernel("batch", tmp_path)])
    sup = Supervisor(cfg, lambda e: None)
    await sup.start()
    try:
        from actuators.actions.base import ActionContext
        from actuators.actions.load import plan_shed
        from grace.errors import ActionError

        async def publish(_p: events.Payload, _i: str) -> None: ...

        async def note(_s: str) -> None: ...

        ctx = ActionContext(cfg, sup, publish, "c1", note)
        with pytest.raises(ActionError, match=r"shed\.kernels"):
            await plan_shed(ctx, events.ShedLoad())
        assert all(status(p) != psutil.STATUS_STOPPED for p in sup.pids("batch"))
    finally:
        await sup.stop()


async def test_a_shed_kernel_is_resumed_after_shed_max_s_with_no_clear_event(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, kernels=[kernel("batch", tmp_path), kernel("api", tmp_path, critical=True)],
                      shed={"kernels": ["batch"]})
    assert float(cfg.shed.max_s) == 300.0  # the default: 5m
    now = [10_000.0]
    seen: list[events.Payload] = []
    state = tmp_path / "kernels.json"
    sup = Supervisor(cfg, seen.append, state_file=state, clock=lambda: now[0])
    await sup.start()
    try:
        [pid] = await sup.suspend("batch")
        assert status(pid) == psutil.STATUS_STOPPED
        [rec] = [r for r in kernelstate.read(state) or [] if r.kernel == "batch"]
        assert rec.state == "suspended" and rec.suspended_at == 10_000.0
        now[0] += 299.0
        assert sup.expire_suspensions() == [] and status(pid) == psutil.STATUS_STOPPED
        now[0] += 1.0
        assert sup.expire_suspensions() == [pid]
        assert status(pid) != psutil.STATUS_STOPPED
        [resumed] = [e for e in seen if isinstance(e, events.KernelResumed)]
        assert resumed.pids == [pid] and "shed.max_s" in resumed.reason
        [rec] = [r for r in kernelstate.read(state) or [] if r.kernel == "batch"]
        assert rec.state == "running"
        assert sup.expire_suspensions() == []  # once
    finally:
        await sup.stop()


async def test_the_watch_loop_enforces_shed_max_s_by_itself(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, kernels=[kernel("batch", tmp_path)], shed={"kernels": ["batch"]})
    now = [0.0]
    sup = Supervisor(cfg, lambda e: None, poll_interval=0.05, clock=lambda: now[0])
    await sup.start()
    try:
        [pid] = await sup.suspend("batch")
        now[0] = 301.0
        from tests.support import wait_for
        await wait_for(lambda: status(pid) != psutil.STATUS_STOPPED, timeout=10)
        assert not sup.suspended("batch")
    finally:
        await sup.stop()
