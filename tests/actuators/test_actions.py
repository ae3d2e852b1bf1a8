"""Each action against real processes, files and a real bus."""

from __future__ import annotations

import pickle

import msgspec
import psutil
import pytest

from actuators import snapshots
from actuators.intents import Intent
from grace import events, manifest
from tests.actuators.conftest import World
from tests.actuators.helpers import results_for


def status(pid: int) -> str:
    return str(psutil.Process(pid).status())


async def test_restore_model_weights_restores_the_file_and_succeeds(world: World) -> None:
    model = world.root / "models" / "m.pkl"
    good = model.read_bytes()
    snapshots.take(world.cfg)
    model.write_bytes(b"\x80\x04corrupt")
    cmd = world.command(events.RestoreModelWeights(path="models/m.pkl", playbook="model_corruption_detected"))
    result = await world.executor.handle(cmd)
    assert isinstance(result.data, events.CommandSucceeded), result.data
    assert model.read_bytes() == good
    assert result.id == events.derive_id("result", cmd.id)
    assert result.data.command_id == cmd.id and result.data.playbook == "model_corruption_detected"
    assert result.data.details["written"] is True and result.data.duration_ms > 0
    (logged,) = await results_for(world.bus, world.cfg.host, cmd.id)
    assert logged.id == result.id


async def test_a_redelivered_command_acts_once_and_has_one_result(world: World) -> None:
    cmd = world.command(events.RestartKernel(kernel="batch"))
    (old,) = world.supervisor.pids("batch")
    first = await world.executor.handle(cmd)
    (new,) = world.supervisor.pids("batch")
    assert new != old and first.data.details["restarted"] == 1
    again = await world.executor.handle(cmd)  # redelivery after the work was done
    assert world.supervisor.pids("batch") == [new]
    assert again.id == first.id
    assert len(await results_for(world.bus, world.cfg.host, cmd.id)) == 1


async def test_a_result_recorded_but_never_published_is_published_once(world: World) -> None:
    """The actuator died between recording `done` and publishing the result."""
    cmd = world.command(events.ResumeLoad(kernels=["batch"]))
    result = world.bus.event(events.CommandSucceeded(command_id=cmd.id, action="resume_load"),
                             id=events.derive_id("result", cmd.id), host=world.cfg.host)
    await world.executor.intents.put(Intent(
        command_id=cmd.id, action="resume_load", state="done", result_id=result.id,
        result=msgspec.Raw(events.encode(result))))
    for _ in range(2):
        again = await world.executor.handle(cmd)
        assert again.id == result.id
    assert len(await results_for(world.bus, world.cfg.host, cmd.id)) == 1
    stored = await world.executor.intents.get(cmd.id)
    assert stored is not None and stored.published


async def test_a_hand_made_command_id_with_odd_characters_still_gets_one_result(world: World) -> None:
    ev = world.bus.event(events.ResumeLoad(), id="fix it * now > please", host=world.cfg.host)
    first = await world.executor.handle(ev)
    assert isinstance(first.data, events.CommandSucceeded)
    assert (await world.executor.handle(ev)).id == first.id
    assert len(await results_for(world.bus, world.cfg.host, ev.id)) == 1


async def test_a_started_intent_is_finished_toward_its_recorded_target(world: World) -> None:
    """The actuator died after recording the intent: the redelivery scales to the recorded
    absolute target instead of applying `by` again."""
    cmd = world.command(events.ScaleWorkers(kernel="worker", by=2))
    intent = Intent(command_id=cmd.id, action="scale_workers", state="started",
                    target={"kernel": "worker", "from": 1, "to": 3, "requested": 3})
    await world.executor.intents.put(intent)
    await world.supervisor.scale("worker", 3)  # the effect happened before the crash
    result = await world.executor.handle(cmd)
    assert isinstance(result.data, events.CommandSucceeded)
    assert world.supervisor.count("worker") == 3 and result.data.details["resumed"] is True
    live = [p for p in world.supervisor.pids("worker") if psutil.pid_exists(p)]
    assert len(live) == 3
    done = await world.executor.intents.get(cmd.id)
    assert done is not None and done.state == "done" and done.result_id == result.id


async def test_scale_workers_by_is_clamped_to_the_pool(world: World) -> None:
    result = await world.executor.handle(world.command(events.ScaleWorkers(kernel="worker", by=10)))
    assert result.data.details["to"] == 4 and world.supervisor.count("worker") == 4
    result = await world.executor.handle(world.command(events.ScaleWorkers(kernel="worker", to=2)))
    assert world.supervisor.count("worker") == 2


