"""Issue 12: a syntax error in the system's code stops `grace up` at phase 3 (the shipped
default, `code.block_boot_on_syntax_error: true`), with a failed boot_phase naming file:line,
a non-zero exit and nothing started; with the key false, boot goes on and the finding becomes
a fix task naming the file and line. The example config as shipped, only its ports moved."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from grace import bus as bus_mod
from grace import config, events, topology
from grace.app import demo
from grace.embedded import EmbeddedServer, read_url
from tests.e2e.conftest import booted, shipped_copy
from tests.processors.support import stored

pytestmark = pytest.mark.slow
BROKEN = "shop/broken.py"  # what `grace demo fault syntax-error` writes under code.root


def broken_system(root: Path, block: bool | None = None) -> Path:
    """A copy of the example with its ports moved and the demo's syntax error written."""
    cfg = shipped_copy(root)
    text = cfg.read_text()
    if block is not None:
        text = text.replace("code: {root: src, tests: tests}",
                            f"code: {{root: src, tests: tests, block_boot_on_syntax_error: "
                            f"{str(block).lower()}}}")
        assert "block_boot_on_syntax_error" in text
    cfg.write_text(text)
    out = subprocess.run([sys.executable, "-m", "grace.app", "demo", "fault", "syntax-error", "-c",
                          str(cfg)], capture_output=True, check=False, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (root / "src" / BROKEN).is_file()
    return cfg


def kernel_names(root: Path) -> set[str]:
    return {k.name for k in config.load(root / "grace.yaml").kernels}


def kernels_of(root: Path) -> list[psutil.Process]:
    """The example's kernels started for this copy (other tests run other copies as `demo`)."""
    found = []
    for k in kernel_names(root):
        for p in demo.kernel_processes("demo", k):
            try:
                if Path(p.cwd()).resolve().is_relative_to(root.resolve()):
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return found


async def boot_phases(data_dir: Path) -> list[events.BootPhase]:
    """The boot_phase events of the (stopped) system's log, read through a fresh server."""
    server = EmbeddedServer(data_dir)
    url = server.start()
    try:
        b = await bus_mod.connect(url, host="demo", source="grace/demo/e2e-test")
        try:
            evs = await stored(b, topology.EVENTS, "grace.events.boot.boot_phase.>")
        finally:
            await b.close()
    finally:
        server.stop()
    return [e.data for e in evs if isinstance(e.data, events.BootPhase)]


def test_a_syntax_error_stops_boot_at_phase_3(tmp_path: Path) -> None:
    root = tmp_path / "system"
    cfg = broken_system(root)  # the shipped default: block
    proc = subprocess.Popen([sys.executable, "-m", "grace.app", "up", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # it booted: stop it, kernels included, then fail
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    terminal = out.stdout + out.stderr
    assert out.returncode == 1, terminal
    line = next((ln for ln in terminal.splitlines() if "phase 3/7" in ln), "")
    assert "FAILED" in line and f"src/{BROKEN}:1: " in line, terminal
    assert "code.block_boot_on_syntax_error" in line  # what to do, on the same line
    assert f"error: boot stopped before any kernel started: syntax error in src/{BROKEN}:1" \
        in out.stderr
    assert "phase 4/7" not in terminal and "phase 5/7" not in terminal
    assert kernels_of(root) == []
    phases = asyncio.run(boot_phases(root / ".grace"))
    assert [(p.phase, p.status) for p in phases] == [(1, "completed"), (2, "completed"),
                                                     (3, "started"), (3, "failed")]
    assert f"src/{BROKEN}:1: " in phases[-1].detail
    # the dashboard file tells it too (the projection runs from before phase 3)
    con = duckdb.connect(str(root / ".grace" / "dashboard.duckdb"), read_only=True)
    try:
        failed = con.execute("SELECT phase, detail FROM boot_phases WHERE status = 'failed'"
                             ).fetchall()
        stopped = con.execute("SELECT count(*) FROM events WHERE type = 'system_stopped'"
                              ).fetchone()
    finally:
        con.close()
    assert len(failed) == 1 and failed[0][0] == 3 and f"src/{BROKEN}:1: " in failed[0][1]
    assert stopped == (1,)


async def fix_tasks(url: str) -> list[events.FixTask]:
    b = await bus_mod.connect(url, host="demo", source="grace/demo/e2e-test")
    try:
        evs = await stored(b, topology.TASKS, topology.TASKS_ALL)
    finally:
        await b.close()
    return [e.data for e in evs if isinstance(e.data, events.FixTask)]


def _one_fix_task(url: str, within: float) -> list[events.FixTask]:
    """The syntax_error_detected fix tasks, waiting up to `within` seconds for the first."""
    until = time.monotonic() + within
    while True:
        tasks = [t for t in asyncio.run(fix_tasks(url)) if t.playbook == "syntax_error_detected"]
        if tasks or time.monotonic() > until:
            return tasks
        time.sleep(0.5)


def _names_the_file_and_line(tasks: list[events.FixTask], log: Path) -> None:
    assert len(tasks) == 1, log.read_text()
    assert tasks[0].files == [BROKEN] and tasks[0].line == 1
    assert tasks[0].summary.startswith(f"syntax error in {BROKEN}:1: ")
    assert tasks[0].evidence["line"] == 1


def test_with_the_gate_off_boot_goes_on_and_a_fix_task_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "system"
    cfg = broken_system(root, block=False)
    with booted(root, cfg) as running:
        text = running.log.read_text()
        assert re.search(rf"phase 3/7 .* ok .*src/{BROKEN}:1: .*booting anyway", text), text
        assert {p.environ()["GRACE_KERNEL"] for p in kernels_of(root)} == kernel_names(root)
        url = read_url(running.data_dir)
        assert url
        _names_the_file_and_line(_one_fix_task(url, 60), running.log)
    assert running.proc.returncode == 0, running.log.read_text()[-2000:]  # a clean stop
    assert kernels_of(root) == []


def test_a_syntax_error_written_while_running_becomes_a_fix_task(tmp_path: Path) -> None:
    """The shipped defaults (gate on, a clean tree): boot, then break a file."""
    root = tmp_path / "system"
    cfg = shipped_copy(root)
    with booted(root, cfg) as running:
        assert re.search(r"phase 3/7 pre-boot code diff +ok", running.log.read_text())
        url = read_url(running.data_dir)
        assert url
        assert _one_fix_task(url, 0) == []
        running.fault("syntax-error")
        # file triggers react to the change (watchfiles); the 30s cycle would find it too
        _names_the_file_and_line(_one_fix_task(url, 90), running.log)
    assert running.proc.returncode == 0, running.log.read_text()[-2000:]  # a clean stop
    assert kernels_of(root) == []
