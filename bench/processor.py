"""Processor figures: events read from the log by the real consume loop, matched against
the shipped playbooks (one process), and its peak RSS.

The stream is the hard case: trigger events of the types the playbooks listen to,
with conditions mostly false (1% match and act).
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from bench import BenchContext, Benchmark
from grace import events
from grace.bus import Bus
from processors import stage, validate
from processors.service import Processor

N = 100_000
CHUNK = 5_000


def _payload(i: int) -> events.Payload:
    k = i % 8
    kernel = f"k{i % 13}"
    if i % 100 == 99:
        return events.KernelHeartbeatGap(kernel=kernel, timeout_s=15.0, trigger="health_signal")
    if k == 0:
        return events.CpuSaturation(scope="system", percent=40.0 + i % 50, threshold=90.0, samples=3)
    if k == 1:
        return events.MemoryPressure(scope="kernel", kernel=kernel, percent=50.0 + i % 30,
                                     threshold=90.0, samples=3)
    if k == 2:
        return events.QueueBacklog(kernel=kernel, stream="JOBS", consumer="w", pending=0,
                                   ack_pending=0, backlog=0, threshold=100)
    if k == 3:
        return events.ModelCorruption(path=f"models/m{i % 7}.json", expected_sha256="a",
                                      actual_sha256="b", reason="hash mismatch")
    if k == 4:
        return events.LatencySpike(kernel=kernel, url="http://x/health", p95_ms=0.0,
                                   threshold_ms=500.0, samples=20)
    if k == 5:
        return events.FailureRiskPredicted(resource="memory", kernel=kernel, eta_s=90000.0,
                                           confidence=0.3, current=1.0, limit=2.0, slope_per_s=0.1)
    if k == 6:
        return events.VulnerableDependency(package="pkg", installed_version="1.0",
                                           advisory_id=f"GHSA-{i % 11}", fixed_version=None)
    return events.ConditionCleared(condition="latency_spike", key={"kernel": kernel})


def stream(b: Bus, n: int) -> Iterator[list[events.Event]]:
    base = datetime.now(UTC) - timedelta(seconds=n // 100)
    chunk = []
    for i in range(n):
        ev = events.make_event(_payload(i), host=f"h{i % 5}", source=b.source,
                               time=base + timedelta(milliseconds=10 * i))
        chunk.append(ev)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def processor(ctx: BenchContext) -> dict[str, float]:
    b = await ctx.bus(component="bench")
    try:
        for part in stream(b, N):
            await b.publish_many(part)
        playbooks = validate.load_paths([stage.SHIPPED])
        # settle_heap as the processor stage runs it (its process is the processor's own)
        proc = Processor(b, playbooks, consumer="bench-processor", settle_heap=True)
        stop = asyncio.Event()
        t0 = time.perf_counter()
        task = asyncio.create_task(proc.run(stop))
        while proc.matcher.counts["events"] < N:
            await asyncio.sleep(0.005)
            if task.done():
                await task
        elapsed = time.perf_counter() - t0
        stop.set()
        await task
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"processor_per_s": N / elapsed, "processor_rss_mb": rss_mb,
                "processor_commands": float(proc.matcher.counts["commands"])}
    finally:
        await b.close()


BENCHMARKS = [Benchmark("processor", ("processor_per_s", "processor_rss_mb"), processor)]