async def test_shed_load_stops_non_critical_kernels_and_resume_load_restores_them(world: World) -> None:
    shed = await world.executor.handle(world.command(events.ShedLoad()))
    assert isinstance(shed.data, events.CommandSucceeded), shed.data
    for name in ("batch", "worker"):
        assert all(status(p) == psutil.STATUS_STOPPED for p in world.supervisor.pids(name))
    assert all(status(p) != psutil.STATUS_STOPPED for p in world.supervisor.pids("api"))
    refused = await world.executor.handle(world.command(events.ShedLoad(kernels=["api"])))
    assert isinstance(refused.data, events.CommandFailed) and "critical" in refused.data.reason
    resumed = await world.executor.handle(world.command(events.ResumeLoad()))
    assert sorted(resumed.data.details["kernels"]) == ["batch", "worker"]
    for name in ("batch", "worker"):
        assert all(status(p) != psutil.STATUS_STOPPED for p in world.supervisor.pids(name))


async def test_a_kernel_the_config_does_not_name_fails_with_the_reason(world: World) -> None:
    result = await world.executor.handle(world.command(events.RestartKernel(kernel="ghost")))
    assert isinstance(result.data, events.CommandFailed)
    assert "'ghost' is not in the config" in result.data.reason


@pytest.mark.parametrize("path", ["../outside.pkl", "/etc/passwd", "models/../../x.pkl",
                                  "models/link.pkl", "grace.yaml"])
async def test_path_escapes_and_symlinks_are_refused(world: World, path: str) -> None:
    outside = world.root.parent / f"{world.root.name}-outside.pkl"
    outside.write_bytes(pickle.dumps("precious"))
    link = world.root / "models" / "link.pkl"
    if not link.is_symlink():
        link.symlink_to(outside)
    snapshots.take(world.cfg, ["models/m.pkl"])
    result = await world.executor.handle(world.command(events.RestoreFromSnapshot(path=path)))
    assert isinstance(result.data, events.CommandFailed)
    assert "refused" in result.data.reason
    assert outside.read_bytes() == pickle.dumps("precious")


async def test_clear_caches_empties_only_configured_cache_dirs(world: World) -> None:
    cache = world.root / "cache"
    (cache / "sub").mkdir(parents=True)
    (cache / "a.bin").write_bytes(b"x" * 100)
    (cache / "sub" / "b.bin").write_bytes(b"y" * 50)
    keep = world.root.parent / f"{world.root.name}-keep.txt"
    keep.write_text("keep")
    (cache / "link").symlink_to(keep)
    result = await world.executor.handle(world.command(events.ClearCaches()))
    assert isinstance(result.data, events.CommandSucceeded)
    assert cache.is_dir() and list(cache.iterdir()) == [] and keep.read_text() == "keep"
    assert result.data.details["bytes_freed"] >= 150
    bad = await world.executor.handle(world.command(events.ClearCaches(paths=["models"])))
    assert isinstance(bad.data, events.CommandFailed)
    assert "not one of the configured caches" in bad.data.reason
    assert (world.root / "models" / "m.pkl").exists()


async def test_take_snapshot_command_snapshots_and_publishes_events(world: World) -> None:
    result = await world.executor.handle(world.command(events.TakeSnapshot()))
    assert isinstance(result.data, events.CommandSucceeded) and result.data.details["taken"] == 2
    assert manifest.load(world.cfg).baseline("models/m.pkl") is not None
    (world.root / "models" / "m.pkl").write_bytes(b"junk")
    refused = await world.executor.handle(world.command(events.TakeSnapshot(paths=["models/m.pkl"])))
    assert isinstance(refused.data, events.CommandFailed) and "integrity" in refused.data.reason


async def test_restore_without_a_snapshot_says_what_to_do(world: World) -> None:
    result = await world.executor.handle(world.command(events.RestoreModelWeights(path="models/m.pkl")))
    assert isinstance(result.data, events.CommandFailed)
    assert "grace snapshot take" in result.data.reason


async def test_a_command_for_another_host_is_skipped(world: World) -> None:
    ev = world.bus.event(events.RestartKernel(kernel="api"), host="elsewhere")
    result = await world.executor.handle(ev)
    assert isinstance(result.data, events.CommandSkipped) and result.data.reason == "not_for_this_host"


def test_every_command_type_has_an_action() -> None:
    from actuators.actions import ACTIONS

    assert set(ACTIONS) == set(events.COMMAND_TYPES)
    assert all(name == a.params.TYPE for name, a in ACTIONS.items())
