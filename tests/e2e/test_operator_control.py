"""Operator control under `grace up` on the example as shipped (30 s cycles, shipped
thresholds): an intended change under a hold, a held kernel, observe mode, approvals
(also across SIGKILLed stages and a restart of all of Grace), denials and expiry.
Effects are counted in the world: file bytes, pids; the log says why."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from grace import bus as bus_mod
from grace import events, topology
from tests.e2e.conftest import (
    Running,
    _bus_of,
    booted,
    eventually,
    expect,
    instance_pids,
    shipped_copy,
    stage_process,
    watch_from_now,
)
from tests.processors.support import stored

pytestmark = pytest.mark.slow
INTERVAL_S = 30  # the shipped monitor.interval
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks" / "advanced_self_healing.yaml"


def grace(running: Running, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grace.app", *args, "-c", str(running.config)],
                          capture_output=True, check=False, text=True, timeout=60)


def ok(running: Running, *args: str) -> str:
    out = grace(running, *args)
    assert out.returncode == 0, f"grace {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


def refused(running: Running, *args: str) -> str:
    out = grace(running, *args)
    assert out.returncode == 2, f"grace {' '.join(args)} was not refused: {out.stdout}{out.stderr}"
    return out.stderr + out.stdout


def config_file(running: Running, index: int) -> tuple[Path, str]:
    """A protected config of the example, and the name findings give it."""
    path = sorted(p for p in (running.root / "config").iterdir() if p.suffix in (".yaml", ".json"))[index]
    return path, str(path.relative_to(running.root))


def with_modes(root: Path, cfg: Path) -> None:
    """The shipped playbooks, with modes an operator would set: config drift needs a yes,
    model corruption is only observed, a queue backlog's scale-up needs a yes within 20s."""
    text = PLAYBOOKS.read_text()
    text = text.replace("  - name: config_drift_detected\n",
                        "  - name: config_drift_detected\n    mode: approve\n")
    text = text.replace("  - name: model_corruption_detected\n",
                        "  - name: model_corruption_detected\n    mode: observe\n")
    text = text.replace("  - name: high_queue_backlog\n",
                        "  - name: high_queue_backlog\n    mode: approve\n    approve_within: 20s\n")
    assert text.count("mode: ") == 3
    (root / "playbooks").mkdir()
    (root / "playbooks" / "operator.yaml").write_text(text)
    cfg.write_text(re.sub(r"playbooks: \[[^\]]*\]", "playbooks: [playbooks]", cfg.read_text()))


# ---------------------------------------------------------------- the example as shipped


async def test_an_intended_config_change_under_a_hold_is_kept_then_protected(
        shipped_up: Running, shipped_bus: bus_mod.Bus) -> None:
    path, rel = config_file(shipped_up, 0)
    original = path.read_bytes()
    w = await watch_from_now(shipped_bus)
    try:
        ok(shipped_up, "hold", "add", f"path:{rel}", "--for", "10m", "--reason", "deploy",
           "--by", "ana")
        added = await expect(w, events.HoldAdded, timeout=10)
        assert (added.target, added.by, added.via) == (f"path:{rel}", "ana", "cli")
        changed = original + b"\n# pool size raised for the sale\n"
        path.write_bytes(changed)
        await expect(w, events.ConfigDrift, lambda d: d.path == rel, timeout=INTERVAL_S + 5)
        await expect(w, events.DecisionSuppressed, lambda d: d.reason == "hold"
                     and d.hold_id == added.hold_id, timeout=10)
        await asyncio.sleep(3)
        assert path.read_bytes() == changed  # not reverted
        ok(shipped_up, "snapshot", "accept", rel)
        await expect(w, events.SnapshotAccepted, lambda d: d.path == rel, timeout=10)
        ok(shipped_up, "hold", "release", added.hold_id)
        await expect(w, events.HoldReleased, lambda d: d.hold_id == added.hold_id, timeout=10)
        await asyncio.sleep(INTERVAL_S + 5)  # a whole cycle after the release
        assert path.read_bytes() == changed  # the accepted content stays
        restores = [e for e in w.seen if isinstance(e.data, events.CommandIssued)
                    and e.data.action == "restore_from_snapshot"]
        assert restores == []
        path.write_bytes(changed + b"# an edit nobody meant\n")  # drift from the new baseline
        await expect(w, events.CommandSucceeded, lambda d: d.action == "restore_from_snapshot",
                     timeout=INTERVAL_S + 10)
    finally:
        await w.close()
    assert path.read_bytes() == changed


