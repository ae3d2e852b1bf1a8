"""The producers' outbox: events kept in order while NATS is out of reach, bounded.

A host cut off from the cluster (its link down, its NATS node without quorum) cannot
publish; its findings stay here with their ids, so the re-send once the link is back
is deduplicated by the stream. Past `nats.outbox_max` events newer ones are refused
(the oldest are kept: they open the episodes the later ones continue) with an ERROR
naming what was lost and what to do, and the loss becomes one producer_buffer_overflow
event when the link is back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from grace import events

log = logging.getLogger(__name__)
LOG_EVERY = 1000  # after the first refusal, one ERROR line per this many more


@dataclass
class Overflow:
    first: datetime
    last: datetime
    refused: int = 0
    findings: int = 0


class Outbox:
    """Events waiting for NATS, in order; at most `capacity`."""

    def __init__(self, capacity: int, host: str, source: str) -> None:
        self.capacity, self.host, self.source = capacity, host, source
        self.events: list[events.Event] = []
        self.overflow: Overflow | None = None

    def put(self, ev: events.Event) -> None:
        """Keep `ev`, or refuse it (logged, counted) when the outbox is full."""
        if len(self.events) < self.capacity:
            self.events.append(ev)
            return
        o = self.overflow = self.overflow or Overflow(first=ev.time, last=ev.time)
        o.refused += 1
        o.last = ev.time
        if ev.data.CATEGORY == "trigger":
            o.findings += 1
        if o.refused == 1 or o.refused % LOG_EVERY == 0:
            log.error(
                "producers' outbox is full: %d events wait for NATS and %d newer ones (%d findings) "
                "were refused since %s; they will not reach the log. Restore this host's link to "
                "the NATS cluster (is its node up and in quorum? `grace ping produce` from here), or "
                "raise nats.outbox_max (now %d). A producer_buffer_overflow event records the loss "
                "when the link is back; `grace check` shows the findings present now.",
                len(self.events), o.refused, o.findings, o.first.isoformat(), self.capacity)

    def take_overflow(self) -> events.Event | None:
        """The producer_buffer_overflow event of the refusals so far (once), if any."""
        o, self.overflow = self.overflow, None
        if o is None:
            return None
        log.error("NATS is reachable again: %d events (%d findings) refused while the outbox was "
                  "full (nats.outbox_max %d) are missing from the log; recorded as "
                  "producer_buffer_overflow", o.refused, o.findings, self.capacity)
        return events.make_event(events.ProducerBufferOverflow(
            refused=o.refused, findings_refused=o.findings, capacity=self.capacity,
            first_refused=o.first, last_refused=o.last), host=self.host, source=self.source,
            id=events.derive_id(self.host, "outbox-overflow", o.first.isoformat(), o.refused))
