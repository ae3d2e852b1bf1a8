"""What the matcher's parts (verification.py, people.py) use of the matcher: its state and
how it emits, declared once; `processors.matcher.Matcher` creates and defines them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from grace import events
from grace.events import Event
from grace.holds import Hold, HoldBook
from processors.approvals import Approvals
from processors.gates import Gate, Proposal, Refusal, Settings
from processors.model import Action, Playbook
from processors.targets import TargetState


class MatcherBase:
    playbooks: dict[str, Playbook]
    state: dict[str, dict[str, TargetState]]
    settings: Settings
    gates: list[Gate]
    issued: dict[str, float]
    emit: bool
    counts: dict[str, int]
    holds: HoldBook
    approvals: Approvals
    answered: set[str]  # approvals granted, denied or expired: never again
    unrecorded: dict[str, Hold]  # holds a rebuild saw run out, not recorded yet
    deadlines: list[tuple[float, str, str, str]]  # (deadline, command, playbook, target)
    verifying: dict[str, tuple[str, str]]  # command awaiting proof -> (playbook, target)
    cleared_watch: dict[str, list[Playbook]]
    verify_watch: dict[str, list[Playbook]]

    def _command(self, p: Playbook, a: Action, ev: Event | None, cid: str, cause_ids: list[str],
                 target: str, host: str, at: datetime, reason: str, escalation: bool = False,
                 evidence: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                 observe: bool = False, approved_by: str | None = None) -> None:
        raise NotImplementedError

    def _decision(self, data: events.Payload, id: str, host: str, at: datetime) -> None:
        raise NotImplementedError

    def _refuse(self, prop: Proposal, st: TargetState, r: Refusal) -> None:
        raise NotImplementedError

    def due(self, at: float) -> None:
        raise NotImplementedError
