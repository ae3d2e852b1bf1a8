"""Monitor figure: process CPU time of one full cycle of the ten triggers (median).

The sample system has every trigger configured: a kernel heartbeating from a
child process (grace.heartbeat) with a health endpoint served by another child
process, a JetStream work queue with a backlog, an 8 MB model, configs, a
lock and OSV file, a log being written to, and a code tree. The children run
outside this process, so their CPU is not counted; the monitor's threads are.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import msgspec
import yaml
from nats.js import api

from bench import BenchContext, Benchmark
from grace import config, integrity, manifest
from grace.durations import parse_duration
from producers.monitor import TriggerMonitor
from producers.state import StateStore

CYCLES = 15
SERVER = textwrap.dedent("""
    import sys
    from aiohttp import web
    async def health(_):
        return web.json_response({"status": "ok", "uptime": 1, "checks": [{"name": "db", "ok": True}]})
    app = web.Application()
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
""")
KERNEL = "import time, grace.heartbeat\ngrace.heartbeat.start('api', interval=0.5)\ntime.sleep(3600)\n"


def _system(root: Path, port: int) -> config.Config:
    for d in ("models", "config", "src/pkg", "logs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "models" / "m.pkl").write_bytes(pickle.dumps(os.urandom(8 * 1024 * 1024)))
    (root / "config" / "app.yaml").write_text("threads: 4\n")
    for i in range(50):
        source = f"def f{i}(x: int) -> int:\n    return x + {i}\n" * 20
        (root / "src" / "pkg" / f"mod{i}.py").write_text(source)
    (root / "logs" / "app.log").write_text("INFO start\n")
    from producers.deps import installed

    have = installed([])
    (root / "requirements.lock").write_text("".join(f"{n}=={v}\n" for n, v in sorted(have.items())))
    (root / "advisories.json").write_text(
        '[{"id": "GHSA-x", "aliases": ["CVE-2000-1"], "affected": [{"package": {"name": "msgspec"},'
        ' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "0.0.1"}]}]}]}]')
    doc = {
        "host": "bench", "data_dir": "data",
        "monitor": {"interval": "30s", "timeout": "5s", "watch_files": False},
        "kernels": [{"name": "api", "command": ["x"], "heartbeat_timeout": "15s",
                     "health_url": f"http://127.0.0.1:{port}/health"},
                    {"name": "worker", "command": ["x"], "queue": {"stream": "JOBS", "consumer": "workers"}}],
        "protect": {"models": ["models/*.pkl"], "configs": ["config/*.yaml"]},
        "logs": ["logs/app.log"], "code": {"root": "src"},
        "dependencies": {"lock": "requirements.lock", "advisories": "advisories.json"},
    }
    (root / "grace.yaml").write_text(yaml.safe_dump(doc))
    cfg = config.load(root / "grace.yaml")
    m = manifest.Manifest()
    for rel, kind in (("models/m.pkl", "model"), ("config/app.yaml", "config")):
        p = root / rel
        m.files[rel] = manifest.Entry(path=rel, kind=kind, sha256=integrity.sha256_file(p),  # type: ignore[arg-type]
                                      size=p.stat().st_size, latest=rel)
    manifest.save(cfg, m)
    return cfg


async def monitor_cycle(ctx: BenchContext) -> dict[str, float]:
    from grace.embedded import free_port

    port = free_port()
    cfg = _system(ctx.dir / "sys", port)
    env = {**os.environ, "GRACE_NATS_URL": ctx.url, "GRACE_HOST": "bench"}
    children = [subprocess.Popen([sys.executable, "-c", SERVER, str(port)]),
                subprocess.Popen([sys.executable, "-c", KERNEL], env=env)]
    bus = await ctx.bus()
    try:
        await bus.js.add_stream(api.StreamConfig(name="JOBS", subjects=["jobs.>"]))
        await bus.js.add_consumer("JOBS", api.ConsumerConfig(durable_name="workers",
                                                             ack_policy=api.AckPolicy.EXPLICIT))
        for i in range(50):
            await bus.js.publish("jobs.a", b"%d" % i)
        mon = TriggerMonitor(cfg, bus, StateStore(cfg.data_path / "state"))
        await mon.env.shared.heartbeats.listen(bus.nc)
        deadline = time.monotonic() + 15
        while mon.env.shared.heartbeats.pid("api") is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await mon.run_cycle()  # warm-up: first hashes, compile of the whole tree, baselines
        cpu, wall = [], []
        log = cfg.path("logs/app.log")
        for i in range(CYCLES):
            with open(log, "a") as f:  # a live log: new lines every cycle
                f.write(f"INFO request {i} ok\nERROR upstream 502 after {i} ms\n" * 20)
            c0, w0 = time.process_time(), time.perf_counter()
            await mon.run_cycle()
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
        return {"monitor_cycle_cpu_ms": statistics.median(cpu),
                "monitor_cycle_wall_ms": statistics.median(wall)}
    finally:
        for c in children:
            c.kill()
            c.wait()
        await bus.close()


async def file_reaction(ctx: BenchContext) -> dict[str, float]:
    """Model overwritten with garbage -> model_corruption acked in the log (watch, not cycle)."""
    from grace import topology
    from producers.registry import TRIGGERS

    root = ctx.dir / "sys"
    cfg = _system(root, 9)
    cfg = msgspec.structs.replace(cfg, monitor=config.Monitor(
        interval=parse_duration("1h"), timeout=parse_duration("5s")))
    bus = await ctx.bus()
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def on(msg: Any) -> None:
        seen.put_nowait(msg.subject)

    await bus.nc.subscribe(topology.event_subject("trigger", "*", "bench"), cb=on)
    only = {n: TRIGGERS[n] for n in ("model_integrity", "config_drift")}
    mon = TriggerMonitor(cfg, bus, StateStore(cfg.data_path / "state"), triggers=only)
    stop = asyncio.Event()
    task = asyncio.create_task(mon.run(stop))
    model = root / "models" / "m.pkl"
    good = model.read_bytes()
    samples = []
    try:
        while mon.file_batches == 0:  # wait until the watcher is live
            (root / "models" / "probe.txt").write_text("x")
            await asyncio.sleep(0.05)
        for _ in range(5):
            t0 = time.perf_counter()
            model.write_bytes(os.urandom(4096))
            while not (await asyncio.wait_for(seen.get(), 10)).startswith(
                    "grace.events.trigger.model_corruption"):
                pass
            samples.append((time.perf_counter() - t0) * 1000)
            model.write_bytes(good)
            while not (await asyncio.wait_for(seen.get(), 10)).startswith(
                    "grace.events.trigger.condition_cleared"):
                pass
    finally:
        stop.set()
        await task
        await bus.close()
    return {"monitor_file_reaction_ms": statistics.median(samples)}


BENCHMARKS = [
    Benchmark("monitor", ("monitor_cycle_cpu_ms", "monitor_cycle_wall_ms"), monitor_cycle),
    Benchmark("monitor_reaction", ("monitor_file_reaction_ms",), file_reaction),
]
