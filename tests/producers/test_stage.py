"""`grace produce` as a real process: starts the monitor, heartbeats, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from grace.bus import Bus
from tests.producers.logread import log_events, of_type
from tests.producers.sample import write_system
from tests.support import wait_for


async def test_produce_runs_the_monitor_until_sigterm(bus: Bus, nats_url: str, tmp_path: Path) -> None:
    cfg = write_system(tmp_path, {"host": "stage-" + uuid.uuid4().hex[:8],
                                  "monitor": {"interval": "0.5s", "timeout": "3s"}})
    beats: list[str] = []

    async def on(msg: object) -> None:
        beats.append(msg.subject)  # type: ignore[attr-defined]

    sub = await bus.nc.subscribe(f"grace.heartbeat.{cfg.host}.*", cb=on)
    exe = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"
    proc = subprocess.Popen([exe, "produce", "-c", str(tmp_path / "grace.yaml"), "--nats", nats_url],
                            env={**os.environ}, stderr=subprocess.PIPE, text=True)
    try:
        async def cycled() -> bool:
            evs = await log_events(bus, cfg.host)
            return bool(of_type(evs, "monitor_started")) and len(of_type(evs, "check_completed")) >= 20

        await wait_for(cycled, timeout=30, interval=0.1)
        await wait_for(lambda: {f"grace.heartbeat.{cfg.host}.monitor",
                                f"grace.heartbeat.{cfg.host}.produce"} <= set(beats), timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await sub.unsubscribe()
    evs = await log_events(bus, cfg.host)
    assert of_type(evs, "monitor_stopped") and of_type(evs, "watchdog_stopped")
    assert (tmp_path / "data" / "state" / "monitor.json").is_file()
