"""resource_pressure: a real CPU-burning child process against a low threshold, sustained."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from grace import config, events, triggers_config
from producers.base import make_env
from producers.resource_pressure import ResourcePressure
from producers.state import StateStore
from tests.support import wait_for

BURN = "while True:\n    pass\n"


def _cfg(tmp_path: Path, kernels: list[config.Kernel], cpu: float, sustained: int) -> config.Config:
    cfg = config.load(None)
    th = triggers_config.with_values(cfg.thresholds, cpu_percent=cpu, sustained_samples=sustained)
    return msgspec.structs.replace(cfg, kernels=kernels, thresholds=th, config_dir=str(tmp_path))


async def test_cpu_burning_kernel_is_cpu_saturation_only_when_sustained(tmp_path: Path) -> None:
    burner = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        kernel = config.Kernel(name="burner", command=["x"])
        env = make_env(_cfg(tmp_path, [kernel], cpu=30.0, sustained=2), StateStore(tmp_path / "s"))
        env.shared.heartbeats.record(events.Heartbeat(name="burner", pid=burner.pid,
                                                      time=datetime.now(UTC)))
        trig = ResourcePressure(env)
        await trig.check()  # primes the per-process counter
        await asyncio.sleep(0.3)  # CPU percent is measured between two runs
        first = await trig.check()
        assert not [f for f in first.findings if f.kernel == "burner"]  # one high sample is not sustained

        async def saturated() -> list[events.Trigger]:
            await asyncio.sleep(0.3)
            return [f for f in (await trig.check()).findings if getattr(f, "kernel", None) == "burner"]

        [f] = await wait_for(saturated, timeout=10)
        assert isinstance(f, events.CpuSaturation) and f.scope == "kernel"
        assert f.percent >= 30.0 and f.samples >= 2 and f.threshold == 30.0
    finally:
        burner.kill()
        burner.wait()


async def test_idle_kernel_is_not_saturated(tmp_path: Path) -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        env = make_env(_cfg(tmp_path, [config.Kernel(name="idle", command=["x"])], cpu=30.0,
                            sustained=1), StateStore(tmp_path / "s"))
        env.shared.heartbeats.record(events.Heartbeat(name="idle", pid=idle.pid,
                                                      time=datetime.now(UTC)))
        trig = ResourcePressure(env)
        for _ in range(3):
            await asyncio.sleep(0.1)
            res = await trig.check()
            assert not [f for f in res.findings if getattr(f, "kernel", None) == "idle"]
        assert "cpu_percent.idle" in res.stats
    finally:
        idle.kill()
        idle.wait()


HOG = "data = b\"x\" * (120 * 1024 * 1024)\nimport time\ntime.sleep(30)\n"


async def test_kernel_over_its_memory_budget_is_memory_pressure(tmp_path: Path) -> None:
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    try:
        kernel = config.Kernel(name="hog", command=["x"], max_rss_mb=60.0)
        env = make_env(_cfg(tmp_path, [kernel], cpu=99.0, sustained=1), StateStore(tmp_path / "s"))
        env.shared.heartbeats.record(events.Heartbeat(name="hog", pid=hog.pid,
                                                      time=datetime.now(UTC)))
        trig = ResourcePressure(env)

        async def pressure() -> list[events.Trigger]:
            return [f for f in (await trig.check()).findings
                    if isinstance(f, events.MemoryPressure) and f.kernel == "hog"]

        [f] = await wait_for(pressure, timeout=10)
        assert isinstance(f, events.MemoryPressure) and f.scope == "kernel"
        assert f.rss_mb is not None and f.rss_mb > 60 and f.threshold == 100.0 and f.percent > 100.0
    finally:
        hog.kill()
        hog.wait()
