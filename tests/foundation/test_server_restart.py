"""A consumer loses nothing when nats-server is SIGKILLed and restarted mid-stream."""

from __future__ import annotations

import asyncio

from grace import bus as bus_mod
from grace import events, topology
from grace.consume import Delivery, PullConsumer
from grace.embedded import EmbeddedServer
from tests.support import wait_for


async def test_consumer_survives_server_sigkill_and_restart(fresh_server: EmbeddedServer) -> None:
    b = await bus_mod.connect_and_ensure(fresh_server.url, host="t", source="grace/t/test")
    seen: list[int] = []
    ids: set[str] = set()

    async def ensure(_seq: int) -> str:
        return await topology.ensure_consumer(b.js, topology.EVENTS, topology.processor_consumer_config())

    async def handle(items: list[Delivery[events.Event]]) -> None:
        for d in items:
            seen.append(d.seq)
            ids.add(d.item.id)

    consumer: PullConsumer[events.Event] = PullConsumer(b, topology.EVENTS, ensure, handle, stage="t",
                                                        expires=0.5)
    task = asyncio.create_task(consumer.run())
    first = [b.event(events.CpuSaturation(scope="system", percent=float(i), threshold=90, samples=3))
             for i in range(2000)]
    await b.publish_many(first)
    await wait_for(lambda: len(ids) >= 500, timeout=10)

    fresh_server.kill()  # SIGKILL mid-stream
    await asyncio.sleep(0.3)
    fresh_server.restart()
    await wait_for(lambda: b.nc.is_connected, timeout=15)

    second = [b.event(events.CpuSaturation(scope="system", percent=float(i), threshold=90, samples=3))
              for i in range(1000)]
    for _attempt in range(20):
        try:
            await b.publish_many(second, timeout=5)
            break
        except Exception:  # noqa: BLE001 - JetStream may still be recovering its store
            await asyncio.sleep(0.25)
    await wait_for(lambda: ids >= {e.id for e in first + second}, timeout=60)
    consumer.stop()
    await task
    await b.close()
    assert ids == {e.id for e in first + second}
    assert seen == sorted(seen)  # handled in log order, even across the crash