async def test_a_held_kernel_stays_down_until_the_hold_ends(shipped_up: Running,
                                                            shipped_bus: bus_mod.Bus) -> None:
    (old,) = instance_pids(shipped_up, "reporter").values()
    w = await watch_from_now(shipped_bus)
    try:
        ok(shipped_up, "hold", "add", "kernel:reporter", "--for", "10m", "--reason", "upgrade")
        added = await expect(w, events.HoldAdded, timeout=10)
        os.kill(old, signal.SIGKILL)
        await expect(w, events.KernelExited, lambda d: d.kernel == "reporter", timeout=10)
        # longer than its heartbeat_timeout (10s) plus a monitor cycle: a playbook would act
        await asyncio.sleep(INTERVAL_S + 15)
        assert instance_pids(shipped_up, "reporter") == {}  # neither supervisor nor playbook
        restarts = [e for e in w.seen if (isinstance(e.data, events.KernelRestarted)
                                          and e.data.kernel == "reporter")
                    or (isinstance(e.data, events.CommandIssued)
                        and e.data.params.get("kernel") == "reporter")]
        assert restarts == []
        ok(shipped_up, "hold", "release", added.hold_id)
        await expect(w, events.KernelRestarted, lambda d: d.kernel == "reporter", timeout=20)
    finally:
        await w.close()
    new = await eventually(lambda: instance_pids(shipped_up, "reporter"), timeout=20)
    assert list(new) == [0] and new[0] != old and psutil.Process(new[0]).is_running()


def test_bad_holds_are_refused_and_nothing_is_recorded(shipped_up: Running) -> None:
    assert "kernel" in refused(shipped_up, "hold", "add", "kernel:nope", "--for", "1m",
                               "--reason", "x")
    assert "holds.max" in refused(shipped_up, "hold", "add", "kernel:api", "--for", "2d",
                                  "--reason", "x")
    out = grace(shipped_up, "hold", "add", "kernel:api", "--reason", "x")
    assert out.returncode == 2 and "--for" in out.stderr
    assert refused(shipped_up, "hold", "release", "no-such-hold")


# ---------------------------------------------------------------- modes and approvals


@pytest.fixture(scope="module")
def moded_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("modes") / "system"
    cfg = shipped_copy(root, host="modes")
    with_modes(root, cfg)
    with booted(root, cfg) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def moded_bus(moded_up: Running) -> AsyncIterator[bus_mod.Bus]:
    async for b in _bus_of(moded_up):
        yield b


async def test_an_observed_playbook_sends_nothing_and_names_its_command(
        moded_up: Running, moded_bus: bus_mod.Bus) -> None:
    model = moded_up.root / "models" / "model.pkl"
    w = await watch_from_now(moded_bus)
    try:
        moded_up.fault("model-corruption")
        corrupt = model.read_bytes()
        seen = await expect(w, events.DecisionObserved,
                            lambda d: d.playbook == "model_corruption_detected", timeout=INTERVAL_S)
        assert seen.action == "restore_model_weights" and seen.params["path"].endswith("model.pkl")
        await asyncio.sleep(3)
    finally:
        await w.close()
    assert model.read_bytes() == corrupt  # nothing restored it
    sent = await stored(moded_bus, topology.COMMANDS, topology.COMMANDS_ALL)
    assert seen.command_id not in {c.id for c in sent}
    ok(moded_up, "snapshot", "restore", "models/model.pkl")


async def test_an_approved_command_acts_once_also_across_killed_stages(
        moded_up: Running, moded_bus: bus_mod.Bus) -> None:
    path, rel = config_file(moded_up, 0)
    original = path.read_bytes()
    w = await watch_from_now(moded_bus)
    try:
        moded_up.fault("config-drift")
        drifted = path.read_bytes()
        req = await expect(w, events.ApprovalRequested, lambda d: d.playbook == "config_drift_detected",
                           timeout=INTERVAL_S)
        assert req.action == "restore_from_snapshot" and req.params == {"path": rel}
        await asyncio.sleep(3)
        assert path.read_bytes() == drifted  # waits for a person
        assert req.command_id in ok(moded_up, "approvals")
        for stage in ("process", "act"):  # crash both between the request and the yes
            stage_process(moded_up.proc.pid, stage).kill()
        for stage in ("process", "act"):
            await expect(w, events.StageRestarted, lambda d, s=stage: d.stage == s, timeout=30)
        ok(moded_up, "approve", req.command_id, "--by", "bo")
        granted = await expect(w, events.ApprovalGranted, timeout=10)
        assert (granted.command_id, granted.by, granted.via) == (req.command_id, "bo", "cli")
        await expect(w, events.CommandSucceeded, lambda d: d.command_id == req.command_id, timeout=60)
        assert path.read_bytes() == original
        assert "approved" in refused(moded_up, "approve", req.command_id)  # twice: refused
        await asyncio.sleep(5)
    finally:
        await w.close()
    issued = [e.data for e in w.seen if isinstance(e.data, events.CommandIssued)
              and e.data.command_id == req.command_id]
    done = [e.data for e in w.seen if isinstance(e.data, events.CommandSucceeded)
            and e.data.command_id == req.command_id]
    restored = [e.data for e in w.seen if isinstance(e.data, events.SnapshotRestored)
                and e.data.path == rel]
    assert len(issued) == 1 and issued[0].approved_by == "bo"
    assert len(done) == 1 and len(restored) == 1


