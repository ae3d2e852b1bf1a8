"""Reading a test host's events back from the real log."""

from __future__ import annotations

from typing import Any

from grace import events, topology
from grace.bus import Bus
from grace.consume import Delivery, read_range


async def log_events(bus: Bus, host: str) -> list[events.Event]:
    """Every event about `host` in GRACE_EVENTS, in log order."""
    out: list[events.Event] = []

    async def collect(items: list[Delivery[Any]]) -> None:
        out.extend(d.item for d in items)

    await read_range(bus, 1, collect, filter_subject=topology.event_filter(host=host))
    return out


def of_type(evs: list[events.Event], type_: str, **fields: Any) -> list[events.Event]:
    return [e for e in evs if e.type == type_
            and all(getattr(e.data, k, None) == v for k, v in fields.items())]
