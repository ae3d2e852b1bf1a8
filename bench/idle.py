"""Idle cost: `grace up` on the example system, CPU of Grace's own processes over a minute.

Counted: `grace up`, its four stages and the embedded nats-server. Not counted:
the example's kernels (they are the services Grace keeps healthy, not Grace).
GRACE_BENCH_IDLE_S shortens the measuring window.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import psutil

from bench import BenchContext, BenchError, Benchmark
from grace.app import demo
from grace.embedded import free_port

WINDOW_S = float(os.environ.get("GRACE_BENCH_IDLE_S", "60"))


def grace_processes(root: psutil.Process) -> list[psutil.Process]:
    """`grace up`, its stages and nats-server: its descendants that are not kernels."""
    out = [root]
    for child in root.children(recursive=True):
        try:
            if "GRACE_KERNEL" in child.environ():
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out.append(child)
    return out


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


async def run(ctx: BenchContext) -> dict[str, float]:
    ctx.server.stop()  # `grace up` starts its own embedded server
    root = ctx.dir / "system"
    demo.init_copy(root)
    cfg = root / "grace.yaml"
    cfg.write_text(cfg.read_text().replace("18080", str(free_port())).replace(
        "127.0.0.1:8181", f"127.0.0.1:{free_port()}"))
    with open(ctx.dir / "up.log", "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", "grace.app", "up", "-c", str(cfg)], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while b"phase 7/7" not in (ctx.dir / "up.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"grace up did not boot; see {ctx.dir / 'up.log'}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(10)  # let the warm-up's first publishes settle
        procs = grace_processes(psutil.Process(proc.pid))
        c0, t0 = cpu_seconds(procs), time.monotonic()
        await asyncio.sleep(WINDOW_S)
        c1, t1 = cpu_seconds(procs), time.monotonic()
        return {"idle_cpu_percent": 100.0 * (c1 - c0) / (t1 - t0), "idle_processes": float(len(procs))}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


BENCHMARKS = [Benchmark("idle", ("idle_cpu_percent",), run)]
