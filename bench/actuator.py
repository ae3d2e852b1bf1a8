"""Actuator figure: restore_model_weights command published -> command_succeeded in the log."""

from __future__ import annotations

import asyncio
import pickle
import statistics
import time

import yaml

from bench import BenchContext, BenchError, Benchmark
from grace import config as config_mod
from grace import events, topology
from grace.cliutil import Context
from grace.consume import Delivery, PullConsumer

N = 60
HOST = "bench-act"


async def command_latency(ctx: BenchContext) -> dict[str, float]:
    from actuators import snapshots
    from actuators.stage import run_stage

    root = ctx.dir / "system"
    (root / "models").mkdir(parents=True)
    model = root / "models" / "m.pkl"
    model.write_bytes(pickle.dumps({"weights": list(range(10_000))}))
    (root / "grace.yaml").write_text(yaml.safe_dump({
        "host": HOST, "data_dir": str(root / ".grace"), "protect": {"models": ["models/*.pkl"]}}))
    cfg = config_mod.load(root / "grace.yaml")
    snapshots.take(cfg)
    stop = asyncio.Event()
    stage = asyncio.create_task(run_stage(Context(cfg, ctx.url), stop))
    b = await ctx.bus(host=HOST)
    seen: dict[str, float] = {}

    async def on_results(items: list[Delivery[events.Event]]) -> None:
        for d in items:
            if isinstance(d.item.data, events.CommandSucceeded):
                seen[d.item.data.command_id] = time.perf_counter()

    async def ensure(_seq: int) -> str:
        return await topology.ensure_consumer(b.js, topology.EVENTS, topology.reader_consumer_config(
            None, topology.event_filter("result", "command_succeeded", HOST)))

    reader: PullConsumer[events.Event] = PullConsumer(b, topology.EVENTS, ensure, on_results,
                                                      stage="bench", ack="none", batch=100)
    reading = asyncio.create_task(reader.run())
    try:
        # warm up: the stage connects, creates its consumer and answers one command
        await asyncio.sleep(0.5)
        samples: list[float] = []
        for i in range(N + 3):
            model.write_bytes(b"\x80\x04corrupt" + bytes([i % 256]))
            cmd = b.event(events.RestoreModelWeights(path="models/m.pkl"), host=HOST)
            t0 = time.perf_counter()
            await b.publish(cmd)
            while cmd.id not in seen:
                await asyncio.sleep(0.0005)
                if time.perf_counter() - t0 > 30:
                    raise BenchError("no command_succeeded within 30s")
            if i >= 3:
                samples.append((seen[cmd.id] - t0) * 1000.0)
        samples.sort()
        return {"command_latency_ms": statistics.median(samples),
                "command_latency_p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))]}
    finally:
        reader.stop()
        await reading
        stop.set()
        await stage
        await b.close()


BENCHMARKS = [Benchmark("actuator", ("command_latency_ms", "command_latency_p99_ms"), command_latency)]
