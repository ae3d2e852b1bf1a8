"""Issue 15: a `grace up` run lives and dies together. SIGKILL of `grace up` alone leaves no
process of the run (nats-server, the four stages, every kernel); while a run lives its data dir
is locked (a second `grace up` or `grace act` exits 2 naming the pid); a broken playbook fails
phase 1 with file:line; a stage that crash-loops is on the dashboard and, past the limit, stops
the boot with its last error. The example as shipped, only its ports moved; the world is
counted in /proc."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grace import bus as bus_mod
from grace import events, runlock
from grace.embedded import read_url
from grace.logwatch import LogWatcher
from grace.stages import CRASH_LOOP_RESTARTS
from tests.e2e.conftest import Running, booted, shipped_copy

pytestmark = pytest.mark.slow
GONE_WITHIN_S = 5.0  # a wait bound, not a speed assertion


def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, state) of a live process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0].decode()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> dict[int, str]:
    """{pid: command line} of every live process below `root` (children, their children...)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None and st[1] != "Z":
            parents[int(name)] = st[0]
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = _cmdline(child)
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    st = _stat(pid)
    return st is not None and st[1] != "Z"


def stage_pid(running: Running, stage: str) -> int:
    return next(pid for pid, cmd in descendants(running.proc.pid).items()
                if f"grace.app {stage} " in cmd)


def grace(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grace.app", *args], capture_output=True, check=False,
                          text=True, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("tree") / "system"
    with booted(root, shipped_copy(root)) as running:
        yield running


def test_a_second_grace_up_on_the_same_data_dir_is_refused_naming_the_pid(run: Running) -> None:
    out = grace("up", "-c", str(run.config), cwd=run.root)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"pid {run.proc.pid}" in out.stderr and "run.lock" in out.stderr
    assert "embedded NATS ready" not in out.stdout  # refused before starting anything


def test_a_second_actuator_for_the_host_is_refused_naming_the_pid(run: Running) -> None:
    out = grace("act", "-c", str(run.config), cwd=run.root)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"pid {stage_pid(run, 'act')}" in out.stderr


def test_a_restarted_stage_is_counted_on_the_dashboard(run: Running) -> None:
    """Two kills of the processor: two stage_restarted, and the system is degraded while it
    crash-loops (two restarts within two minutes)."""
    for n in (1, 2):
        pid = stage_pid(run, "process")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while stage_pid_or_none(run, "process") in (None, pid):
            assert time.monotonic() < deadline, f"the processor was not restarted (kill {n})"
            time.sleep(0.2)
    deadline = time.monotonic() + 60
    while True:
        body = run.dashboard()
        stage = body.get("stages", {}).get("process", {})
        if stage.get("stage_restarted") == 2:
            break
        assert time.monotonic() < deadline, f"dashboard never counted 2 restarts: {body.get('stages')}"
        time.sleep(0.5)
    assert stage["crash_looping"] is True
    assert body["system_state"] == "degraded"


def stage_pid_or_none(running: Running, stage: str) -> int | None:
    return next((pid for pid, cmd in descendants(running.proc.pid).items()
                 if f"grace.app {stage} " in cmd), None)


async def test_phases_3_and_4_are_published_by_the_stages_themselves(run: Running) -> None:
    url = read_url(run.data_dir)
    assert url
    b = await bus_mod.connect(url, host="demo", source="grace/demo/e2e-test")
    w = LogWatcher(b, 1, "grace.events.boot.>").start()
    try:
        def phases(seen: list[events.Event]) -> dict[int, str]:
            return {e.data.phase: e.source for e in seen
                    if isinstance(e.data, events.BootPhase) and e.data.status == "completed"}
        assert await w.wait(lambda seen: set(range(1, 8)) <= set(phases(seen)), 30), phases(w.seen)
        by = phases(w.seen)
        assert by[3] == "grace/demo/produce" and by[4] == "grace/demo/act"
        assert {by[n] for n in (1, 2, 5, 6, 7)} == {"grace/demo/up"}
    finally:
        await w.close()
        await b.close()


def test_sigkill_of_grace_up_leaves_no_process_of_the_run(run: Running) -> None:
    world = descendants(run.proc.pid)
    commands = list(world.values())
    assert any("nats-server" in c for c in commands), commands
    for stage in ("project", "act", "process", "produce"):
        assert any(f"grace.app {stage} " in c for c in commands), (stage, commands)
    kernels = [p for p, c in world.items() if "GRACE_KERNEL=" in _environ(p)]
    assert len(kernels) >= len(run.ctx().cfg.kernels), commands
    run.proc.kill()
    run.proc.wait()
    deadline = time.monotonic() + GONE_WITHIN_S
    while (left := {p: c for p, c in world.items() if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"outlived `grace up` by {GONE_WITHIN_S:.0f}s: {left}"
    # the last process of the run took the data-dir lock with it: a new run may start
    runlock.run_lock(run.data_dir).acquire().release()


def _environ(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().replace(b"\0", b"\n").decode(errors="replace")
    except OSError:
        return ""


def test_a_broken_playbook_fails_phase_1_with_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "system"
    cfg = shipped_copy(root)
    shipped = re.search(r"playbooks: \[([^\]]+)\]", cfg.read_text())
    assert shipped, "the example names its playbooks folder"
    books = root / "books"
    books.mkdir()
    for f in Path(shipped.group(1)).glob("*.yaml"):
        (books / f.name).write_text(f.read_text())
    (books / "zz-broken.yaml").write_text(
        "playbooks:\n  - name: broken\n    on: kernel_exited\n    do:\n      - action: no_such_action\n")
    cfg.write_text(cfg.read_text().replace(shipped.group(0), f"playbooks: [{books}]"))
    validate = grace("playbooks", "validate", "-c", str(cfg), cwd=root)
    assert validate.returncode == 1
    where = re.search(r"zz-broken\.yaml:\d+", validate.stderr)
    assert where, validate.stderr
    out = grace("up", "-c", str(cfg), cwd=root)
    assert out.returncode == 2, out.stdout + out.stderr
    assert re.search(r"phase 1/7 config validated\s+FAILED", out.stdout), out.stdout
    assert where.group(0) in out.stdout + out.stderr
    assert "embedded NATS ready" not in out.stdout and "phase 2/7" not in out.stdout
    assert not (root / ".grace" / "nats.url").exists()


def test_a_crash_looping_stage_stops_the_boot_with_its_last_error(tmp_path: Path) -> None:
    """The processor cannot start (its GRACE_PARTITION is not I/N): it crashes at every start,
    each restart is a stage_restarted, and past the limit `grace up` stops with its error."""
    root = tmp_path / "system"
    cfg = shipped_copy(root)
    out = subprocess.run([sys.executable, "-m", "grace.app", "up", "-c", str(cfg)], check=False,
                         capture_output=True, text=True, timeout=300, cwd=root,
                         env={**os.environ, "GRACE_PARTITION": "two-of-three"})
    said = out.stdout + out.stderr
    assert out.returncode == 2, said[-3000:]
    assert f"stage process crashed {CRASH_LOOP_RESTARTS + 1} times" in said, said[-3000:]
    assert "GRACE_PARTITION 'two-of-three' is not I/N" in said  # the stage's own last line
    # monitoring is never claimed active while a stage is not up (phase 7 is absent or FAILED)
    assert not re.search(r"phase 7/7 monitoring active\s+ok", said), said[-3000:]
