"""Follow the log: `grace events tail`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import click
import msgspec

from grace import events, topology
from grace.bus import Bus
from grace.consume import Delivery, PullConsumer
from grace.errors import EventError


def decode_for_display(raw: bytes) -> events.Event | events.Envelope:
    """The typed event, or just its envelope for a type this version does not know."""
    try:
        return events.decode(raw)
    except EventError:
        return events.decode_envelope(raw)


def one_line(seq: int, ev: events.Event | events.Envelope) -> str:
    """`seq time type host {data}` for a terminal."""
    if isinstance(ev, events.Event):
        data = msgspec.json.encode(ev.data).decode()
    else:
        data = bytes(ev.data).decode(errors="replace") + "  (type unknown to this version)"
    if len(data) > 240:
        data = data[:237] + "..."
    t = ev.time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{seq:>8}  {t}  {ev.type:<24} {ev.host:<10} {data}"


def as_json(ev: events.Event | events.Envelope) -> str:
    if isinstance(ev, events.Event):
        return events.encode(ev).decode()
    d = msgspec.to_builtins(ev)
    d["data"] = json.loads(bytes(ev.data) or b"null")
    return json.dumps(d)


async def tail(bus: Bus, subject: str, *, from_start: bool, as_json_lines: bool,
               stop: asyncio.Event, echo: Callable[[str], None] = click.echo) -> None:
    """Print events on `subject` until `stop` is set."""
    async def ensure(next_seq: int) -> str:
        start = next_seq if (from_start or next_seq > 1) else None
        return await topology.ensure_consumer(
            bus.js, topology.EVENTS, topology.reader_consumer_config(start, subject))

    async def show(items: list[Delivery[events.Event | events.Envelope]]) -> None:
        for d in items:
            echo(as_json(d.item) if as_json_lines else one_line(d.seq, d.item))

    consumer: PullConsumer[events.Event | events.Envelope] = PullConsumer(
        bus, topology.EVENTS, ensure, show, decoder=decode_for_display, stage="tail", ack="none",
        batch=200)
    task = asyncio.create_task(consumer.run())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    consumer.stop()
    stopper.cancel()
    await task
