"""Hold and approval state as the log says it: built from operator and approval events in
log order, by whoever reads them (the CLI from the log, the console from its projection).

What a hold or an approval is now follows from those events and the clock: a hold past its
`until` is over even before its `hold_released` (reason expired) lands, and so is an approval
past its `expires_at`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from grace import events, topology

SUBJECTS = [
    topology.event_filter("operator", "*", "*"),
    topology.event_filter("decision", "approval_requested", "*"),
    topology.event_filter("decision", "approval_expired", "*"),
]

HoldState = Literal["active", "released", "expired"]
ApprovalState = Literal["pending", "approved", "denied", "expired", "unrequested"]


@dataclass
class HoldRecord:
    """One hold: its hold_added event and, once recorded, its hold_released."""

    added: events.Event
    released: events.Event | None = None

    @property
    def data(self) -> events.HoldAdded:
        return self.added.data  # type: ignore[return-value]

    def state(self, now: datetime) -> HoldState:
        if self.released is not None:
            return "expired" if self.released.data.reason == "expired" else "released"  # type: ignore[attr-defined]
        return "active" if self.data.until > now else "expired"


@dataclass
class ApprovalRecord:
    """One command waiting for (or past) a person's decision, by command id."""

    command_id: str
    requested: events.Event | None = None  # approval_requested
    # the first approval_granted / approval_denied / approval_expired in log order: the one
    # the processor acts on; any later one changes nothing
    decision: events.Event | None = None

    @property
    def request(self) -> events.ApprovalRequested:
        assert self.requested is not None
        return self.requested.data  # type: ignore[return-value]

    def state(self, now: datetime) -> ApprovalState:
        if self.decision is not None:
            return {"approval_granted": "approved", "approval_denied": "denied"}.get(
                self.decision.type, "expired")  # type: ignore[return-value]
        if self.requested is None:
            return "unrequested"
        return "pending" if self.request.expires_at > now else "expired"


@dataclass
class LogState:
    holds: dict[str, HoldRecord] = field(default_factory=dict)
    approvals: dict[str, ApprovalRecord] = field(default_factory=dict)
    last_seq: int = 0

    def apply(self, ev: events.Event) -> None:
        d = ev.data
        if isinstance(d, events.HoldAdded):
            self.holds.setdefault(d.hold_id, HoldRecord(ev))
        elif isinstance(d, events.HoldReleased):
            rec = self.holds.get(d.hold_id)
            if rec is not None and rec.released is None:
                rec.released = ev
        elif isinstance(d, (events.ApprovalRequested, events.ApprovalGranted,
                            events.ApprovalDenied, events.ApprovalExpired)):
            rec_a = self.approvals.setdefault(d.command_id, ApprovalRecord(d.command_id))
            if isinstance(d, events.ApprovalRequested):
                rec_a.requested = rec_a.requested or ev
            elif rec_a.decision is None:
                rec_a.decision = ev

    def active_holds(self, now: datetime) -> list[HoldRecord]:
        """Holds in force at `now`, ending soonest first."""
        return sorted((h for h in self.holds.values() if h.state(now) == "active"),
                      key=lambda h: h.data.until)

    def pending_approvals(self, now: datetime) -> list[ApprovalRecord]:
        """Approvals still waiting at `now`, expiring soonest first."""
        return sorted((a for a in self.approvals.values() if a.state(now) == "pending"),
                      key=lambda a: a.request.expires_at)
