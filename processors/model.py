"""Compiled playbooks: what the matcher runs (built by `processors.validate`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import msgspec

from grace import events
from processors.conditions import Getter, Pred

ESCALATE = "escalate_to_coding_agent"


@dataclass(frozen=True)
class Action:
    """One action of `do` (or an escalation): the command class and its params renderer."""

    action: str
    cls: type[events.Command]
    render: Callable[[Any], dict[str, Any]]  # event -> params
    index: int = 0
    default_summary: bool = False  # escalate_to_coding_agent without a summary: Grace writes one

    def params(self, ev: events.Event | None, summary: str) -> dict[str, Any]:
        """Params for this action, rendered from `ev` (None: timer playbooks)."""
        out = self.render(ev)
        if self.default_summary:
            out.setdefault("summary", summary)
            if ev is not None:
                out.setdefault("evidence", {"event_id": ev.id, "type": ev.type, "host": ev.host,
                                            "data": msgspec.to_builtins(ev.data)})
        return out


@dataclass
class Playbook:
    """One validated playbook, compiled to closures."""

    name: str
    file: str
    line: int
    on: tuple[str, ...] = ()
    every_s: float | None = None
    pred: Pred = lambda _ev: True
    group_fields: tuple[str, ...] = ()
    group_getters: tuple[Getter, ...] = ()
    for_s: float | None = None
    count: int | None = None
    within_s: float | None = None
    actions: tuple[Action, ...] = ()
    cooldown_s: float | None = None
    budget_max: int | None = None
    budget_per_s: float | None = None
    budget_then: Action | None = None
    verify_within_s: float | None = None
    verify_event: str | None = None
    verify_pred: Pred | None = None
    escalate: Action | None = None
    route: str = "self_healing"
    enabled: bool = True
    description: str = ""
    mode: str = "act"  # act | observe | approve
    approve_within_s: float = 900.0

    @cached_property  # asked on every match (the no_sink gate); actions never change
    def notifies(self) -> bool:
        """Whether any of its actions is `notify`."""
        return any(a.action == "notify" for a in self.actions)

    @property
    def notifies_only(self) -> bool:
        """Every action tells people and changes nothing: it may react to decisions."""
        return bool(self.actions) and all(a.action == "notify" for a in self.actions)

    @property
    def horizon_s(self) -> float:
        """How far back the log must be read to rebuild this playbook's state."""
        return max(self.for_s or 0.0, self.within_s or 0.0, self.cooldown_s or 0.0,
                   self.budget_per_s or 0.0, self.verify_within_s or 0.0, self.every_s or 0.0,
                   self.approve_within_s if self.mode == "approve" else 0.0)

    def target(self, ev: events.Event) -> str:
        """The per-target state key: the host plus the group_by values."""
        if not self.group_getters:
            return ev.host
        parts = [ev.host]
        for name, get in zip(self.group_fields, self.group_getters, strict=True):
            value = get(ev)
            parts.append(f"{name}={'' if value is None else value}")
        return "/".join(parts)


# the escalation when a playbook names none (verify failure, expired approval, a safety rail)
DEFAULT_ESCALATION = Action(ESCALATE, events.EscalateToCodingAgent, lambda _ev: {}, 0, True)
