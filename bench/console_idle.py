"""Console idle cost: idle `grace up` CPU with the console on minus with it off.

Two `grace up` runs of the example, one with `http.listen` set (the console serving, and one
open page on its Incidents tab: an SSE stream whose every `applied` event re-reads what that
page reads, the overview and the incidents), one with `http.listen: ""` (no HTTP at all).
Grace's own processes are measured over the same idle window as bench/idle.py; the figure is
the difference in percentage points of one core. The page's reader runs in this process and is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from bench import BenchContext, BenchError, Benchmark
from bench.idle import WINDOW_S, cpu_seconds, grace_processes
from grace.app import demo
from grace.embedded import free_port

READS = ("/api/overview", "/api/incidents")  # the page on its Incidents tab (app.js refresh)


async def _page(base: str, stop: asyncio.Event) -> None:
    """What an open console page does: follow /api/stream, re-read on every `applied`."""
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/stream") as stream:
        async for line in stream.content:
            if stop.is_set():
                return
            if line.startswith(b"event: applied"):
                for path in READS:
                    async with http.get(base + path) as r:
                        await r.read()


def _booted(log_path: Path) -> bool:
    return b"phase 7/7" in log_path.read_bytes()


async def _idle_cpu(root: Path, listen: str, log_path: Path) -> float:
    """Percent of one core Grace's processes use over the idle window."""
    cfg = root / "grace.yaml"
    cfg.write_text(cfg.read_text().replace('listen: "127.0.0.1:8181"', f'listen: "{listen}"'))
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", "grace.app", "up", "-c", str(cfg)],
                                stdout=log, stderr=subprocess.STDOUT)
    stop = asyncio.Event()
    page: asyncio.Task[None] | None = None
    try:
        deadline = time.monotonic() + 120
        while not _booted(log_path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"grace up did not boot; see {log_path}")
            await asyncio.sleep(0.2)
        if listen:
            page = asyncio.create_task(_page(f"http://{listen}", stop))
        await asyncio.sleep(10)  # let the warm-up's first publishes settle
        procs = grace_processes(psutil.Process(proc.pid))
        c0, t0 = cpu_seconds(procs), time.monotonic()
        await asyncio.sleep(WINDOW_S)
        c1, t1 = cpu_seconds(procs), time.monotonic()
        if page is not None and page.done():
            raise BenchError(f"the console page stopped reading: {page.exception()!r}")
        return 100.0 * (c1 - c0) / (t1 - t0)
    finally:
        stop.set()
        if page is not None:
            page.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await page
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def run(ctx: BenchContext) -> dict[str, float]:
    ctx.server.stop()  # `grace up` starts its own embedded server
    figures: dict[str, float] = {}
    for name, listen in (("off", ""), ("on", f"127.0.0.1:{free_port()}")):
        root = ctx.dir / name
        demo.init_copy(root)
        cfg = root / "grace.yaml"
        ports = {"18080": str(free_port()), "18090": str(free_port())}
        text = cfg.read_text()
        for old, new in ports.items():
            text = text.replace(old, new)
        cfg.write_text(text)
        figures[name] = await _idle_cpu(root, listen, ctx.dir / f"up-{name}.log")
    return {"console_idle_cpu_pp": figures["on"] - figures["off"],
            "console_idle_cpu_on_percent": figures["on"],
            "console_idle_cpu_off_percent": figures["off"]}


BENCHMARKS = [Benchmark("console-idle", ("console_idle_cpu_pp", "console_idle_cpu_on_percent",
                                          "console_idle_cpu_off_percent"), run)]
