"""Three replicas: killing any one node during a run loses nothing and the pipeline goes on."""

from __future__ import annotations

import asyncio

import pytest

from grace import bus as bus_mod
from grace import events, topology
from grace.app.cluster import LocalCluster, wait_for_meta_leader
from grace.consume import Delivery, PullConsumer
from tests.support import wait_for


def cpu(i: int) -> events.CpuSaturation:
    return events.CpuSaturation(scope="system", percent=float(i % 100), threshold=90.0, samples=3)


async def publish_retrying(b: bus_mod.Bus, evs: list[events.Event]) -> None:
    """Publish until every event is acked; retries are safe because ids dedupe."""
    for _ in range(60):
        try:
            await b.publish_many(evs, timeout=5)
            return
        except Exception:  # noqa: BLE001 - leader election after a node died
            await asyncio.sleep(0.5)
    raise AssertionError("publishing never succeeded after the node was killed")


@pytest.mark.parametrize("victim", [0, 2])
async def test_killing_one_node_mid_run_loses_nothing(cluster: LocalCluster, victim: int) -> None:
    await wait_for_meta_leader(cluster.url)
    b = await bus_mod.connect_and_ensure(cluster.url, host="c", source="grace/c/test", replicas=3)
    info = await b.js.stream_info(topology.EVENTS)
    assert info.config.num_replicas == 3

    ids: set[str] = set()

    async def ensure(_seq: int) -> str:
        return await topology.ensure_consumer(b.js, topology.EVENTS, topology.processor_consumer_config())

    async def handle(items: list[Delivery[events.Event]]) -> None:
        ids.update(d.item.id for d in items)

    consumer: PullConsumer[events.Event] = PullConsumer(b, topology.EVENTS, ensure, handle, stage="t",
                                                        expires=0.5)
    task = asyncio.create_task(consumer.run())
    published: list[events.Event] = []
    for round_no in range(6):
        batch = [b.event(cpu(i)) for i in range(500)]
        if round_no == 2:
            cluster.nodes[victim].kill()  # SIGKILL one of three while traffic flows
        await publish_retrying(b, batch)
        published.extend(batch)
    await wait_for(lambda: ids >= {e.id for e in published}, timeout=90)
    consumer.stop()
    await task
    stored = (await b.js.stream_info(topology.EVENTS)).state.messages
    await b.close()
    assert ids == {e.id for e in published}
    assert stored == len(published)  # nothing lost, nothing stored twice
