"""Bus figures: acked publish, the fast consume path, decode."""

from __future__ import annotations

import asyncio
import time

from bench import BenchContext, Benchmark
from grace import events, topology
from grace.bus import Bus, chunks
from grace.consume import Delivery, PullConsumer

N = 50_000


def sample_events(b: Bus, n: int) -> list[events.Event]:
    """Trigger events of the kinds the shipped playbooks listen to."""
    out = []
    for i in range(n):
        if i % 2:
            data: events.Payload = events.CpuSaturation(scope="system", percent=40.0 + i % 50, threshold=90.0,
                                                        samples=3, trigger="resource_pressure")
        else:
            data = events.QueueBacklog(kernel="worker", stream="JOBS", consumer="workers",
                                       pending=i % 90, ack_pending=0, backlog=i % 90, threshold=100,
                                       trigger="latency_queue")
        out.append(b.event(data))
    return out


async def publish_and_consume(ctx: BenchContext) -> dict[str, float]:
    b = await ctx.bus()
    try:
        evs = sample_events(b, N)
        t0 = time.perf_counter()
        for part in chunks(evs, 5000):
            await b.publish_many(part)
        publish_s = time.perf_counter() - t0

        got = 0
        done = asyncio.Event()

        async def handle(items: list[Delivery[events.Event]]) -> None:
            nonlocal got
            got += len(items)
            if got >= N:
                done.set()

        async def ensure(_seq: int) -> str:
            return await topology.ensure_consumer(b.js, topology.EVENTS,
                                                  topology.processor_consumer_config("bench"))

        consumer: PullConsumer[events.Event] = PullConsumer(b, topology.EVENTS, ensure, handle,
                                                            stage="bench")
        t0 = time.perf_counter()
        task = asyncio.create_task(consumer.run())
        await asyncio.wait_for(done.wait(), 120)
        consume_s = time.perf_counter() - t0
        consumer.stop()
        await task
        return {"publish_acked_per_s": N / publish_s, "consume_per_s": N / consume_s}
    finally:
        await b.close()


async def decode(ctx: BenchContext) -> dict[str, float]:
    raws = []
    for i in range(N):
        data = events.CpuSaturation(scope="system", percent=float(i % 100), threshold=90.0, samples=3)
        raws.append(events.encode(events.make_event(data, host="bench", source="grace/bench/bench")))
    t0 = time.perf_counter()
    for raw in raws:
        events.decode(raw)
    return {"decode_per_s": N / (time.perf_counter() - t0)}


BENCHMARKS = [
    Benchmark("bus", ("publish_acked_per_s", "consume_per_s"), publish_and_consume),
    Benchmark("decode", ("decode_per_s",), decode),
]
