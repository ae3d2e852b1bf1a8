"""Hold and approval state, read from the log itself (no projector, no DuckDB file needed).

One reader over GRACE_EVENTS filtered to the operator subjects and the processor's
approval requests and expiries, in log order. What a hold or an approval is now follows
from those events and the clock: a hold past its `until` is over even before its
`hold_released` (reason expired) lands, and so is an approval past its `expires_at`.
"""

from __future__ import annotations

from typing import Any

from grace import topology
from grace.bus import Bus
from grace.consume import Delivery
from grace.operator_state import SUBJECTS, ApprovalRecord, HoldRecord, LogState

__all__ = ["SUBJECTS", "ApprovalRecord", "HoldRecord", "LogState", "read_state"]


async def read_state(bus: Bus) -> LogState:
    """Every hold and approval event of the log, up to its last sequence now."""
    from grace.logread import read_subjects

    state = LogState()
    info = await bus.js.stream_info(topology.EVENTS)
    last = int(info.state.last_seq)

    async def take(items: list[Delivery[Any]]) -> None:
        for d in items:
            state.apply(d.item)
            state.last_seq = d.seq

    await read_subjects(bus, 1, last, SUBJECTS, take, stage="control")
    return state
