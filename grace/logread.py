"""Read a range of the log through several subject filters at once, in log order.

The processor's rebuild and the operator commands' state (`control/`) read the
log this way. The rebuild needs only the event types the playbooks react to and the
decisions; one ephemeral consumer with `filter_subjects` delivers exactly those,
still in stream order, so the matcher's state comes out as in the live run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nats.js import api

from grace import topology
from grace.bus import Bus
from grace.consume import Delivery, PullConsumer


def reader_config(start_seq: int, subjects: list[str], since: datetime | None = None
                  ) -> api.ConsumerConfig:
    """An ephemeral, ack-less reader of `subjects` from `start_seq` (or from the time `since`)."""
    base = topology.reader_consumer_config(start_seq)
    base.filter_subject = None
    base.filter_subjects = subjects
    if since is not None and start_seq <= 1:
        base.deliver_policy, base.opt_start_seq = api.DeliverPolicy.BY_START_TIME, None
        base.opt_start_time = since.astimezone(UTC)  # nats-py writes it as UTC ISO 8601
    return base


async def read_subjects(bus: Bus, start_seq: int, until_seq: int, subjects: list[str],
                        handler: Callable[[list[Delivery[Any]]], Awaitable[None]],
                        stage: str = "processor-rebuild", since: datetime | None = None) -> None:
    """Hand every event of `subjects` with seq in start..until to `handler`, in order
    (`since`: start at the first event stored at or after that time instead)."""
    if until_seq < start_seq:
        return
    consumer: PullConsumer[Any]
    first = True

    async def ensure(next_seq: int) -> str:
        nonlocal first
        info = await bus.js.add_consumer(topology.EVENTS,
                                         reader_config(next_seq, subjects, since if first else None))
        if first:
            first = False
            if info.num_pending == 0:
                consumer.pending = 0
        return info.name

    async def on_batch(items: list[Delivery[Any]]) -> None:
        mine = [d for d in items if d.seq <= until_seq]
        if mine:
            await handler(mine)

    consumer = PullConsumer(bus, topology.EVENTS, ensure, on_batch, stage=stage, ack="none",
                            batch=1000, start_seq=start_seq)

    await consumer.run_until(until_seq)
