"""The fleet's figures: three hosts in network namespaces (bench/fleet_net.py), a 3-node R3 cluster.

- `fleet_events_per_s`: events published from outside the hosts, until both processor partitions
  (`grace process --partition 0/2` and `1/2`, on two of the hosts) have acked all of them;
  `fleet_one_node_events_per_s` is the same load and the same two partitions on one local node
  with 1 replica (the single-node figure beside it).
- `fleet_heal_remote_ms`: a model file overwritten on host beta until it is restored, its finding
  judged by the partition running on host gamma and the restore run by beta's agent.
- `fleet_leader_continue_ms`: the node leading GRACE_EVENTS is SIGKILLed; until a publish is
  acked again (election and client failover).

Needs root and `ip netns`; elsewhere the fleet figures are absent and the reason is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import BenchContext, BenchError, Benchmark, fleet_net
from grace import bus as bus_mod
from grace import events, topology
from grace.app.cluster import wait_for_meta_leader

EVENTS = 20_000
BATCH = 1_000
TIMEOUT_S = 300.0


def check_event(b: bus_mod.Bus, i: int) -> events.Event:
    """A check_completed of one of the fleet's hosts: every partition reads it, none acts on it."""
    host = fleet_net.HOSTS[i % len(fleet_net.HOSTS)]
    return b.event(events.CheckCompleted(trigger="bench", duration_ms=1.0, outcome="ok", cycle=i),
                   host=host)


async def partitions_done(b: bus_mod.Bus, last: int) -> bool:
    for i in range(2):
        info = await b.js.consumer_info(topology.EVENTS, topology.processor_partition_consumer(i, 2))
        if info.ack_floor.stream_seq < last:
            return False
    return True


async def throughput(b: bus_mod.Bus) -> float:
    """Publish EVENTS events in batches; events/s until both partitions acked the last one."""
    await wait_partitions(b)
    evs = [check_event(b, i) for i in range(EVENTS)]
    t0 = time.perf_counter()
    for k in range(0, EVENTS, BATCH):
        await b.publish_many(evs[k:k + BATCH])
    last = (await b.js.stream_info(topology.EVENTS)).state.last_seq
    deadline = time.monotonic() + TIMEOUT_S
    while not await partitions_done(b, last):
        if time.monotonic() > deadline:
            raise BenchError(f"the partitions did not ack {EVENTS} events within {TIMEOUT_S:.0f}s")
        await asyncio.sleep(0.05)
    return EVENTS / (time.perf_counter() - t0)


async def wait_partitions(b: bus_mod.Bus, timeout: float = 120.0) -> None:
    """Until both partitions' durables exist and have caught up with the log."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):  # a durable not created yet
            last = (await b.js.stream_info(topology.EVENTS)).state.last_seq
            if await partitions_done(b, last):
                return
        if time.monotonic() > deadline:
            raise BenchError(f"the processor partitions were not consuming within {timeout:.0f}s")
        await asyncio.sleep(0.2)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def heal_remote_ms(f: fleet_net.Fleet) -> float:
    model = f.hosts[1].system / "models" / "model.pkl"
    good = sha256(model)
    t0 = time.perf_counter()
    model.write_bytes(os.urandom(256))
    deadline = time.monotonic() + TIMEOUT_S
    while sha256(model) != good:
        if time.monotonic() > deadline:
            raise BenchError(f"{model} was not restored within {TIMEOUT_S:.0f}s; see {f.root / 'logs'}")
        await asyncio.sleep(0.002)
    return (time.perf_counter() - t0) * 1000


async def leader_continue_ms(f: fleet_net.Fleet, b: bus_mod.Bus) -> float:
    info = await b.js.stream_info(topology.EVENTS)
    leader = info.cluster.leader if info.cluster else None
    if leader not in f.nodes:
        raise BenchError(f"GRACE_EVENTS has no leader among the fleet's nodes ({leader})")
    t0 = time.perf_counter()
    f.nodes[leader].kill()
    deadline = time.monotonic() + TIMEOUT_S
    i = 0
    while True:
        i += 1
        try:
            await b.publish(check_event(b, i), timeout=1)
            return (time.perf_counter() - t0) * 1000
        except Exception as exc:  # no leader yet, or the client is moving
            if time.monotonic() > deadline:
                raise BenchError(f"no publish was acked within {TIMEOUT_S:.0f}s of the leader kill") from exc


async def one_node(ctx: BenchContext) -> float:
    """The same load and partitions on the bench's own single node (1 replica)."""
    cfg = ctx.dir / "one" / "grace.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(f'host: one\nhttp: {{listen: ""}}\nplaybooks: [{fleet_net.EXAMPLE_PLAYBOOKS}]\n')
    procs = [subprocess.Popen([fleet_net.GRACE, "process", "--partition", f"{i}/2", "-c", str(cfg),
                               "--nats", ctx.url, "--data-dir", str(ctx.dir / f"p{i}")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(2)]
    b = await ctx.bus()
    try:
        return await throughput(b)
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        await b.close()


async def run(ctx: BenchContext) -> dict[str, float]:
    reason = fleet_net.unavailable()
    if reason:
        print(f"bench fleet: skipped, {reason}", file=sys.stderr)
        return {}
    figures = {"fleet_one_node_events_per_s": await one_node(ctx)}
    f = fleet_net.Fleet(ctx.dir / "fleet")
    try:
        f.build_network()
        f.start_nodes()
        await wait_for_meta_leader(f.url, timeout=60)
        f.init_systems()
        f.start_grace()
        b = await bus_mod.connect_and_ensure(f.url, host="bench", source="grace/bench/fleet", replicas=3)
        try:
            await f.wait_ready(b)
            figures["fleet_events_per_s"] = await throughput(b)
            figures["fleet_heal_remote_ms"] = await heal_remote_ms(f)
            figures["fleet_leader_continue_ms"] = await leader_continue_ms(f, b)
        finally:
            await b.close()
    finally:
        f.close()
    return figures


BENCHMARKS = [Benchmark("fleet", ("fleet_events_per_s", "fleet_one_node_events_per_s",
                                  "fleet_heal_remote_ms", "fleet_leader_continue_ms"), run)]
