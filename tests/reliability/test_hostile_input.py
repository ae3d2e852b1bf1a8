"""Hostile input: every bad message lands in GRACE_REJECTED with a reason, every valid one is
processed, the consume loop every stage uses never stops. Property tests for the decoders."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from grace import bus as bus_mod
from grace import events, topology
from grace.consume import Delivery, PullConsumer
from grace.errors import EventError
from tests.reliability.hostile import corpus
from tests.support import wait_for


async def test_a_thousand_hostile_messages_interleaved_with_valid_ones(bus: bus_mod.Bus) -> None:
    host = f"hostile{uuid.uuid4().hex[:8]}"
    subject = topology.event_subject("trigger", "cpu_saturation", host)
    bad = corpus(1050)
    valid: list[events.Event] = []
    stage = f"hostile-{host}"
    # a few duplicated ids among the valid ones: stored once by the server
    for i, (_kind, raw) in enumerate(bad):
        ev = bus.event(events.CpuSaturation(scope="system", percent=float(i % 100), threshold=90.0,
                                            samples=3), host=host)
        valid.append(ev)
        await bus.publish(ev)
        if i % 100 == 0:
            await bus.publish(ev)  # duplicated id
        await bus.nc.publish(subject, raw)
    await bus.nc.flush()

    got: list[str] = []

    async def ensure(seq: int) -> str:
        return await topology.ensure_consumer(bus.js, topology.EVENTS, topology.reader_consumer_config(
            seq, topology.event_filter("*", "*", host)))

    async def handle(items: list[Delivery[events.Event]]) -> None:
        got.extend(d.item.id for d in items)

    consumer: PullConsumer[events.Event] = PullConsumer(bus, topology.EVENTS, ensure, handle,
                                                        stage=stage, ack="none")
    task = asyncio.create_task(consumer.run())
    await wait_for(lambda: consumer.rejected >= len(bad) and len(got) >= len(valid), timeout=60)
    consumer.stop()
    await task
    assert got == [e.id for e in valid]  # every valid one, once, in order
    assert consumer.rejected == len(bad)

    reasons: list[str] = []
    sub = await bus.js.subscribe(topology.rejected_subject(stage), ordered_consumer=True)
    try:
        for _ in range(len(bad)):
            msg = await sub.next_msg(timeout=5)
            reasons.append((msg.headers or {}).get(topology.H_REJECT_REASON, ""))
    finally:
        await sub.unsubscribe()
    assert len(reasons) == len(bad)
    assert all(reasons), "every rejected message carries its reason"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decode_never_raises_anything_but_event_error_on_random_bytes(raw: bytes) -> None:
    try:
        events.decode(raw)
    except EventError as exc:
        assert exc.reason and exc.raw == raw  # noqa: PT017 - a refusal is allowed; it must carry why


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(events.PAYLOAD_CLASSES)), st.dictionaries(st.text(max_size=12), json_values,
                                                                       max_size=6))
def test_payload_validation_accepts_or_refuses_with_a_reason(type_name: str, data: dict[str, object]) -> None:
    try:
        payload = events.payload_from_dict(type_name, data)
    except EventError as exc:
        assert type_name in str(exc)  # noqa: PT017 - a refusal is allowed; it must name the type
        return
    ev = events.make_event(payload, host="h", source="s")
    assert events.decode(events.encode(ev)) == ev
