"""End to end: event published -> command executed -> result in the log, at 1,000 events/s.

`grace process` and `grace act` run as real child processes. The load is 1,000
trigger events a second, 2% of them matching a playbook whose action (clearing
an empty cache dir) is real but cheap; latency is measured for each matching
event from its publish to its result event arriving from the log.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import BenchContext, BenchError, Benchmark
from grace import events, topology
from grace.bus import Bus
from grace.consume import Delivery, PullConsumer

RATE = 1000  # events/s
SECONDS = 8
MATCH_EVERY = 50  # 2% of the events match
HOST = "bench"
PLAYBOOK = Path(__file__).with_name("playbooks") / "e2e.yaml"


def write_config(root: Path) -> Path:
    (root / "cache").mkdir(parents=True, exist_ok=True)
    cfg = root / "grace.yaml"
    # 160 commands in 8 s measure latency; the host's command rail (30 a minute) is not measured
    cfg.write_text(f"host: {HOST}\ndata_dir: data\ncaches: [cache]\nplaybooks: [{PLAYBOOK}]\n"
                   "safety: {max_commands: {count: 100000, per: 60s}}\n")
    return cfg


def start_stage(stage: str, cfg: Path, url: str, root: Path) -> subprocess.Popen[bytes]:
    with open(root / f"{stage}.log", "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "grace.app", stage, "-c", str(cfg), "--nats", url],
                                stdout=log, stderr=subprocess.STDOUT)


async def wait_for_heartbeats(b: Bus, names: set[str], timeout: float = 60.0) -> None:
    seen: set[str] = set()
    done = asyncio.Event()

    def on_beat(subject: bytes, _r: bytes, _d: bytes, _h: bytes | None) -> None:
        seen.add(subject.decode().rsplit(".", 1)[-1])
        if names <= seen:
            done.set()

    sub = await b.subscribe_raw(topology.heartbeat_filter(HOST), on_beat)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        await sub.unsubscribe()


def backlog(i: int, matching: bool) -> events.QueueBacklog:
    return events.QueueBacklog(kernel="worker", stream="JOBS", consumer=f"c{i}", pending=0,
                               ack_pending=0, backlog=500 if matching else i % 90, threshold=100)


async def run(ctx: BenchContext) -> dict[str, float]:
    cfg = write_config(ctx.dir)
    b = await ctx.bus(host=HOST)
    procs = [start_stage(s, cfg, ctx.url, ctx.dir) for s in ("process", "act")]
    try:
        await wait_for_heartbeats(b, {"process", "act"})
        published: dict[str, float] = {}
        cause_of: dict[str, str] = {}
        latencies: list[float] = []
        seen_types: dict[str, int] = {}
        done_at: dict[str, float] = {}

        async def on_log(items: list[Delivery[events.Event]]) -> None:
            now = time.perf_counter()
            for d in items:
                data = d.item.data
                seen_types[data.TYPE] = seen_types.get(data.TYPE, 0) + 1
                if isinstance(data, events.CommandIssued):
                    cause_of[data.command_id] = data.cause_ids[0]
                    if data.command_id in done_at:
                        record(data.command_id, done_at.pop(data.command_id))
                elif isinstance(data, events.CommandSucceeded):
                    if data.command_id in cause_of:
                        record(data.command_id, now)
                    else:  # the result can be stored before the decision that caused it
                        done_at[data.command_id] = now

        def record(command_id: str, at: float) -> None:
            t0 = published.get(cause_of[command_id])
            if t0 is not None:
                latencies.append((at - t0) * 1000)

        async def ensure(seq: int) -> str:
            return await topology.ensure_consumer(b.js, topology.EVENTS, topology.reader_consumer_config(
                seq, topology.event_filter("*", "*", HOST)))

        start_seq = (await b.js.stream_info(topology.EVENTS)).state.last_seq + 1
        reader: PullConsumer[events.Event] = PullConsumer(b, topology.EVENTS, ensure, on_log,
                                                          stage="bench-e2e", ack="none", batch=200,
                                                          start_seq=start_seq)
        task = asyncio.create_task(reader.run())
        total = RATE * SECONDS
        tick = 0.01
        per_tick = int(RATE * tick)
        start = time.perf_counter()
        for n in range(0, total, per_tick):
            batch = []
            for i in range(n, n + per_tick):
                ev = b.event(backlog(i, i % MATCH_EVERY == 0))
                batch.append(ev)
            sent = time.perf_counter()
            for ev in batch:
                if ev.data.backlog > 100:  # type: ignore[attr-defined]
                    published[ev.id] = sent
            await b.publish_many(batch)
            lag = start + (n + per_tick) / RATE - time.perf_counter()
            if lag > 0:
                await asyncio.sleep(lag)
        expected = total // MATCH_EVERY
        deadline = time.perf_counter() + 30
        while len(latencies) < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        reader.stop()
        await task
        if len(latencies) < expected:
            raise BenchError(f"only {len(latencies)} of {expected} commands produced a result "
                               f"(seen in the log: {seen_types})")
        latencies.sort()
        return {"e2e_p50_ms": statistics.median(latencies),
                "e2e_p99_ms": latencies[int(len(latencies) * 0.99) - 1],
                "e2e_rate_per_s": total / (time.perf_counter() - start)}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        await b.close()


BENCHMARKS = [Benchmark("e2e", ("e2e_p50_ms", "e2e_p99_ms"), run)]
