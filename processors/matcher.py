"""The matcher: playbooks applied to events in log order, time taken from the events.

Pure logic: no I/O, no wall clock. `process(ev)` and `tick(now)` append the
command and decision events to emit to `self.out`; the caller publishes them.
State (holds, windows, cooldowns, budgets, pending verifies, timer slots) is per
playbook per target. With `emit = False` (rebuild) the same transitions happen
and nothing is emitted: that is how a restart rebuilds its state from the log.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import msgspec

from grace import events
from grace.durations import format_duration
from grace.events import Event
from processors.model import ESCALATE, Action, Playbook

_DEFAULT_ESCALATION = Action(ESCALATE, events.EscalateToCodingAgent, lambda _ev: {}, 0, True)
VERIFY_REASON = "verify of"  # how a verify escalation's reason starts (a restart learns it back)
# result events carry the command_id they answer: a verify on them is about that command only
_RESULTS = frozenset(t for t, c in events.PAYLOAD_CLASSES.items() if c.CATEGORY == "result")


class Pending(msgspec.Struct):
    """A fix awaiting its proof (condition_cleared, or the verify event)."""

    command_id: str
    deadline: float
    cause: Event | None


class TargetState:
    """What one playbook remembers about one target."""

    __slots__ = ("hold_start", "window", "said", "last_action", "last_command", "actions", "verify",
                 "seen", "escalated")

    def __init__(self) -> None:
        self.hold_start: float | None = None
        self.window: deque[tuple[float, str]] = deque()
        self.said: set[str] = set()  # suppressions already recorded (no flooding)
        self.last_action: float | None = None
        self.last_command = ""
        self.actions: deque[float] = deque()  # times of acts inside the budget period
        self.verify: Pending | None = None
        self.seen: Event | None = None  # the latest finding while a verify is pending: evidence
        self.escalated = ""  # the verify escalation already sent this episode (sent once)

    def reset_episode(self) -> None:
        self.hold_start = None
        self.window.clear()
        self.said = {k for k in self.said if not k.startswith("episode:")}


class Matcher:
    """Apply `playbooks` to events; emit commands and decisions into `out`."""

    def __init__(self, playbooks: Iterable[Playbook], *, host: str, source: str) -> None:
        self.playbooks = {p.name: p for p in playbooks}
        self.host, self.source = host, source
        self.by_type: dict[str, list[Playbook]] = {}
        self.cleared_watch: dict[str, list[Playbook]] = {}
        self.verify_watch: dict[str, list[Playbook]] = {}
        self.timers = [p for p in self.playbooks.values() if p.every_s]
        for p in self.playbooks.values():
            for t in p.on:
                self.by_type.setdefault(t, []).append(p)
                self.cleared_watch.setdefault(t, []).append(p)
            if p.verify_event:
                self.verify_watch.setdefault(p.verify_event, []).append(p)
        self.state: dict[str, dict[str, TargetState]] = {n: {} for n in self.playbooks}
        self.issued: dict[str, float] = {}  # command id -> time: what was already done
        self.logged: set[str] = set()  # decision ids found in the log past the ack floor
        self.slots: dict[str, int] = {}  # timer playbook -> last time slot fired
        self.deadlines: list[tuple[float, str, str, str]] = []  # (deadline, command, playbook, target)
        self.verifying: dict[str, tuple[str, str]] = {}  # command awaiting proof -> (playbook, target)
        self.out: list[Event] = []
        self.emit = True
        self.counts = {"events": 0, "matched": 0, "commands": 0, "suppressed": 0}

    @property
    def horizon_s(self) -> float:
        """How far back the log must be replayed to rebuild every playbook's state."""
        return max((p.horizon_s for p in self.playbooks.values()), default=0.0)

    def take(self) -> list[Event]:
        """The events to publish since the last call, commands first."""
        out, self.out = self.out, []
        out.sort(key=lambda e: e.category != "command")
        return out

    # ---------------------------------------------------------------- input

    def process(self, ev: Event) -> None:
        """Apply one event of the log."""
        self.counts["events"] += 1
        if self.deadlines and self.deadlines[0][0] < ev.time.timestamp():
            self.expire(ev.time.timestamp())
        pbs = self.by_type.get(ev.data.TYPE)
        if pbs is not None:
            for p in pbs:
                if p.pred(ev):
                    self._matched(p, ev)
                elif p.for_s and self.state[p.name]:
                    st = self.state[p.name].get(p.target(ev))
                    if st is not None and st.hold_start is not None:
                        st.reset_episode()  # the condition stopped holding: `for` starts over
        category = ev.data.CATEGORY
        if category == "decision":
            self._learn(ev)
        elif ev.data.TYPE == "condition_cleared":
            self._cleared(ev)
        elif ev.data.TYPE == "command_failed" and self.verifying:
            self._result_failed(ev)
        if self.verify_watch and ev.data.TYPE in self.verify_watch:
            self._verify_event(ev)

    def tick(self, now: float) -> None:
        """Wall-clock (or virtual) time passed: verify deadlines, timer playbooks."""
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
            at = _dt(now)
            for a in p.actions:
                cid = events.derive_id("command", p.name, a.index, "slot", slot)
                self._command(p, a, None, cid, [], self.host, self.host, at,
                              f"every {fmt(p.every_s)} (slot {slot})")

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
            if st.hold_start is None:
                st.hold_start = t
                st.said.discard("episode:not_held_long_enough")  # a new hold: say it again
            held = t - st.hold_start
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
        if first in self.issued:
            st.reset_episode()
            return  # done already (learnt from the log): never twice
        if st.verify is not None:
            self._note(p, st, target, ev, "verify_pending",
                       f"waiting for {st.verify.command_id} to be verified",
                       key=f"verify:{st.verify.command_id}")
            return
        if p.cooldown_s and st.last_action is not None and t - st.last_action < p.cooldown_s:
            self._note(p, st, target, ev, "cooldown",
                       f"last action {st.last_command} {fmt(t - st.last_action)} ago; "
                       f"cooldown {fmt(p.cooldown_s)}", key=f"cooldown:{st.last_command}")
            return
        if p.budget_max and p.budget_per_s:
            acts = st.actions
            while acts and acts[0] <= t - p.budget_per_s:
                acts.popleft()
            if len(acts) >= p.budget_max:
                self._budget_spent(p, st, target, ev)
                return
        reason = f"{ev.data.TYPE} on {target} matched"
        if p.for_s and st.hold_start is not None:
            reason += f", held {fmt(t - st.hold_start)} (for {fmt(p.for_s)})"
        if p.count and p.within_s:
            reason += f", {len(cause_ids)} events within {fmt(p.within_s)}"
        for a in p.actions:
            cid = first if a.index == 0 else events.derive_id("command", p.name, a.index, *cause_ids)
            self._command(p, a, ev, cid, cause_ids, target, ev.host, ev.time, reason)

    def _budget_spent(self, p: Playbook, st: TargetState, target: str, ev: Event) -> None:
        key = f"budget:{st.actions[0]}"
        if key in st.said:
            return
        then = p.budget_then
        detail = (f"{len(st.actions)} actions within {fmt(p.budget_per_s or 0)} "
                  f"(max {p.budget_max}); " + (f"escalating with {then.action}" if then else
                                               "no budget `then`: nothing more until it refills"))
        self._note(p, st, target, ev, "budget_spent", detail, key=key)
        if then is not None:
            cid = events.derive_id("command", p.name, "budget", target, st.actions[0])
            self._command(p, then, ev, cid, [ev.id], target, ev.host, ev.time,
                          f"budget of {p.budget_max} per {fmt(p.budget_per_s or 0)} spent for "
                          f"{target}", escalation=True)

    def _note(self, p: Playbook, st: TargetState, target: str, ev: Event, reason: str,
              detail: str, episode: bool = False, key: str = "") -> None:
        """Record once why a matched playbook did not act (per episode or per key)."""
        key = f"episode:{reason}" if episode else key
        if key in st.said:
            return
        st.said.add(key)
        self.counts["suppressed"] += 1
        data = events.DecisionSuppressed(playbook=p.name, reason=reason,  # type: ignore[arg-type]
                                         target=target, cause_ids=[ev.id], detail=detail)
        self._decision(data, events.derive_id("suppressed", p.name, reason, ev.id), ev.host, ev.time)

    # ---------------------------------------------------------------- emitting

    def _command(self, p: Playbook, a: Action, ev: Event | None, cid: str, cause_ids: list[str],
                 target: str, host: str, at: datetime, reason: str, escalation: bool = False,
                 evidence: dict[str, Any] | None = None) -> None:
        params = a.params(ev, f"{p.name}: {reason}")
        if evidence is not None and a.action == ESCALATE:
            params["evidence"] = {**(params.get("evidence") or {}), **evidence}
        payload = msgspec.convert({**params, "playbook": p.name, "cause_ids": cause_ids,
                                   "reason": reason}, a.cls)
        self._record(p, target, at.timestamp(), cid, a.index, escalation, ev)
        self.counts["commands"] += 1
        if self.emit and cid not in self.logged:
            self.out.append(events.make_event(payload, host=host, source=self.source, id=cid,
                                              time=at))
        issued = events.CommandIssued(
            playbook=p.name, command_id=cid, action=a.action, target=target, cause_ids=cause_ids,
            route=p.route, reason=reason, params=msgspec.to_builtins(params), index=a.index,
            escalation=escalation)
        self._decision(issued, events.derive_id("decision", cid), host, at)

    def _decision(self, data: events.Payload, id: str, host: str, at: datetime) -> None:
        if self.emit and id not in self.logged:
            self.out.append(events.make_event(data, host=host, source=self.source, id=id, time=at))

    def _record(self, p: Playbook, target: str, t: float, cid: str, index: int,
                escalation: bool, cause: Event | None) -> None:
        self.issued[cid] = t
        if p.every_s:
            self.slots[p.name] = max(self.slots.get(p.name, -1), int(t // p.every_s))
            if index == 0 and not escalation and p.verify_within_s:
                st = self.state[p.name].setdefault(target, TargetState())
                st.verify = Pending(cid, t + p.verify_within_s, cause)
                heapq.heappush(self.deadlines, (t + p.verify_within_s, cid, p.name, target))
                self.verifying[cid] = (p.name, target)
            return
        if escalation or index != 0:
            return
        st = self.state[p.name].setdefault(target, TargetState())
        st.last_action, st.last_command = t, cid
        st.actions.append(t)
        st.reset_episode()
        st.said.clear()  # keys name the previous action: a new one starts a fresh record
        st.seen = None
        if p.verify_within_s:
            st.verify = Pending(cid, t + p.verify_within_s, cause)
            heapq.heappush(self.deadlines, (t + p.verify_within_s, cid, p.name, target))
            self.verifying[cid] = (p.name, target)

    # ---------------------------------------------------------------- the log's own record

    def _learn(self, ev: Event) -> None:
        """A decision from the log (ours, maybe from before a restart): adopt what it says."""
        d = ev.data
        p = self.playbooks.get(getattr(d, "playbook", ""))
        if p is None:
            return
        if isinstance(d, events.CommandIssued):
            if d.command_id not in self.issued:
                self._record(p, d.target, ev.time.timestamp(), d.command_id, d.index,
                             d.escalation, None)
            if d.escalation and d.reason.startswith(VERIFY_REASON):
                self.state[p.name].setdefault(d.target, TargetState()).escalated = d.command_id
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

    def _cleared(self, ev: Event) -> None:
        d = ev.data
        assert isinstance(d, events.ConditionCleared)
        for p in self.cleared_watch.get(d.condition, ()):
            for target, st in self._targets(p, ev.host, d.key):
                st.reset_episode()
                st.escalated = ""  # the condition is gone: a new episode may escalate again
                if st.verify is not None and p.verify_event is None:
                    self._passed(p, st, target, ev)

    def _verify_event(self, ev: Event) -> None:
        for p in self.verify_watch[ev.data.TYPE]:
            if p.verify_pred is not None and not p.verify_pred(ev):
                continue
            values = {f: getattr(ev.data, f) for f in p.group_fields if hasattr(ev.data, f)}
            cid = getattr(ev.data, "command_id", None)  # a result proves its own command only
            for target, st in self._targets(p, ev.host, values):
                if st.verify is not None and (cid is None or cid == st.verify.command_id):
                    self._passed(p, st, target, ev)

    def _targets(self, p: Playbook, host: str, values: dict[str, Any]
                 ) -> list[tuple[str, TargetState]]:
        """The targets of `p` on `host` whose group values agree with `values`."""
        states = self.state[p.name]
        if not states:
            return []
        wanted = [f"{f}={'' if values[f] is None else values[f]}" for f in p.group_fields
                  if f in values]
        if len(wanted) == len(p.group_fields):
            target = "/".join([host, *wanted])
            st = states.get(target)
            return [(target, st)] if st is not None else []
        prefix = f"{host}/"
        return [(target, st) for target, st in states.items()
                if target.startswith(prefix) and all(f"/{w}" in target for w in wanted)]

    def _passed(self, p: Playbook, st: TargetState, target: str, ev: Event) -> None:
        assert st.verify is not None
        cid = st.verify.command_id
        self.verifying.pop(cid, None)
        st.verify = None
        st.seen = None
        st.escalated = ""
        data = events.VerifyPassed(playbook=p.name, command_id=cid, target=target, evidence_id=ev.id)
        self._decision(data, events.derive_id("verify_passed", cid), ev.host, ev.time)

    def expire(self, now: float) -> None:
        """Fail every verify whose deadline passed before `now`."""
        while self.deadlines and self.deadlines[0][0] < now:
            deadline, cid, name, target = heapq.heappop(self.deadlines)
            self._fail(name, cid, target, deadline, None)

    def _result_failed(self, ev: Event) -> None:
        """The command a verify waits for failed: the fix cannot show; fail it now."""
        d = ev.data
        assert isinstance(d, events.CommandFailed)
        where = self.verifying.get(d.command_id)
        if where is not None:
            self._fail(where[0], d.command_id, where[1], ev.time.timestamp(), ev)

    def _fail(self, name: str, cid: str, target: str, t: float, failed: Event | None) -> None:
        """Record verify_failed; escalate once per episode, with what was checked and found."""
        self.verifying.pop(cid, None)
        p = self.playbooks[name]
        st = self.state[name].get(target)
        if st is None or st.verify is None or st.verify.command_id != cid:
            return  # passed (or superseded) meanwhile
        cause, seen = st.verify.cause, st.seen
        st.verify, st.seen = None, None
        escalation = p.escalate or p.budget_then or _DEFAULT_ESCALATION
        within = p.verify_within_s or 0.0
        host = cause.host if cause is not None else target.split("/")[0]
        evidence = self._verify_evidence(p, cid, target, within, cause, seen, failed)
        why = (f"{evidence['found']}: {evidence['checked']} cannot follow" if failed is not None
               else f"{evidence['checked']} not seen within {fmt(within)}; {evidence['found']}")
        at = _dt(t)
        if st.escalated:  # this episode was escalated already: record, do not repeat
            data = events.VerifyFailed(
                playbook=name, command_id=cid, target=target, within_s=within, escalation=None,
                detail=f"{why}; already escalated as {st.escalated}, not again until the "
                       "condition clears or a fix is verified")
            self._decision(data, events.derive_id("verify_failed", cid), host, at)
            return
        data = events.VerifyFailed(
            playbook=name, command_id=cid, target=target, within_s=within,
            escalation=escalation.action, detail=f"{why}; escalating with {escalation.action}")
        self._decision(data, events.derive_id("verify_failed", cid), host, at)
        if cause is None and escalation is not _DEFAULT_ESCALATION:
            escalation = _DEFAULT_ESCALATION  # its templates need the cause event
        ecid = events.derive_id("command", name, "verify", cid)
        st.escalated = ecid
        self._command(p, escalation, cause, ecid, [cause.id] if cause is not None else [],
                      target, host, at, f"{VERIFY_REASON} {cid} failed: {why}", escalation=True,
                      evidence={"verify": evidence})

    def _verify_evidence(self, p: Playbook, cid: str, target: str, within: float,
                         cause: Event | None, seen: Event | None, failed: Event | None
                         ) -> dict[str, Any]:
        """What a failed verify checked and what it found, for the escalation."""
        action = p.actions[0].action if p.actions else ""
        if p.verify_event:
            checked = f"{p.verify_event} for {cid}" if p.verify_event in _RESULTS else \
                f"{p.verify_event} for {target}"
            found = f"no {p.verify_event} after {action}"
        else:
            checked = f"condition_cleared of {'/'.join(p.on)} for {target}"
            found = (f"{seen.type} still reported at {seen.time.isoformat()}" if seen is not None
                     else f"no condition_cleared after {action}")
        if failed is not None:
            found = f"{action} failed: {getattr(failed.data, 'reason', '')}"
        out: dict[str, Any] = {"command_id": cid, "action": action, "target": target,
                               "within_s": within, "checked": checked, "found": found}
        if cause is not None:
            out["cause"] = {"event_id": cause.id, "type": cause.type,
                            "time": cause.time.isoformat(), "data": msgspec.to_builtins(cause.data)}
        if failed is not None:
            out["result"] = {"event_id": failed.id, "type": failed.type,
                             "time": failed.time.isoformat(), "data": msgspec.to_builtins(failed.data)}
        if seen is not None:
            out["latest"] = {"event_id": seen.id, "type": seen.type, "time": seen.time.isoformat(),
                             "data": msgspec.to_builtins(seen.data)}
        return out


def fmt(seconds: float) -> str:
    """A duration for messages: `0s`, `90s` as `90s`, `3600` as `1h`."""
    return "0s" if seconds <= 0 else format_duration(seconds)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
