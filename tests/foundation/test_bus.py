"""The bus against a real nats-server: acked publish, dedup, rejection, fast consume."""

from __future__ import annotations

import asyncio

from grace import events, topology
from grace.bus import Bus
from grace.consume import Delivery, PullConsumer, read_range
from tests.support import wait_for


def cpu(percent: float) -> events.CpuSaturation:
    return events.CpuSaturation(scope="system", percent=percent, threshold=90.0, samples=3)


async def test_a_republished_id_is_stored_once(bus: Bus) -> None:
    ev = bus.event(cpu(95.0))
    first = await bus.publish(ev)
    again = await bus.publish(ev)
    assert not first.duplicate
    assert again.duplicate and again.seq == first.seq


async def test_publish_many_acks_every_event_in_order(bus: Bus) -> None:
    evs = [bus.event(cpu(float(i))) for i in range(300)]
    acks = await bus.publish_many(evs, window=64)
    seqs = [a.seq for a in acks]
    assert seqs == sorted(seqs) and len(set(seqs)) == 300
    assert not any(a.duplicate for a in acks)
    replay = await bus.publish_many(evs[:10])
    assert all(a.duplicate for a in replay)


async def test_malformed_message_is_rejected_with_reason_and_neighbours_processed(bus: Bus) -> None:
    before = (await bus.js.stream_info(topology.EVENTS)).state.last_seq
    good1 = bus.event(cpu(1.0))
    good2 = bus.event(cpu(2.0))
    await bus.publish(good1)
    await bus.nc.publish(topology.event_subject("trigger", "cpu_saturation", "test"), b'{"type": "cpu_sat')
    await bus.nc.publish(topology.event_subject("trigger", "nope", "test"),
                         b'{"type":"nope","specversion":"1.0","id":"x","source":"s",'
                         b'"time":"2026-01-01T00:00:00Z","datacontenttype":"application/json",'
                         b'"host":"test","data":{}}')
    await bus.publish(good2)
    await bus.nc.flush()
    seen: list[str] = []
    rejected_before = (await bus.js.stream_info(topology.REJECTED)).state.messages

    async def handle(items: list[Delivery[events.Event]]) -> None:
        seen.extend(d.item.id for d in items)

    await read_range(bus, before + 1, handle, stage="test-reject")
    assert good1.id in seen and good2.id in seen
    assert len(seen) == 2
    info = await bus.js.stream_info(topology.REJECTED)
    assert info.state.messages == rejected_before + 2
    last = await bus.js.get_last_msg(topology.REJECTED, topology.rejected_subject("test-reject"))
    assert "unknown event type" in (last.headers or {}).get(topology.H_REJECT_REASON, "")


async def test_durable_consumer_acks_after_handling(bus: Bus) -> None:
    name = "test-durable"
    evs = [bus.event(cpu(float(i))) for i in range(500)]
    got: list[int] = []

    async def ensure(_seq: int) -> str:
        return await topology.ensure_consumer(
            bus.js, topology.EVENTS,
            topology.processor_consumer_config(name, topology.event_filter("trigger", "cpu_saturation")))

    await ensure(1)
    await bus.publish_many(evs)

    async def handle(items: list[Delivery[events.Event]]) -> None:
        got.extend(d.seq for d in items)

    consumer: PullConsumer[events.Event] = PullConsumer(bus, topology.EVENTS, ensure, handle, stage="t")
    task = asyncio.create_task(consumer.run())
    last = (await bus.js.stream_info(topology.EVENTS)).state.last_seq

    async def acked() -> bool:
        info = await bus.js.consumer_info(topology.EVENTS, name)
        return info.num_pending == 0 and info.num_ack_pending == 0 and info.ack_floor.stream_seq == last

    await wait_for(acked, timeout=10)
    consumer.stop()
    await task
    assert got == sorted(got) and len(got) == len(set(got)) >= 500


async def test_a_handler_meeting_a_cluster_without_leader_is_retried_not_rejected(bus: Bus) -> None:
    """Right after a network partition heals, JetStream answers 503 for a while: the command in
    hand must wait and run, not go to GRACE_REJECTED (a command without a result)."""
    import nats.js.errors

    before = (await bus.js.stream_info(topology.EVENTS)).state.last_seq
    ev = bus.event(cpu(3.0))
    await bus.publish(ev)
    rejected_before = (await bus.js.stream_info(topology.REJECTED)).state.messages
    calls: list[str] = []

    async def handle(items: list[Delivery[events.Event]]) -> None:
        calls.append(items[0].item.id)
        if len(calls) <= 2:  # what the intent store's KV put raised in tests/fleet, for a while
            raise nats.js.errors.ServiceUnavailableError()

    await read_range(bus, before + 1, handle, stage="test-unavailable")
    assert calls == [ev.id, ev.id, ev.id]
    assert (await bus.js.stream_info(topology.REJECTED)).state.messages == rejected_before
