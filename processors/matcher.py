"""The matcher: playbooks applied to events in log order, time taken from the events.

Pure logic: no I/O, no wall clock. `process(ev)` and `tick(now)` append the
command and decision events to emit to `self.out`; the caller publishes them.
State (`for` episodes, windows, cooldowns, budgets, pending verifies, timer slots,
holds, pending approvals) is per playbook per target. After a match, the gate chain
(processors/gates) decides whether it may act now, and the playbook's mode how:
send, observe, or ask a person. With `emit = False` (rebuild) the same transitions
happen and nothing is emitted: that is how a restart rebuilds its state from the log.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

from grace import events, holds
from grace.durations import fmt
from grace.events import Event
from processors import gates
from processors.approvals import Approvals, Request
from processors.gates import Acted, Planned, Proposal, Refusal, Settings
from processors.gates.mode import mode_of
from processors.model import DEFAULT_ESCALATION, ESCALATE, Action, Playbook
from processors.people import PeopleMixin
from processors.targets import TargetState
from processors.verification import VERIFY_REASON, VerifyMixin

# people's decisions the matcher follows (holds, approvals): a rebuild reads them too
_NEVER = float("inf")
OPERATOR_TYPES = frozenset({"hold_added", "hold_released", "approval_granted", "approval_denied"})


class Matcher(PeopleMixin, VerifyMixin):
    """Apply `playbooks` to events; emit commands and decisions into `out`."""

    def __init__(self, playbooks: Iterable[Playbook], *, host: str, source: str,
                 settings: Settings | None = None) -> None:
        self.playbooks = {p.name: p for p in playbooks}
        self.host, self.source = host, source
        self.settings = settings or Settings()
        self.by_type: dict[str, list[Playbook]] = {}
        self.cleared_watch: dict[str, list[Playbook]] = {}
        self.verify_watch: dict[str, list[Playbook]] = {}
        self.timers = [p for p in self.playbooks.values() if p.every_s]
        # notify-only playbooks may react to decisions; never to their own (no notify loops)
        self.told = frozenset(p.name for p in self.playbooks.values() if p.notifies_only)
        for p in self.playbooks.values():
            for t in p.on:
                self.by_type.setdefault(t, []).append(p)
                self.cleared_watch.setdefault(t, []).append(p)
            if p.verify_event:
                self.verify_watch.setdefault(p.verify_event, []).append(p)
        self.state: dict[str, dict[str, TargetState]] = {n: {} for n in self.playbooks}
        self.holds = holds.HoldBook()
        self.approvals = Approvals()
        self.answered: set[str] = set()  # approvals granted, denied or expired: never again
        self.unrecorded: dict[str, holds.Hold] = {}  # holds a rebuild saw run out, unrecorded yet
        self.gates = gates.chain(self.settings, self.holds)
        self.acting = [g for g in self.gates if type(g).acted is not gates.Gate.acted]
        self.gate_watch: dict[str, list[gates.Gate]] = {}
        for g in self.gates:
            for t in g.TYPES:
                self.gate_watch.setdefault(t, []).append(g)
        self.issued: dict[str, float] = {}  # command id -> time: what was already done
        self.logged: set[str] = set()  # decision ids found in the log past the ack floor
        self.slots: dict[str, int] = {}  # timer playbook -> last time slot fired
        self.deadlines: list[tuple[float, str, str, str]] = []  # (deadline, command, playbook, target)
        self.verifying: dict[str, tuple[str, str]] = {}  # command awaiting proof -> (playbook, target)
        self.out: list[Event] = []
        self.due_at = _NEVER  # the earliest time something runs out (see `due`)
        self.emit = True
        self.counts = {"events": 0, "matched": 0, "commands": 0, "suppressed": 0, "observed": 0,
                       "requested": 0}

    @property
    def horizon_s(self) -> float:
        """How far back the log must be replayed to rebuild every playbook's state."""
        return max((p.horizon_s for p in self.playbooks.values()), default=0.0)

    @property
    def watched_types(self) -> set[str]:
        """Every event type that can change the matcher's state (what a rebuild reads)."""
        return (set(self.by_type) | set(self.verify_watch) | set(self.gate_watch) | OPERATOR_TYPES
                | {"condition_cleared", "command_failed"})

    def take(self) -> list[Event]:
        """The events to publish since the last call, commands first."""
        out, self.out = self.out, []
        out.sort(key=lambda e: e.category != "command")
        return out

    # ---------------------------------------------------------------- input

    def process(self, ev: Event) -> None:
        """Apply one event of the log."""
        self.counts["events"] += 1
        data = ev.data
        kind = data.TYPE
        if self.due_at != _NEVER and self.due_at < ev.time.timestamp():
            self.expire(ev.time.timestamp())
        watchers = self.gate_watch.get(kind)
        if watchers is not None:  # before matching: a gate judging this event's match knows it
            for g in watchers:
                g.see(ev)
        category = data.CATEGORY
        pbs = self.by_type.get(kind)
        if pbs is not None and not (category == "decision"
                                    and getattr(data, "playbook", "") in self.told):
            for p in pbs:
                if p.pred(ev):
                    self._matched(p, ev)
                elif p.for_s and self.state[p.name]:
                    st = self.state[p.name].get(p.target(ev))
                    if st is not None and st.since is not None:
                        st.reset_episode()  # the condition stopped holding: `for` starts over
        if category == "decision":
            self._learn(ev)
        elif category == "operator":
            self._operator(ev)
        elif kind == "condition_cleared":
            self._cleared(ev)
        elif kind == "command_failed" and self.verifying:
            self._result_failed(ev)
        if self.verify_watch and kind in self.verify_watch:
            self._verify_event(ev)

    def tick(self, now: float) -> None:
        """Wall-clock (or virtual) time passed: deadlines, expiries, timer playbooks."""
        self.expire(now)
        if len(self.issued) > 50_000:  # ids older than any window can no longer recur
            keep_after = now - 2 * self.horizon_s - 86400
            self.issued = {k: t for k, t in self.issued.items() if t >= keep_after}
        for p in self.timers:
            assert p.every_s
            slot = int(now // p.every_s)
            if self.slots.get(p.name, -1) >= slot:
                continue
            self.slots[p.name] = slot
            # stamped when issued (the id is the slot's): a verify window starts now, not at the
            # slot's start, which may be long past when a processor starts mid-slot
            reason = f"every {fmt(p.every_s)} (slot {slot})"
            summary = f"{p.name}: {reason}"

            def render(p: Playbook = p, slot: int = slot, summary: str = summary) -> list[Planned]:
                return [Planned(a, events.derive_id("command", p.name, a.index, "slot", slot),
                                a.params(None, summary)) for a in p.actions]

            st = self.state[p.name].setdefault(self.host, TargetState())
            self._decide(Proposal(p, None, self.host, self.host, _dt(now), [], reason, render), st)

    def due(self, at: float) -> None:
        """Something runs out at `at` (a verify deadline, an approval, a hold): `process`
        expires it once an event is later (one comparison per event)."""
        self.due_at = min(self.due_at, at)

    # ---------------------------------------------------------------- matching

    def _matched(self, p: Playbook, ev: Event) -> None:
        self.counts["matched"] += 1
        t = ev.time.timestamp()
        target = p.target(ev)
        states = self.state[p.name]
        st = states.get(target)
        if st is None:
            st = states[target] = TargetState()
        if st.verify is not None:
            st.seen = ev  # what the check finds now, for a failed verify's evidence
        if not p.enabled:
            self._note(p, st, target, ev, "disabled", "the playbook has enabled: false", True)
            return
        if p.for_s:
            if st.since is None:
                st.since = t
                st.said.discard("episode:not_held_long_enough")  # a new episode: say it again
            held = t - st.since
            if held < p.for_s:
                self._note(p, st, target, ev, "not_held_long_enough",
                           f"held {fmt(held)} of {fmt(p.for_s)}", True)
                return
        cause_ids = [ev.id]
        if p.count and p.within_s:
            w = st.window
            w.append((t, ev.id))
            cutoff = t - p.within_s
            while w and w[0][0] <= cutoff:
                w.popleft()
            if len(w) == 1:
                st.said.discard("episode:count_not_reached")  # the window starts afresh
            if len(w) < p.count:
                self._note(p, st, target, ev, "count_not_reached",
                           f"{len(w)} of {p.count} within {fmt(p.within_s)}", True)
                return
            cause_ids = [i for _, i in w]
        first = events.derive_id("command", p.name, 0, *cause_ids)
        if first in self.issued or first in self.approvals.pending or first in self.answered:
            st.reset_episode()
            return  # done already (learnt from the log): never twice
        since = st.since

        def reason() -> str:
            out = f"{ev.data.TYPE} on {target} matched"
            if p.for_s and since is not None:
                out += f", held {fmt(t - since)} (for {fmt(p.for_s)})"
            if p.count and p.within_s:
                out += f", {len(cause_ids)} events within {fmt(p.within_s)}"
            return out

        def render() -> list[Planned]:
            summary = f"{p.name}: {prop.reason}"
            return [Planned(a, first if a.index == 0 else
                            events.derive_id("command", p.name, a.index, *cause_ids),
                            a.params(ev, summary)) for a in p.actions]

        prop = Proposal(p, ev, target, ev.host, ev.time, cause_ids, reason, render, t)
        self._decide(prop, st)

    def _decide(self, prop: Proposal, st: TargetState) -> None:
        """Ask the gates in order; the first refusal is recorded, else the mode decides."""
        for g in self.gates:
            refusal = g.check(prop, st)
            if refusal is not None:
                self._refuse(prop, st, refusal)
                return
        mode = mode_of(prop.playbook, self.settings)
        for pl in prop.planned:
            if mode == "approve":
                self._request(prop, pl, st)
            else:
                self._command(prop.playbook, pl.action, prop.event, pl.command_id, prop.cause_ids,
                              prop.target, prop.host, prop.at, prop.reason, params=pl.params,
                              observe=mode == "observe")

    def _refuse(self, prop: Proposal, st: TargetState, r: Refusal) -> None:
        p, ev = prop.playbook, prop.event
        key = r.key or f"episode:{r.reason}"
        if key in st.said:
            return
        cause = ev.id if ev is not None else prop.planned[0].command_id
        self._suppressed(p, st, key, r.reason, prop.target, [ev.id] if ev is not None else [],
                         r.detail, cause, prop.host, prop.at, r.hold_id)
        observe = mode_of(p, self.settings) == "observe"
        if r.then and p.budget_then is not None:
            cid = events.derive_id("command", p.name, "budget", prop.target, st.actions[0])
            self._command(p, p.budget_then, ev, cid, prop.cause_ids, prop.target, prop.host,
                          prop.at, f"budget of {p.budget_max} per {fmt(p.budget_per_s or 0)} spent "
                          f"for {prop.target}", escalation=True, observe=observe)
        if r.escalate:  # a safety rail: once per rail, host and hour
            cid = events.derive_id("command", "safety", r.reason, prop.host, int(prop.t // 3600))
            if cid not in self.issued:
                self._command(p, DEFAULT_ESCALATION, ev, cid, prop.cause_ids, prop.host,
                              prop.host, prop.at, f"safety rail {r.reason}: {r.detail}",
                              escalation=True, observe=observe)

    def _note(self, p: Playbook, st: TargetState, target: str, ev: Event, reason: str,
              detail: str, episode: bool = False, key: str = "") -> None:
        """Record once why a matched playbook did not act (per episode or per key)."""
        key = f"episode:{reason}" if episode else key
        if key not in st.said:
            self._suppressed(p, st, key, reason, target, [ev.id], detail, ev.id, ev.host, ev.time)

    def _suppressed(self, p: Playbook, st: TargetState, key: str, reason: str, target: str,
                    cause_ids: list[str], detail: str, cause: str, host: str, at: datetime,
                    hold_id: str | None = None) -> None:
        st.said.add(key)
        self.counts["suppressed"] += 1
        data = events.DecisionSuppressed(playbook=p.name, reason=reason,  # type: ignore[arg-type]
                                         target=target, cause_ids=cause_ids, detail=detail,
                                         hold_id=hold_id)
        self._decision(data, events.derive_id("suppressed", p.name, reason, cause), host, at)

    # ---------------------------------------------------------------- emitting

    def _command(self, p: Playbook, a: Action, ev: Event | None, cid: str, cause_ids: list[str],
                 target: str, host: str, at: datetime, reason: str, escalation: bool = False,
                 evidence: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                 observe: bool = False, approved_by: str | None = None) -> None:
        """Send (or, observing, record what would be sent) one command and its decision."""
        if params is None:
            params = a.params(ev, f"{p.name}: {reason}")
        if evidence is not None and a.action == ESCALATE:
            params["evidence"] = {**(params.get("evidence") or {}), **evidence}
        payload = msgspec.convert({**params, "playbook": p.name, "cause_ids": cause_ids,
                                   "reason": reason}, a.cls)  # a bad param fails before anything
        self._record(Acted(p.name, cid, a.action, params, target, host, at.timestamp(), cause_ids,
                           escalation, observe), a.index, ev, verify=not observe)
        if observe:
            self.counts["observed"] += 1
            seen = events.DecisionObserved(
                playbook=p.name, command_id=cid, action=a.action, target=target,
                cause_ids=cause_ids, route=p.route, reason=reason,
                params=msgspec.to_builtins(params), index=a.index, escalation=escalation,
                cooldown_s=p.cooldown_s, budget_max=p.budget_max, budget_per_s=p.budget_per_s)
            self._decision(seen, events.derive_id("observed", cid), host, at)
            return
        self.counts["commands"] += 1
        if self.emit and cid not in self.logged:
            self.out.append(events.make_event(payload, host=host, source=self.source, id=cid,
                                              time=at))
        issued = events.CommandIssued(
            playbook=p.name, command_id=cid, action=a.action, target=target, cause_ids=cause_ids,
            route=p.route, reason=reason, params=msgspec.to_builtins(params), index=a.index,
            escalation=escalation, approved_by=approved_by, cooldown_s=p.cooldown_s,
            budget_max=p.budget_max, budget_per_s=p.budget_per_s)
        self._decision(issued, events.derive_id("decision", cid), host, at)

    def _decision(self, data: events.Payload, id: str, host: str, at: datetime) -> None:
        if self.emit and id not in self.logged:
            self.out.append(events.make_event(data, host=host, source=self.source, id=id, time=at))

    def _record(self, rec: Acted, index: int, cause: Event | None, verify: bool = True) -> None:
        """A command is done (issued, observed, or read back from the log): advance the state."""
        p = self.playbooks[rec.playbook]
        t, cid = rec.t, rec.command_id
        self.issued[cid] = t
        for g in self.acting:
            g.acted(rec)
        if p.every_s:
            self.slots[p.name] = max(self.slots.get(p.name, -1), int(t // p.every_s))
            if index == 0 and not rec.escalation and p.verify_within_s and verify:
                st = self.state[p.name].setdefault(rec.target, TargetState())
                self._await_proof(p, st, rec.target, cid, t, cause)
            return
        if rec.escalation or index != 0:
            return
        st = self.state[p.name].setdefault(rec.target, TargetState())
        st.last_action, st.last_command = t, cid
        st.actions.append(t)
        st.reset_episode()
        st.said.clear()  # keys name the previous action: a new one starts a fresh record
        st.seen = None
        if p.verify_within_s and verify:
            self._await_proof(p, st, rec.target, cid, t, cause)

    # ---------------------------------------------------------------- the log's own record

    def _learn(self, ev: Event) -> None:
        """A decision from the log (ours, maybe from before a restart): adopt what it says."""
        d = ev.data
        p = self.playbooks.get(getattr(d, "playbook", ""))
        if p is None:
            return
        if isinstance(d, (events.CommandIssued, events.DecisionObserved)):
            if d.command_id not in self.issued:
                observed = isinstance(d, events.DecisionObserved)
                self._record(Acted(p.name, d.command_id, d.action, d.params, d.target, ev.host,
                                   ev.time.timestamp(), d.cause_ids, d.escalation, observed),
                             d.index, None, verify=not observed)
            if d.escalation and d.reason.startswith(VERIFY_REASON):
                self.state[p.name].setdefault(d.target, TargetState()).escalated = d.command_id
            if d.command_id in self.approvals.pending:
                self._answered(d.command_id)  # issued on a yes before a restart
        elif isinstance(d, events.ApprovalRequested):
            cid = d.command_id
            if cid not in self.issued and cid not in self.answered and cid not in self.approvals.pending:
                self._pending(Request(p.name, d.index, cid, d.target, ev.host, d.params,
                                      d.cause_ids, d.reason, d.expires_at.timestamp()))
        elif isinstance(d, events.ApprovalExpired):
            self._answered(d.command_id)
        elif isinstance(d, (events.VerifyPassed, events.VerifyFailed)):
            st = self.state[p.name].get(d.target)
            self.verifying.pop(d.command_id, None)
            if st is not None and st.verify is not None and st.verify.command_id == d.command_id:
                st.verify = None
                if isinstance(d, events.VerifyPassed):
                    st.escalated = ""

    def note_logged(self, ev: Event) -> None:
        """A decision found past the ack floor: a crashed run emitted it; never emit it again."""
        self.logged.add(ev.id)
        if isinstance(ev.data, events.CommandIssued):
            self.logged.add(ev.data.command_id)

    def expire(self, now: float) -> None:
        """Everything whose time ran out before `now`: verifies fail, approvals expire, holds end."""
        self.due_at = _NEVER  # found again below from what is left
        try:
            self._expire(now)
        finally:
            for at in (self.deadlines[0][0] if self.deadlines else None, self.approvals.soonest,
                       min((h.until.timestamp() for h in self.holds.holds.values()), default=None)):
                if at is not None:
                    self.due(at)

    def _expire(self, now: float) -> None:
        while self.deadlines and self.deadlines[0][0] < now:
            deadline, cid, name, target = heapq.heappop(self.deadlines)
            self._fail(name, cid, target, deadline, None)
        for req in self.approvals.due(now):
            self._approval_expired(req)
        if self.holds.holds:
            for h in self.holds.expired(_dt(now)):
                self._hold_expired(h)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
