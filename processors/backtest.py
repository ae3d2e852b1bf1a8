"""`grace playbooks test`: replay events through playbooks, no side effects.

Virtual time comes from the events' timestamps: before each event the matcher
ticks to its time, so verify deadlines and timers fire as they would have.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from grace import events
from grace.errors import EventError
from grace.events import Event
from processors.matcher import Matcher
from processors.model import Playbook


@dataclass
class Outcome:
    """What a replay decided: every command and decision, plus lines that did not decode."""

    emitted: list[Event] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    events: int = 0

    @property
    def commands(self) -> list[Event]:
        return [e for e in self.emitted if e.data.CATEGORY == "command"]

    @property
    def suppressed(self) -> list[Event]:
        return [e for e in self.emitted if e.type == "decision_suppressed"]

    @property
    def observed(self) -> list[Event]:
        return [e for e in self.emitted if e.type == "decision_observed"]

    @property
    def approvals(self) -> list[Event]:
        return [e for e in self.emitted if e.type == "approval_requested"]


def read_jsonl(path: Path, outcome: Outcome) -> Iterator[Event]:
    """Events of a JSON-lines file (CloudEvents, one per line); bad lines are noted."""
    with path.open("rb") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield events.decode(line.strip())
            except EventError as exc:
                outcome.bad_lines.append(f"{path}:{no}: {exc.reason}")


def replay(playbooks: Iterable[Playbook], evs: Iterable[Event], outcome: Outcome | None = None,
           host: str = "backtest") -> Outcome:
    """Run `evs` through a fresh matcher in virtual time; nothing is published."""
    out = outcome or Outcome()
    m = Matcher(playbooks, host=host, source=f"grace/{host}/backtest")
    last = None
    for ev in evs:
        t = ev.time.timestamp()
        m.tick(t)
        m.process(ev)
        out.events += 1
        last = t
        out.emitted.extend(m.take())
    if last is not None:
        m.expire(last + m.horizon_s + 1)  # deadlines still open at the end of the input
        out.emitted.extend(m.take())
    return out


def describe(ev: Event) -> dict[str, Any]:
    """One line of the report as plain data."""
    d = ev.data
    row: dict[str, Any] = {"time": ev.time.isoformat(), "host": ev.host, "type": ev.type}
    if isinstance(d, events.Command):
        row.update(playbook=d.playbook, action=d.TYPE, id=ev.id, reason=d.reason,
                   params={k: v for k, v in msgspec.to_builtins(d).items()
                           if k not in ("playbook", "cause_ids", "reason")})
    elif isinstance(d, (events.DecisionObserved, events.ApprovalRequested)):
        row.update(playbook=d.playbook, action=d.action, id=d.command_id, reason=d.reason,
                   params=d.params, target=d.target)
        if isinstance(d, events.ApprovalRequested):
            row["expires_at"] = d.expires_at.isoformat()
    elif isinstance(d, events.DecisionSuppressed):
        row.update(playbook=d.playbook, target=d.target, reason=d.reason, detail=d.detail)
    elif isinstance(d, (events.VerifyPassed, events.VerifyFailed)):
        row.update(playbook=d.playbook, target=d.target, command_id=d.command_id)
    return row


def report_lines(outcome: Outcome) -> list[str]:
    """A human-readable report: fired commands, then why others did not fire."""
    lines = []
    for ev in outcome.emitted:
        r = describe(ev)
        if ev.data.CATEGORY == "command":
            lines.append(f"{r['time']} FIRE     {r['playbook']}: {r['action']} on {r['host']} "
                         f"{r['params']}  ({r['reason']})")
        elif ev.type == "decision_observed":
            lines.append(f"{r['time']} OBSERVE  {r['playbook']}: would send {r['action']} on "
                         f"{r['host']} {r['params']}  ({r['reason']})")
        elif ev.type == "approval_requested":
            lines.append(f"{r['time']} APPROVE  {r['playbook']}: {r['action']} on {r['host']} "
                         f"{r['params']} waits for `grace approve {r['id']}` until "
                         f"{r['expires_at']}  ({r['reason']})")
        elif ev.type == "decision_suppressed":
            lines.append(f"{r['time']} SUPPRESS {r['playbook']}: {r['reason']} on {r['target']}"
                         f" ({r['detail']})")
        elif ev.type in ("verify_passed", "verify_failed"):
            lines.append(f"{r['time']} {ev.type.upper()} {r['playbook']} on {r['target']} "
                         f"(command {r['command_id']})")
    lines.extend(f"bad input: {b}" for b in outcome.bad_lines)
    lines.append(f"{outcome.events} events replayed: {len(outcome.commands)} commands would fire, "
                 f"{len(outcome.observed)} observed, {len(outcome.approvals)} would wait for "
                 f"approval, {len(outcome.suppressed)} suppressed")
    return lines
