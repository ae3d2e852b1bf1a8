"""`grace act` as a real subprocess: end to end with the bus, and killed mid-command."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from nats.js import api

from actuators.intents import IntentStore
from grace import events, topology
from grace.bus import Bus
from tests.actuators.helpers import events_of, kernel, kernel_processes, make_config, ready, results_for
from tests.support import grace_cmd, wait_for

GRACE = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"


class Actuator:
    """`grace act` in a subprocess, its output in a log file."""

    def __init__(self, cfg_file: Path, url: str) -> None:
        self.cfg_file, self.url = cfg_file, url
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cfg_file.parent / "act.log"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([GRACE, "act", "-c", str(self.cfg_file), "--nats", self.url],
                                         stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[list[Actuator]]:
    started: list[Actuator] = []
    yield started
    for a in started:
        if a.proc and a.proc.poll() is None:
            a.proc.kill()
    for p in kernel_processes(tmp_path):
        p.kill()


async def test_restore_command_published_to_nats_restores_the_file_and_logs_success(
        tmp_path: Path, nats_url: str, bus: Bus, cleanup: list[Actuator]) -> None:
    cfg = make_config(tmp_path, kernels=[kernel("api", tmp_path, critical=True)])
    cfg_file = tmp_path / "grace.yaml"
    took = grace_cmd("snapshot", "take", "-c", str(cfg_file), "--nats", nats_url)
    assert took.returncode == 0, took.stderr
    act = Actuator(cfg_file, nats_url)
    cleanup.append(act)
    act.start()
    await wait_for(lambda: len(kernel_processes(tmp_path)) == 1, timeout=30)
    model = tmp_path / "models" / "m.pkl"
    good = model.read_bytes()
    model.write_bytes(b"\x80\x04 flipped bits")
    pub = grace_cmd("events", "publish", "restore_model_weights", "--data", '{"path": "models/m.pkl"}',
                    "--host", cfg.host, "-c", str(cfg_file), "--nats", nats_url)
    assert pub.returncode == 0, pub.stderr

    async def succeeded() -> list[events.Event]:
        return [r for r in await results_for(bus, cfg.host) if r.type == "command_succeeded"]

    (result,) = await wait_for(succeeded, timeout=30, interval=0.2)
    assert model.read_bytes() == good
    assert result.data.action == "restore_model_weights" and result.data.target == "models/m.pkl"
    restored = await events_of(bus, cfg.host, "snapshot", "snapshot_restored")
    assert any(e.data.path == "models/m.pkl" for e in restored)
    started = await events_of(bus, cfg.host, "stage", "watchdog_started")
    assert any(e.data.name == "kernel-supervisor" and e.data.tier == 2 for e in started)
    assert await events_of(bus, cfg.host, "snapshot", "snapshot_policy")
    # a command whose params do not validate is kept in GRACE_REJECTED with its reason
    bad = events.encode(bus.event(events.RestoreModelWeights(path="x"), host=cfg.host)).replace(
        b'"path":"x"', b'"path":42')
    await bus.js.publish(topology.command_subject(cfg.host, "restore_model_weights"), bad)

    async def rejected() -> str:
        try:
            msg = await bus.js.get_last_msg(topology.REJECTED, topology.rejected_subject("actuator"))
        except Exception:  # noqa: BLE001 - not there yet
            return ""
        return (msg.headers or {}).get(topology.H_REJECT_SUBJECT, "")

    assert await wait_for(rejected, timeout=15, interval=0.1) == topology.command_subject(
        cfg.host, "restore_model_weights")
    assert act.stop() == 0
    assert kernel_processes(tmp_path) == []  # stopped gracefully with the actuator
    exits = await events_of(bus, cfg.host, "kernel", "kernel_exited")
    assert any(e.data.kernel == "api" and e.data.expected for e in exits)


async def test_actuator_killed_mid_restart_restarts_once_and_reports_once(
        tmp_path: Path, nats_url: str, bus: Bus, cleanup: list[Actuator]) -> None:
    """SIGKILL while restart_kernel waits out a kernel that ignores SIGTERM; the restarted
    actuator adopts the kernel, finishes the recorded intent, and the redelivered command
    only re-publishes the same result."""
    cfg = make_config(tmp_path, kernels=[kernel("stubborn", tmp_path, "--ignore-term",
                                                stop_timeout="3s")])
    # a short ack_wait so the redelivery to the restarted actuator happens within the test
    await bus.js.add_consumer(topology.COMMANDS, api.ConsumerConfig(
        **{**topology.actuator_consumer_config(cfg.host).as_dict(), "ack_wait": 2.0}))
    act = Actuator(tmp_path / "grace.yaml", nats_url)
    cleanup.append(act)
    act.start()
    (first,) = await wait_for(lambda: kernel_processes(tmp_path), timeout=30)
    await wait_for(lambda: ready(tmp_path, first.pid), timeout=10)
    cmd = bus.event(events.RestartKernel(kernel="stubborn", playbook="kernel_heartbeat_gap"), host=cfg.host)
    await bus.publish(cmd)
    intents = await IntentStore.open(bus, cfg.host)

    async def started() -> bool:
        intent = await intents.get(cmd.id)
        return intent is not None and intent.state == "started"

    await wait_for(started, timeout=30, interval=0.05)
    act.kill()  # mid-action: the kernel got SIGTERM, ignores it, and is still running
    assert [p.pid for p in kernel_processes(tmp_path)] == [first.pid]
    act.start()

    async def done() -> bool:
        intent = await intents.get(cmd.id)
        return intent is not None and intent.state == "done"

    await wait_for(done, timeout=30, interval=0.1)

    async def acked() -> bool:
        info = await bus.js.consumer_info(topology.COMMANDS, topology.actuator_consumer(cfg.host))
        return info.num_ack_pending == 0 and info.num_pending == 0

    await wait_for(acked, timeout=30, interval=0.2)  # the redelivery was handled and acked
    procs = kernel_processes(tmp_path)
    assert len(procs) == 1 and procs[0].pid != first.pid
    assert not first.is_running() or first.status() == psutil.STATUS_ZOMBIE  # init reaps it
    results = await results_for(bus, cfg.host, cmd.id)
    assert [r.type for r in results] == ["command_succeeded"]
    assert results[0].data.details["old_pids"] == {"0": first.pid}
    restarts = list(await events_of(bus, cfg.host, "kernel", "kernel_restarted"))
    assert len(restarts) == 1 and restarts[0].data.pid == procs[0].pid
    assert act.stop() == 0
