"""Commands for the actuators, their results, and coding-agent tasks."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from grace.events.base import Payload

# ---------------------------------------------------------------- commands


class Command(Payload, frozen=True, kw_only=True):
    """Base of every command's data; one subclass per action."""

    CATEGORY: ClassVar[str] = "command"
    playbook: str = ""
    cause_ids: list[str] = []
    reason: str = ""


class ScaleWorkers(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "scale_workers"
    kernel: str
    by: int = 0  # relative change, clamped to the pool's min/max
    to: int | None = None  # absolute target; wins over `by`


class ShedLoad(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "shed_load"
    kernels: list[str] = []  # empty: every non-critical kernel


class ResumeLoad(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "resume_load"
    kernels: list[str] = []  # empty: every suspended kernel


class ClearCaches(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "clear_caches"
    paths: list[str] = []  # empty: every configured cache dir


class RestoreModelWeights(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "restore_model_weights"
    path: str


class RestoreFromSnapshot(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "restore_from_snapshot"
    path: str


class RestartKernel(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "restart_kernel"
    kernel: str
    instance: int | None = None  # one instance of the pool; None: every instance


class EscalateToCodingAgent(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "escalate_to_coding_agent"
    summary: str
    files: list[str] = []
    evidence: dict[str, Any] = {}
    line: int | None = None  # where in files[0] (a syntax error's line)
    kernel: str | None = None  # the kernel it is about: its config `code:` files are added


class ReviewCode(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "review_code"
    files: list[str] = []
    summary: str = ""
    kernel: str | None = None  # the kernel it is about: its config `code:` files are added


class CreateUpgradePr(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "create_upgrade_pr"
    package: str
    version: str | None  # the fixed version; None is refused with a reason
    advisory_id: str = ""


class TakeSnapshot(Command, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "take_snapshot"
    paths: list[str] = []  # empty: every protected file


class Notify(Command, frozen=True, kw_only=True):
    """Tell people: post `text` to a sink of config `notify` (cloudevents, slack, pagerduty)."""

    TYPE: ClassVar[str] = "notify"
    sink: str = "default"  # a sink's name; `default`: the sink named so, else the first one
    text: str
    target: str = ""  # what it is about (the finding's target): PagerDuty's dedup_key
    severity: Literal["critical", "error", "warning", "info"] = "warning"
    event_action: Literal["trigger", "resolve"] = "trigger"  # pagerduty: open or close the incident


# ---------------------------------------------------------------- results


class Result(Payload, frozen=True, kw_only=True):
    CATEGORY: ClassVar[str] = "result"
    command_id: str
    action: str
    target: str = ""
    playbook: str = ""
    duration_ms: float = 0.0
    details: dict[str, Any] = {}


class CommandSucceeded(Result, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "command_succeeded"


class CommandFailed(Result, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "command_failed"
    reason: str


class CommandSkipped(Result, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "command_skipped"
    reason: Literal["duplicate", "not_for_this_host", "superseded"] = "duplicate"

# ---------------------------------------------------------------- coding-agent tasks


class FixTask(Payload, frozen=True, kw_only=True):
    """A durable task on GRACE_TASKS for any coding agent (and Grace's own handler)."""

    TYPE: ClassVar[str] = "fix_task"
    CATEGORY: ClassVar[str] = "task"
    task_id: str
    kind: Literal["fix", "review"]
    summary: str
    files: list[str] = []
    evidence: dict[str, Any] = {}
    playbook: str = ""
    command_id: str = ""
    line: int | None = None  # where in files[0], when the finding names a line


class FixReport(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "fix_report"
    CATEGORY: ClassVar[str] = "task"
    task_id: str
    kind: Literal["fix", "review"]
    outcome: Literal["passed", "failed", "error", "unverified"]  # unverified: nothing was checked
    checks: list[dict[str, Any]] = []
    summary: str = ""
