"""`grace agent`: one host's actuator and producers as one process tree on a real NATS."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from grace.embedded import EmbeddedServer
from tests.actuators.helpers import kernel, kernel_processes, make_config
from tests.support import grace_cmd, wait_for

GRACE = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"


@pytest.fixture
def agent_proc(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    for k in kernel_processes(tmp_path):
        k.kill()


def _stage_children(pid: int) -> dict[str, psutil.Process]:
    """The agent's stage processes by stage name (`python -m grace.app <stage> ...`)."""
    found = {}
    for child in psutil.Process(pid).children():
        cmd = child.cmdline()
        if "grace.app" in cmd:
            found[cmd[cmd.index("grace.app") + 1]] = child
    return found


async def test_the_agent_runs_this_hosts_actuator_and_producers_and_they_die_with_it(
        tmp_path: Path, fresh_server: EmbeddedServer, agent_proc: list[subprocess.Popen[bytes]]) -> None:
    url = fresh_server.url
    make_config(tmp_path, kernels=[kernel("api", tmp_path)])
    cfg_file = str(tmp_path / "grace.yaml")
    with open(tmp_path / "agent.log", "ab") as out:
        proc = subprocess.Popen([GRACE, "agent", "-c", cfg_file, "--nats", url],
                                stdout=out, stderr=subprocess.STDOUT)
    agent_proc.append(proc)
    for name in ("agent", "act", "produce"):  # what compose's health check runs
        pinged = grace_cmd("ping", name, "--timeout", "60", "-c", cfg_file, "--nats", url, timeout=90)
        assert pinged.returncode == 0, (name, pinged.stdout, pinged.stderr,
                                        (tmp_path / "agent.log").read_text())
    await wait_for(lambda: len(kernel_processes(tmp_path)) == 1, timeout=30)
    # boot phase 4 ran before the kernels: the host has a last good copy to restore from
    assert "phase 4/7 snapshots verified" in (tmp_path / "agent.log").read_text()
    assert list((tmp_path / ".grace_snapshots").rglob("*m.pkl*"))
    children = _stage_children(proc.pid)
    assert set(children) == {"act", "produce"}

    second = grace_cmd("agent", "-c", cfg_file, "--nats", url, timeout=60)
    assert second.returncode == 2, second.stderr
    assert "is in use" in second.stderr and f"pid {proc.pid} (grace agent, host" in second.stderr

    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    _gone, alive = psutil.wait_procs(list(children.values()), timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    await wait_for(lambda: not kernel_processes(tmp_path), timeout=30)


def test_the_agent_without_a_nats_url_says_how_to_name_the_cluster(tmp_path: Path) -> None:
    make_config(tmp_path)
    result = grace_cmd("agent", "-c", str(tmp_path / "grace.yaml"), env={"GRACE_NATS_URL": ""})
    assert result.returncode == 2
    assert "--nats nats://node1:4222,nats://node2:4222" in result.stderr


def test_code_that_does_not_compile_stops_the_agent_before_any_stage_or_kernel_starts(
        tmp_path: Path, fresh_server: EmbeddedServer) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def broken(:\n")
    make_config(tmp_path, kernels=[kernel("api", tmp_path)], code={"root": "src"})
    result = grace_cmd("agent", "-c", str(tmp_path / "grace.yaml"), "--nats", fresh_server.url,
                       timeout=120)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "phase 3/7 pre-boot code diff   FAILED" in result.stdout
    assert "app.py" in result.stderr and "no stage started" in result.stderr
    assert "started act" not in result.stdout and not kernel_processes(tmp_path)
