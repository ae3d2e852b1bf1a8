"""What durability costs: the acked publish rate under each `nats.sync` setting and on a cluster.

20,000 CloudEvents of ~400 bytes, pipelined `bus.publish_many`, after a
500-event warm-up, against a fresh server per setting: the embedded server
with nats-server's default `sync_interval` (2m), with `nats.sync: always`
(fsync before each ack), and a 3-node local cluster with replicas 3 and the
default interval (a majority must store each message before its ack).
docs/reliability.md explains what each setting survives.
"""

from __future__ import annotations

import time

from bench import BenchContext, Benchmark
from grace import bus as bus_mod
from grace import events
from grace.app.cluster import LocalCluster, wait_for_meta_leader
from grace.embedded import EmbeddedServer

N = 20_000
WARM_UP = 500


async def acked_per_s(url: str, replicas: int) -> float:
    """Acked events per second publishing N events to a fresh GRACE_EVENTS at `url`."""
    b = await bus_mod.connect_and_ensure(url, host="bench", source="grace/bench/durability",
                                         replicas=replicas)
    try:
        evs = [b.event(events.CpuSaturation(scope="system", percent=float(i % 100),
                                            threshold=90.0, samples=3)) for i in range(N)]
        await b.publish_many(evs[:WARM_UP])
        t0 = time.perf_counter()
        await b.publish_many(evs[WARM_UP:], timeout=60)
        return (N - WARM_UP) / (time.perf_counter() - t0)
    finally:
        await b.close()


async def _embedded(ctx: BenchContext, sync: str | None) -> float:
    server = EmbeddedServer(ctx.dir / f"sync-{sync or 'default'}", sync=sync)
    server.start()
    try:
        return await acked_per_s(server.url, 1)
    finally:
        server.stop()


async def _cluster(ctx: BenchContext) -> float:
    cluster = LocalCluster(ctx.dir / "cluster")
    cluster.start()
    try:
        await wait_for_meta_leader(cluster.url)
        return await acked_per_s(cluster.url, 3)
    finally:
        cluster.stop()


async def durability(ctx: BenchContext) -> dict[str, float]:
    return {"durability_default_acked_per_s": await _embedded(ctx, None),
            "durability_sync_always_acked_per_s": await _embedded(ctx, "always"),
            "durability_cluster_r3_acked_per_s": await _cluster(ctx)}


BENCHMARKS = [
    Benchmark("durability", ("durability_default_acked_per_s", "durability_sync_always_acked_per_s",
                             "durability_cluster_r3_acked_per_s"), durability),
]
