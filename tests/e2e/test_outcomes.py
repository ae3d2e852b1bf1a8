"""`grace up` on the example at its SHIPPED settings (30 s cycles, shipped thresholds): an
escalation with nothing to check is reported `unverified`, never `passed`.

Only the ports differ from examples/grace.yaml, so this module can run beside others.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from grace import bus as bus_mod
from grace import demo, events
from grace.embedded import free_port, read_url
from tests.e2e.conftest import BOOT_TIMEOUT_S, Running, eventually, expect, succeeded, watch_from_now

pytestmark = pytest.mark.slow
INTERVAL_S = 30  # the shipped monitor.interval: detection takes up to one cycle


@pytest.fixture(scope="module")
def shipped_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("e2e-outcomes") / "system"
    demo.init_copy(root)
    cfg = root / "grace.yaml"
    text = cfg.read_text()
    assert "interval: 30s" in text and "thresholds" not in text  # the shipped settings
    http = f"127.0.0.1:{free_port()}"
    text = text.replace("18080", str(free_port()))
    cfg.write_text(re.sub(r'listen: "127.0.0.1:\d+"', f'listen: "{http}"', text))
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-C", str(root),
                    "commit", "-q", "-am", "test ports"], check=True)
    log = root / "up.log"
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "grace.cli", "up", "-c", str(cfg)], stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    running = Running(root, cfg, proc, f"http://{http}", log)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while "phase 7/7" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"grace up did not boot:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    yield running
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out.close()


@pytest_asyncio.fixture(loop_scope="session")
async def shipped_bus(shipped_up: Running) -> AsyncIterator[bus_mod.Bus]:
    url = read_url(shipped_up.data_dir)
    assert url, "grace up wrote no nats.url"
    b = await bus_mod.connect(url, host="demo", source="grace/demo/e2e-outcomes")
    yield b
    await b.close()


async def test_an_error_storm_naming_no_code_is_escalated_and_reported_unverified(
        shipped_up: Running, shipped_bus: bus_mod.Bus) -> None:
    w = await watch_from_now(shipped_bus)
    try:
        shipped_up.fault("error-storm")  # 30 payment timeouts: no code file named anywhere
        found = await expect(w, events.RepeatedErrorPattern, lambda d: "payment" in d.template,
                             timeout=2 * INTERVAL_S + 15)
        done = await expect(w, events.CommandSucceeded, succeeded("escalate_to_coding_agent"),
                            timeout=30)
        task_id = done.details["task_id"]
        report = await expect(w, events.FixReport, lambda d: d.task_id == task_id, timeout=60)
    finally:
        await w.close()
    assert found.files == [] and done.details["files"] == []
    assert report.outcome == "unverified" and report.checks == []
    assert not any(isinstance(e.data, events.FixReport) and e.data.task_id == task_id
                   and e.data.outcome == "passed" for e in w.seen)

    def dashboard_counts_it() -> bool:
        d = shipped_up.dashboard()
        if "fix_tasks" not in d:  # the fix_tasks block is added by the dashboard work of issue 12
            return True
        return bool(d["fix_tasks"].get("unverified", 0) >= 1)

    await eventually(dashboard_counts_it, timeout=30)
