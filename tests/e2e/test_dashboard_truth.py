"""The dashboard file tells the truth after Grace is gone (issue 12), at the SHIPPED defaults
(monitor.interval 30 s, so the staleness limit is 3 x 30 s = 90 s): after SIGKILL of every
process of a run it says `stale: true` / `system_state: unknown` once the limit has passed
(read at an explicit `--at` time AND after really waiting), not before; a restarted Grace is
fresh again; after a clean stop it says `stopped`, never stale.

Only ports and the host name differ from the example (so this run cannot collide with another
Grace on the machine, nor another test's kernels with ours)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import shipped_copy

pytestmark = pytest.mark.slow

HOST = "dash-e2e"
INTERVAL_S = 30  # examples/grace.yaml monitor.interval, unchanged
LIMIT_S = 3 * INTERVAL_S
BOOT_TIMEOUT_S = 180


def make_system(root: Path) -> Path:
    """The shipped example (shipped_copy) with a host of its own: its processes are told apart."""
    cfg = shipped_copy(root, HOST)
    assert f"interval: {INTERVAL_S}s" in cfg.read_text()
    return cfg


def start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", "grace.app", "up", "-c", str(cfg)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    boots = log.read_text(errors="replace").count("phase 7/7")
    while log.read_text(errors="replace").count("phase 7/7") <= boots:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"grace up did not boot:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    return proc


def read(cfg: Path, at: datetime | None = None) -> dict[str, Any]:
    """`grace dashboard --json --file <data_dir>/dashboard.duckdb`, as an operator runs it."""
    argv = [sys.executable, "-m", "grace.app", "dashboard", "--json", "-c", str(cfg),
            "--file", str(cfg.parent / ".grace" / "dashboard.duckdb")]
    if at is not None:
        argv += ["--at", at.strftime("%Y-%m-%dT%H:%M:%SZ")]
    out = subprocess.run(argv, capture_output=True, check=False, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def wait_for(pred: Any, cfg: Path, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        if (cfg.parent / ".grace" / "dashboard.duckdb").exists():
            body = read(cfg)
            if pred(body):
                return body
        assert time.monotonic() < deadline, "the dashboard file never showed what was expected"
        time.sleep(1)


def parse(t: str) -> datetime:
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")  # noqa: DTZ007 - naive UTC, the dashboard's convention


def utcnow() -> datetime:
    return datetime.utcnow()  # noqa: DTZ003 - naive UTC, the dashboard's convention


def run_processes(proc: subprocess.Popen[bytes], root: Path) -> list[psutil.Process]:
    """Every process of this run: grace up and its process tree (stages, nats-server, kernels),
    plus any process started in `root` or with a path under it on its command line (in case
    one was re-parented)."""
    found: dict[int, psutil.Process] = {}
    try:
        up = psutil.Process(proc.pid)
        found[up.pid] = up
        found.update((p.pid, p) for p in up.children(recursive=True))
    except psutil.Error:
        pass
    for p in psutil.process_iter(["pid"]):
        try:
            if str(root) in p.cwd() or any(str(root) in a for a in p.cmdline()):
                found[p.pid] = p
        except (psutil.Error, OSError):
            continue
    return [p for p in found.values() if p.pid != psutil.Process().pid]


def test_a_crashed_grace_leaves_a_file_that_says_stale_once_the_limit_passed(
        tmp_path: Path) -> None:
    root = tmp_path / "system"
    cfg = make_system(root)
    log = root / "up.log"
    proc = start(cfg, log)
    try:
        # running: checks done and the boot complete (phases 3 and 4 run as stage processes)
        live = wait_for(lambda b: b["triggers"]["total_checks"] > 0 and b["as_of"]
                        and b["system_state"] != "booting", cfg)
        assert live["stale"] is False and live["system_state"] in ("running", "degraded")
        assert live["stale_after_s"] == LIMIT_S  # from monitor_started in the log: 3 x 30 s

        victims = run_processes(proc, root)
        names = {p.name() for p in victims}
        assert "nats-server" in names and len(victims) >= 8, names  # up, 4 stages, nats, kernels
        for p in victims:  # SIGKILL: nothing gets to say goodbye
            p.kill()
        _gone, alive = psutil.wait_procs(victims, timeout=10)
        assert not alive, alive
        proc.wait(5)
        killed_at = utcnow()

        after = read(cfg)  # right after the crash: the limit has not passed, not stale yet
        as_of = parse(after["as_of"])
        assert killed_at - as_of < timedelta(seconds=LIMIT_S)
        assert after["stale"] is False and after["system_state"] in ("running", "degraded")
        assert after["health"] != "unknown"

        # as an auditor would: read the same file at the limit, and just after it
        at_limit = read(cfg, at=as_of + timedelta(seconds=LIMIT_S))
        assert at_limit["stale"] is False
        past = read(cfg, at=as_of + timedelta(seconds=LIMIT_S + 2))
        assert past["stale"] is True and past["system_state"] == "unknown"
        assert past["health"] == "unknown" and past["as_of"] == after["as_of"]

        # and for real: wait until the limit has passed on the wall clock
        time.sleep(max(0.0, (as_of + timedelta(seconds=LIMIT_S + 3) - utcnow()).total_seconds()))
        later = read(cfg)
        assert later["stale"] is True and later["system_state"] == "unknown"

        # Grace again on the same data: the new run's file is fresh and says so
        proc = start(cfg, log)
        # (the file may show the new run while it still boots: wait for its phase 7)
        fresh = wait_for(lambda b: b["as_of"] and parse(b["as_of"]) > killed_at
                         and b["boot_phase"] == "complete", cfg)
        assert fresh["stale"] is False and fresh["system_state"] in ("running", "degraded")
        assert fresh["boot_phase"] == "complete"
        # and it stays fresh while Grace runs: past the limit, the monitor's checks every 30 s
        # keep moving the log and the file
        time.sleep(LIMIT_S + 10)
        steady = read(cfg)
        assert steady["stale"] is False and steady["system_state"] in ("running", "degraded")
        assert utcnow() - parse(steady["as_of"]) < timedelta(seconds=2 * INTERVAL_S)
        assert steady["triggers"]["total_checks"] > fresh["triggers"]["total_checks"]

        # a clean stop: stopped, and still not stale a day later
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0, log.read_text(errors="replace")[-2000:]
        stopped = read(cfg)
        assert stopped["system_state"] == "stopped" and stopped["stale"] is False
        day = read(cfg, at=parse(stopped["as_of"]) + timedelta(days=1))
        assert day["system_state"] == "stopped" and day["stale"] is False
    finally:
        for p in run_processes(proc, root):
            with contextlib.suppress(psutil.Error):
                p.kill()
