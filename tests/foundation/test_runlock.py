"""The data-dir lock and the parent-death signal, on real processes: a lock names its holder,
stays held while any process that inherited it lives, and a child dies with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grace import parentdeath, runlock

BOUND_S = 10.0  # a wait bound, not a speed assertion


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + BOUND_S
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _gone(pid)


def test_a_second_run_is_refused_naming_the_pid_that_holds_the_lock(tmp_path: Path) -> None:
    lock = runlock.run_lock(tmp_path).acquire()
    try:
        with pytest.raises(runlock.DataDirInUse) as refused:
            runlock.run_lock(tmp_path).acquire()
        assert refused.value.exit_code == 2
        assert f"pid {os.getpid()} (grace up)" in str(refused.value)
    finally:
        lock.release()
    runlock.run_lock(tmp_path).acquire().release()  # free again


def test_the_lock_stays_held_while_a_process_that_inherited_it_lives(tmp_path: Path) -> None:
    lock = runlock.run_lock(tmp_path).acquire()
    fd = lock.inheritable()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=(fd,))
    try:
        lock.release()  # the taker is gone; its child still holds the open file
        with pytest.raises(runlock.DataDirInUse) as refused:
            runlock.run_lock(tmp_path).acquire()
        assert str(child.pid) in str(refused.value)
    finally:
        child.kill()
        child.wait()
    runlock.run_lock(tmp_path).acquire().release()


def test_a_child_started_with_preexec_dies_with_its_parent(tmp_path: Path) -> None:
    """A parent (SIGKILLed) starts a grandchild with parentdeath.preexec: the grandchild ends."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import signal, subprocess, sys, time\n"
        "from grace import parentdeath\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                     preexec_fn=parentdeath.preexec(signal.SIGTERM))\n"
        f"open({str(pid_file)!r}, 'w').write(str(c.pid))\n"
        "time.sleep(60)\n")])
    deadline = time.monotonic() + BOUND_S
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert not _gone(child)
    parent.kill()
    parent.wait()
    assert _wait_gone(child), f"pid {child} outlived its parent"


def test_the_parent_watch_stops_a_process_whose_parent_is_gone(tmp_path: Path) -> None:
    """No prctl (as on a platform without it): the watch sees the new parent pid and stops it."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import asyncio, os, sys\n"
        "from grace import parentdeath\n"
        "async def main():\n"
        "    stop = asyncio.Event()\n"
        "    parentdeath.watch_parent(int(sys.argv[1]), stop.set, asyncio.get_running_loop())\n"
        "    await stop.wait()\n"
        "asyncio.run(main())\n")
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, os, time\n"
        f"c = subprocess.Popen([sys.executable, '-c', {code!r}, str(os.getpid())])\n"
        f"open({str(pid_file)!r}, 'w').write(str(c.pid))\n"
        "time.sleep(60)\n")])
    deadline = time.monotonic() + BOUND_S
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    time.sleep(parentdeath.WATCH_INTERVAL_S)  # the watch is running
    assert not _gone(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait_gone(child), f"pid {child} outlived its parent"
