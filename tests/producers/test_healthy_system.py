"""No trigger fires on a healthy system (each trigger run several times against real inputs)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from grace import events
from producers.base import Env, make_env
from producers.deps import installed
from producers.registry import TRIGGERS
from producers.state import StateStore
from tests.producers.sample import write_system
from tests.producers.web import HealthServer

RUNS = 4


@pytest_asyncio.fixture(loop_scope="session")
async def healthy(tmp_path: Path) -> AsyncIterator[Env]:
    server = await HealthServer().start()
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    have = installed([])
    lock = "".join(f"{n}=={have[n]}\n" for n in ("msgspec", "psutil", "click"))
    (tmp_path / "requirements.lock").write_text(lock)
    (tmp_path / "advisories.json").write_text(
        '[{"id": "OLD-1", "affected": [{"package": {"name": "msgspec"}, "ranges": [{"type": "ECOSYSTEM",'
        ' "events": [{"introduced": "0"}, {"fixed": "0.1.0"}]}]}]}]')
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").write_text("INFO started\nINFO request ok 200\n")
    cfg = write_system(tmp_path, {
        "kernels": [{"name": "api", "command": ["x"], "heartbeat_timeout": "30s",
                     "health_url": server.url, "latency_p95_ms": 2000}],
        "logs": ["logs/app.log"],
        "dependencies": {"lock": "requirements.lock", "advisories": "advisories.json"},
        "thresholds": {"cpu_percent": 50.0, "sustained_samples": 2},
    })
    env = make_env(cfg, StateStore(tmp_path / "state"))
    env.shared.heartbeats.listening = True
    env.shared.heartbeats.record(events.Heartbeat(name="api", pid=idle.pid, time=datetime.now(UTC)))
    rng = random.Random(3)  # steady latency samples, as the probes of a healthy service give
    for i in range(300):
        env.shared.add_latency("api", float(i), rng.gauss(5.0, 0.5))
    try:
        yield env
    finally:
        idle.kill()
        idle.wait()
        await server.stop()


@pytest.mark.parametrize("name", list(TRIGGERS))
async def test_trigger_does_not_fire_on_a_healthy_system(name: str, healthy: Env) -> None:
    now = [float(os.times().elapsed)]
    env = make_env(healthy.cfg, healthy.state, clock=lambda: now[0])
    env.shared = healthy.shared
    trig = TRIGGERS[name](env)
    for _ in range(RUNS):
        now[0] += 30.0
        env.shared.heartbeats.record(events.Heartbeat(name="api", pid=env.shared.heartbeats.pid("api") or 0,
                                                      time=datetime.now(UTC)))
        res = await trig.check()
        assert not res.errors, res.errors
        findings = res.findings
        if name == "resource_pressure":
            # other jobs share this machine: only the kernel's own (idle) usage is ours to judge
            findings = [f for f in findings if getattr(f, "scope", "") == "kernel"]
        assert findings == [], findings