async def test_a_denied_approval_never_acts(moded_up: Running, moded_bus: bus_mod.Bus) -> None:
    path, rel = config_file(moded_up, 1)
    original = path.read_bytes()
    w = await watch_from_now(moded_bus)
    try:
        path.write_bytes(original + b"\n# edited by hand\n")
        req = await expect(w, events.ApprovalRequested, lambda d: d.params.get("path") == rel,
                           timeout=INTERVAL_S + 5)
        ok(moded_up, "deny", req.command_id, "--reason", "this edit is intended")
        await expect(w, events.ApprovalDenied, lambda d: d.command_id == req.command_id, timeout=10)
        assert "denied" in refused(moded_up, "approve", req.command_id)
        await asyncio.sleep(5)
        assert [e for e in w.seen if e.category == "result" and
                getattr(e.data, "command_id", "") == req.command_id] == []
    finally:
        await w.close()
    assert path.read_bytes() == original + b"\n# edited by hand\n"
    ok(moded_up, "snapshot", "restore", rel)


async def test_an_expired_approval_never_acts(moded_up: Running, moded_bus: bus_mod.Bus) -> None:
    before = len(instance_pids(moded_up, "worker"))
    assert before >= 1
    w = await watch_from_now(moded_bus)
    try:
        moded_up.fault("queue-flood")
        req = await expect(w, events.ApprovalRequested, lambda d: d.playbook == "high_queue_backlog",
                           timeout=2 * INTERVAL_S)
        await expect(w, events.ApprovalExpired, lambda d: d.command_id == req.command_id, timeout=40)
        assert "expired" in refused(moded_up, "approve", req.command_id)
        await asyncio.sleep(3)
    finally:
        await w.close()
    assert len(instance_pids(moded_up, "worker")) == before
    assert not [e for e in w.seen if isinstance(e.data, events.CommandIssued)
                and e.data.command_id == req.command_id]


# ---------------------------------------------------------------- a restart of all of Grace


async def test_holds_and_pending_approvals_survive_a_restart_of_all_of_grace(
        tmp_path: Path) -> None:
    root = tmp_path / "system"
    cfg = shipped_copy(root, host="again")
    with_modes(root, cfg)
    with booted(root, cfg) as first:
        path, rel = config_file(first, 1)
        original = path.read_bytes()
        async for b in _bus_of(first):
            w = await watch_from_now(b)
            try:
                ok(first, "hold", "add", "kernel:reporter", "--for", "30m", "--reason", "upgrade")
                hold = await expect(w, events.HoldAdded, timeout=10)
                path.write_bytes(original + b"\n# drift\n")
                req = await expect(w, events.ApprovalRequested, lambda d: d.params.get("path") == rel,
                                   timeout=INTERVAL_S + 5)
            finally:
                await w.close()
    with booted(root, cfg) as second:  # every process of the first run is gone
        listed = json.loads(ok(second, "hold", "list", "--json"))
        assert [h["hold_id"] for h in listed] == [hold.hold_id]
        assert req.command_id in ok(second, "approvals")
        assert instance_pids(second, "reporter") == {}  # held: not started at boot
        async for b in _bus_of(second):
            w = await watch_from_now(b)
            try:
                ok(second, "approve", req.command_id)
                await expect(w, events.CommandSucceeded, lambda d: d.command_id == req.command_id,
                             timeout=60)
                ok(second, "hold", "release", hold.hold_id)
                await eventually(lambda: instance_pids(second, "reporter"), timeout=30)
                await asyncio.sleep(3)
            finally:
                await w.close()
            issued = [e for e in w.seen if isinstance(e.data, events.CommandIssued)
                      and e.data.command_id == req.command_id]
            assert len(issued) == 1
        assert path.read_bytes() == original


async def test_observe_mode_for_a_first_deployment_sends_nothing(tmp_path: Path) -> None:
    root = tmp_path / "system"
    cfg = shipped_copy(root, host="firstweek")
    cfg.write_text(cfg.read_text() + "processor: {mode: observe}\n")
    with booted(root, cfg) as running:
        assert "observe mode" in running.log.read_text()
        model = root / "models" / "model.pkl"
        async for b in _bus_of(running):
            w = await watch_from_now(b)
            try:
                running.fault("model-corruption")
                corrupt = model.read_bytes()
                seen = await expect(w, events.DecisionObserved,
                                    lambda d: d.action == "restore_model_weights", timeout=INTERVAL_S)
                await asyncio.sleep(3)
            finally:
                await w.close()
            sent = await stored(b, topology.COMMANDS, topology.COMMANDS_ALL)
            assert seen.command_id not in {c.id for c in sent}
            assert not [e for e in w.seen if e.type == "command_issued"]
        assert model.read_bytes() == corrupt
