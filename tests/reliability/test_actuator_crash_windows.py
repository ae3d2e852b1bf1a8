"""Two crash windows of the actuator, each forced on purpose (the crash suite hits them only
by chance): a kernel spawned just before the actuator died, and a command received but not
acked when it died."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from actuators.supervisor import Supervisor
from grace import bus as bus_mod
from grace import config, events, topology
from grace.embedded import EmbeddedServer
from grace.kernelstate import STATE_ENV
from tests.reliability.pipeline import Stage, data_of, read_log, write_config
from tests.support import wait_for

# starts `sleep` in its own session, the way the supervisor starts a kernel, and exits:
# the kernel is left without its parent, like one spawned by an actuator killed at once
ORPHAN = ("import subprocess, sys\n"
          "p = subprocess.Popen(['sleep', '60'], start_new_session=True, stdin=subprocess.DEVNULL,\n"
          "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
          "print(p.pid)\n")


async def test_a_kernel_spawned_just_before_the_actuator_died_is_adopted_not_started_twice(
        tmp_path: Path) -> None:
    (tmp_path / "grace.yaml").write_text(f"host: orphans\ndata_dir: {tmp_path / 'data'}\n"
                                         "kernels:\n  - name: k\n    command: [sleep, '60']\n")
    cfg = config.load(str(tmp_path / "grace.yaml"))
    state = tmp_path / "k-kernels.json"
    gone = psutil.Popen(["true"])
    gone.wait()
    # the state file still names the kernel the restart had just stopped
    state.write_text(json.dumps([{"kernel": "k", "index": 0, "pid": gone.pid, "create_time": 1.0,
                                  "state": "running"}]))
    env = {**os.environ, "GRACE_HOST": "orphans", "GRACE_KERNEL": "k", "GRACE_INSTANCE": "0",
           STATE_ENV: str(state)}
    orphan = int(subprocess.run([sys.executable, "-c", ORPHAN], env=env, capture_output=True,
                                text=True, check=True).stdout)
    emitted: list[events.Payload] = []
    sup = Supervisor(cfg, emitted.append, state_file=state)
    try:
        await sup.start()
        assert sup.pids("k") == [orphan]  # adopted: no second kernel in the slot
        assert not any(isinstance(e, events.KernelStarted) for e in emitted)
    finally:
        await sup.stop()  # stops whatever it runs, the adopted orphan included
        with contextlib.suppress(ProcessLookupError):
            os.killpg(orphan, signal.SIGKILL)


async def test_a_command_received_but_not_acked_by_a_killed_actuator_runs_at_its_restart(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    """Without the take-over JetStream would redeliver it only after ack_wait (60s)."""
    url, host = fresh_server.url, "unacked"
    b = await bus_mod.connect_and_ensure(url, host=host, source=f"grace/{host}/test")
    await topology.ensure_consumer(b.js, topology.COMMANDS, topology.actuator_consumer_config(host))
    cmd = b.event(events.TakeSnapshot(playbook="t", reason="held by a dead actuator"), id="held-1")
    await b.publish(cmd)
    sub = await b.js.pull_subscribe_bind(topology.actuator_consumer(host), topology.COMMANDS)
    (held,) = await sub.fetch(1, timeout=5)  # delivered and never acked: the actuator "died"
    assert held.metadata.sequence.stream >= 1
    await sub.unsubscribe()
    cfg = write_config(tmp_path / "cfg", "", "playbooks: []\n")
    act = Stage("act", cfg, url, tmp_path / "data", env={"GRACE_HOST": host})
    results = topology.event_filter("result", "*", host)
    try:
        act.start()
        await wait_for(lambda: _count(b, results), timeout=40, interval=0.3)  # ack_wait is 60s
        assert act.stop() == 0
        log = await read_log(b, results)
    finally:
        act.kill()
        await b.close()
    assert [(e.type, data_of(e)["command_id"]) for e in log] == [("command_succeeded", cmd.id)]
    assert "received but not acked" in act.log.read_text()


async def _count(b: bus_mod.Bus, subject: str) -> int:
    info = await b.js.stream_info(topology.EVENTS, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())
