"""People's decisions in the matcher: holds (and their end), approval requests, yes and no.

A part of `Matcher` (see matcher_base.py for what it uses of it).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import msgspec

from grace import events
from grace.durations import fmt
from grace.events import Event
from grace.holds import Hold
from processors.approvals import Request
from processors.gates import Planned, Proposal
from processors.matcher_base import MatcherBase
from processors.model import DEFAULT_ESCALATION, ESCALATE
from processors.targets import TargetState


class PeopleMixin(MatcherBase):
    def _request(self, prop: Proposal, pl: Planned, st: TargetState) -> None:
        """An `approve` playbook: record what waits for a person's yes; send nothing."""
        p = prop.playbook
        msgspec.convert({**pl.params, "playbook": p.name, "cause_ids": prop.cause_ids,
                         "reason": prop.reason}, pl.action.cls)  # a bad param fails now, not at yes
        params = msgspec.to_builtins(pl.params)
        req = Request(p.name, pl.action.index, pl.command_id, prop.target, prop.host, params,
                      prop.cause_ids, prop.reason, prop.t + p.approve_within_s)
        self._pending(req)
        self.counts["requested"] += 1
        data = events.ApprovalRequested(
            playbook=p.name, command_id=pl.command_id, action=pl.action.action, target=prop.target,
            cause_ids=prop.cause_ids, route=p.route, reason=prop.reason, params=params,
            index=pl.action.index, within_s=p.approve_within_s, expires_at=_dt(req.expires))
        self._decision(data, events.derive_id("approval", pl.command_id), prop.host, prop.at)

    def _pending(self, req: Request) -> None:
        self.approvals.add(req)
        self.due(req.expires)
        st = self.state[req.playbook].setdefault(req.target, TargetState())
        st.approval = req.command_id
        st.reset_episode()

    def _answered(self, cid: str) -> Request | None:
        """The request `cid` is answered (granted, denied or expired): no longer pending."""
        self.answered.add(cid)
        req = self.approvals.pop(cid)
        if req is not None:
            st = self.state[req.playbook].get(req.target)
            if st is not None and st.approval == cid:
                st.approval = ""
        return req

    def _operator(self, ev: Event) -> None:
        d = ev.data
        if isinstance(d, (events.HoldAdded, events.HoldReleased)):
            self.holds.apply(ev)
            if isinstance(d, events.HoldAdded):
                self.due(d.until.timestamp())
            if isinstance(d, events.HoldReleased):
                self.unrecorded.pop(d.hold_id, None)
        elif isinstance(d, events.ApprovalGranted):
            self._granted(ev, d)
        elif isinstance(d, events.ApprovalDenied):
            self._answered(d.command_id)

    def _granted(self, ev: Event, d: events.ApprovalGranted) -> None:
        """A person said yes: issue the command once, with the requested id, unless a hold
        (or a rail) that came up meanwhile forbids it now."""
        req = self._answered(d.command_id)
        p = self.playbooks.get(req.playbook) if req is not None else None
        if req is None or p is None or d.command_id in self.issued or req.index >= len(p.actions):
            return  # unknown, answered already, or from playbooks no longer loaded: nothing
        a = p.actions[req.index]
        st = self.state[p.name].setdefault(req.target, TargetState())
        reason = f"{req.reason}; approved by {d.by}"
        prop = Proposal(p, None, req.target, req.host, ev.time, req.cause_ids, reason,
                        lambda: [Planned(a, req.command_id, dict(req.params))])
        for g in self.gates:
            refusal = g.check(prop, st) if g.AT_APPROVAL else None
            if refusal is not None:
                self._refuse(prop, st, dataclasses.replace(
                    refusal, key=f"approved:{req.command_id}",
                    detail=f"approved by {d.by}, but {refusal.detail}"))
                return
        self._command(p, a, None, req.command_id, req.cause_ids, req.target, req.host, ev.time,
                      reason, params=dict(req.params), approved_by=d.by)

    def _approval_expired(self, req: Request) -> None:
        self._answered(req.command_id)
        p = self.playbooks.get(req.playbook)
        if p is None:
            return
        at = _dt(req.expires)
        detail = (f"no `grace approve {req.command_id}` within {fmt(p.approve_within_s)}; "
                  f"nothing was sent")
        data = events.ApprovalExpired(playbook=p.name, command_id=req.command_id, target=req.target,
                                      escalation=ESCALATE if p.escalate else None, detail=detail)
        self._decision(data, events.derive_id("approval_expired", req.command_id), req.host, at)
        if p.escalate is not None:  # the playbook asks for it: once, with what waited
            self._command(p, DEFAULT_ESCALATION, None,
                          events.derive_id("command", p.name, "approval", req.command_id),
                          req.cause_ids, req.target, req.host, at,
                          f"approval of {req.command_id} expired: {detail}", escalation=True,
                          evidence={"approval": {"command_id": req.command_id,
                                                 "params": req.params, "reason": req.reason}})

    def _hold_expired(self, h: Hold) -> None:
        self.holds.holds.pop(h.hold_id, None)
        if not self.emit:  # a rebuild: the log may already say so (else `record_expiries`)
            self.unrecorded[h.hold_id] = h
            return
        data = events.HoldReleased(hold_id=h.hold_id, target=str(h.target), reason="expired",
                                   by="grace", via="expiry")
        self._decision(data, events.derive_id("hold_expired", h.hold_id), h.host, h.until)

    def record_expiries(self) -> None:
        """After a rebuild: holds that ran out while no processor ran get their hold_released."""
        pending, self.unrecorded = self.unrecorded, {}
        for h in pending.values():
            self._hold_expired(h)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
