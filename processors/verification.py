"""Verification in the matcher: a fix must show (condition_cleared, or the verify event)
within its window, else `verify_failed` and one escalation per episode, with evidence.

A part of `Matcher` (see matcher_base.py for what it uses of it).
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from typing import Any

from grace import events
from grace.durations import fmt
from grace.events import Event
from processors.evidence import verify_evidence
from processors.matcher_base import MatcherBase
from processors.model import DEFAULT_ESCALATION, Playbook
from processors.targets import Pending, TargetState

VERIFY_REASON = "verify of"  # how a verify escalation's reason starts (a restart learns it back)


class VerifyMixin(MatcherBase):
    def _await_proof(self, p: Playbook, st: TargetState, target: str, cid: str, t: float,
                     cause: Event | None) -> None:
        assert p.verify_within_s
        st.verify = Pending(cid, t + p.verify_within_s, cause)
        heapq.heappush(self.deadlines, (t + p.verify_within_s, cid, p.name, target))
        self.due(t + p.verify_within_s)
        self.verifying[cid] = (p.name, target)

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
        escalation = p.escalate or p.budget_then or DEFAULT_ESCALATION
        within = p.verify_within_s or 0.0
        host = cause.host if cause is not None else target.split("/")[0]
        evidence = verify_evidence(p, cid, target, within, cause, seen, failed)
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
        if cause is None and escalation is not DEFAULT_ESCALATION:
            escalation = DEFAULT_ESCALATION  # its templates need the cause event
        ecid = events.derive_id("command", name, "verify", cid)
        st.escalated = ecid
        self._command(p, escalation, cause, ecid, [cause.id] if cause is not None else [],
                      target, host, at, f"{VERIFY_REASON} {cid} failed: {why}", escalation=True,
                      evidence={"verify": evidence})


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
