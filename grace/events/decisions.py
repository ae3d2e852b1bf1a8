"""The processor's decisions, and people's (holds, approvals)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from grace.events.base import Payload

# ---------------------------------------------------------------- decisions


class Decided(Payload, frozen=True, kw_only=True):
    """A command a playbook decided on: issued, observed, or waiting for approval."""

    CATEGORY: ClassVar[str] = "decision"
    playbook: str
    command_id: str
    action: str
    target: str
    cause_ids: list[str]
    route: str = "self_healing"
    reason: str = ""
    params: dict[str, Any] = {}
    index: int = 0  # position of the action in the playbook's `do` list
    # the playbook's limits when it decided (so the log alone says budget left, cooldown until)
    cooldown_s: float | None = None
    budget_max: int | None = None
    budget_per_s: float | None = None


class CommandIssued(Decided, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "command_issued"
    escalation: bool = False  # a budget `then` or a verify-failure escalation: not budgeted
    approved_by: str | None = None  # an `approve`-mode command: who approved it


class DecisionSuppressed(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "decision_suppressed"
    CATEGORY: ClassVar[str] = "decision"
    playbook: str
    reason: Literal["cooldown", "budget_spent", "not_held_long_enough", "count_not_reached",
                    "verify_pending", "disabled", "duplicate", "escalated", "hold",
                    "approval_pending", "rate_limit", "blast_radius", "loop_guard",
                    "no_sink"]
    target: str
    cause_ids: list[str]
    detail: str = ""
    hold_id: str | None = None  # reason `hold`: the hold that covers the target


class DecisionObserved(Decided, frozen=True, kw_only=True):
    """What an `observe`-mode playbook would have sent (shaped like command_issued); nothing
    was sent. Cooldowns and budgets advance as if it had acted."""

    TYPE: ClassVar[str] = "decision_observed"
    escalation: bool = False


class ApprovalRequested(Decided, frozen=True, kw_only=True):
    """An `approve`-mode playbook matched: the command waits for `grace approve` (or denial,
    or `expires_at`). Nothing is sent before approval_granted."""

    TYPE: ClassVar[str] = "approval_requested"
    within_s: float
    expires_at: datetime


class ApprovalExpired(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "approval_expired"
    CATEGORY: ClassVar[str] = "decision"
    playbook: str
    command_id: str
    target: str
    escalation: str | None = None  # the playbook's `escalate` action, run once; None: none
    detail: str = ""


class VerifyPassed(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "verify_passed"
    CATEGORY: ClassVar[str] = "decision"
    playbook: str
    command_id: str
    target: str
    evidence_id: str = ""


class VerifyFailed(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "verify_failed"
    CATEGORY: ClassVar[str] = "decision"
    playbook: str
    command_id: str
    target: str
    within_s: float
    escalation: str | None = None
    detail: str = ""

# ---------------------------------------------------------------- operators


class OperatorAction(Payload, frozen=True, kw_only=True):
    """A person's decision, recorded in the log like everything else."""

    CATEGORY: ClassVar[str] = "operator"
    by: str  # who: --by, default the OS user ("grace" for an expiry)
    via: Literal["cli", "http", "expiry"] = "cli"  # from where


class HoldAdded(OperatorAction, frozen=True, kw_only=True):
    """Grace leaves `target` alone until `until`: playbook matches on it are suppressed
    (reason `hold`) and a held kernel is not restarted by its supervisor."""

    TYPE: ClassVar[str] = "hold_added"
    hold_id: str
    target: str  # path:<protected path> | kernel:<name>[/<instance>] | playbook:<name> | host:<host>
    until: datetime
    for_s: float
    reason: str


class HoldReleased(OperatorAction, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "hold_released"
    hold_id: str
    target: str
    reason: Literal["released", "expired"] = "released"


class ApprovalGranted(OperatorAction, frozen=True, kw_only=True):
    """`grace approve`: the pending command is issued once, with its requested id."""

    TYPE: ClassVar[str] = "approval_granted"
    command_id: str


class ApprovalDenied(OperatorAction, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "approval_denied"
    command_id: str
    reason: str
