"""The typed contract: every event, command and result Grace exchanges.

Wire format: CloudEvents 1.0 structured-mode JSON. The envelope's `type` is the
tag of a msgspec tagged union, so one decode validates envelope and data. New
fields get defaults; wire names never change (tests/test_schema_compat.py).

Each payload class below names its `type` and category; `Event` envelopes are
generated from them (`EVENT_CLASSES`). Build events with `make_event()`.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal, Union

import msgspec

SPECVERSION = "1.0"
MAX_PAYLOAD = 1024 * 1024  # NATS' default max_payload; larger events are rejected


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every event's `data`."""

    TYPE: ClassVar[str]
    CATEGORY: ClassVar[str]


# ---------------------------------------------------------------- triggers


class Trigger(Payload, frozen=True, kw_only=True):
    """A finding of a producer. KEY_FIELDS identify the thing it is about (one
    finding per key at a time; `condition_cleared` carries the same key)."""

    CATEGORY: ClassVar[str] = "trigger"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ()
    PROBLEM: ClassVar[bool] = True  # False: news that is not a problem (it is never an issue)
    trigger: str = ""  # the producer that found it
    severity: Literal["info", "warning", "critical"] = "warning"


class KernelHeartbeatGap(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "kernel_heartbeat_gap"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('kernel', 'instance')
    kernel: str
    reason: Literal["heartbeat_gap", "process_gone"] = "heartbeat_gap"
    last_seen: datetime | None = None
    gap_s: float | None = None
    timeout_s: float = 0.0
    pid: int | None = None
    instance: int | None = None  # index within the kernel's pool; None: the whole kernel
    signal: Literal["heartbeat", "health_url", "process"] = "heartbeat"  # what the gap is of


class QueueBacklog(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "queue_backlog"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('kernel',)
    kernel: str
    stream: str
    consumer: str
    pending: int
    ack_pending: int
    backlog: int
    threshold: int


class QueueBacklogLow(Trigger, frozen=True, kw_only=True):
    """A pool's backlog is at or below `queue.low_backlog` while it runs more than `pool.min`
    workers: one can be given back (the shipped playbook scales down by one)."""

    TYPE: ClassVar[str] = "queue_backlog_low"
    PROBLEM: ClassVar[bool] = False  # spare capacity, not a fault
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('kernel',)
    kernel: str
    stream: str
    consumer: str
    backlog: int
    threshold: int  # queue.low_backlog
    workers: int  # running processes of the pool
    min_workers: int  # pool.min


class LatencySpike(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "latency_spike"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('kernel',)
    kernel: str
    url: str
    p95_ms: float
    threshold_ms: float
    samples: int
    timeouts: int = 0  # samples in the window that timed out (counted at the time waited)


class ConfigDrift(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "config_drift"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('path',)
    path: str
    expected_sha256: str
    actual_sha256: str | None  # None: the file is missing
    reason: str = "hash mismatch"


class DependencyRegression(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dependency_regression"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('package',)
    package: str
    locked_version: str
    installed_version: str | None
    change: Literal["missing", "downgraded", "changed"]


class VulnerableDependency(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "vulnerable_dependency"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('package', 'advisory_id')
    package: str
    installed_version: str
    advisory_id: str
    aliases: list[str] = []
    fixed_version: str | None = None
    summary: str = ""


class ModelCorruption(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "model_corruption"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('path',)
    path: str
    expected_sha256: str | None
    actual_sha256: str | None
    reason: str


class CpuSaturation(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "cpu_saturation"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('scope', 'kernel', 'instance')
    scope: Literal["system", "kernel"]
    kernel: str | None = None
    percent: float
    threshold: float
    samples: int
    instance: int | None = None


class MemoryPressure(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "memory_pressure"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('scope', 'kernel', 'instance')
    scope: Literal["system", "kernel"]
    kernel: str | None = None
    percent: float
    threshold: float
    samples: int
    rss_mb: float | None = None
    instance: int | None = None
    # the instance holding the memory (restarting it frees it): largest RSS over its
    # max_rss_mb, else the largest non-critical instance; "" when no kernel qualifies
    culprit_kernel: str = ""
    culprit_instance: int | None = None
    culprit_rss_mb: float | None = None


class CodeChanged(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "code_changed"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('root',)
    root: str
    previous_hash: str | None
    current_hash: str
    changed: list[str] = []


class SyntaxErrorFound(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "syntax_error"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('path',)
    path: str
    line: int | None
    column: int | None = None
    message: str


class RepeatedErrorPattern(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "repeated_error_pattern"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('log', 'template')
    log: str
    template: str
    count: int
    window_s: float
    samples: list[str] = []
    files: list[str] = []  # code files its lines or tracebacks name, under code.root (relative to it)


class TelemetryDrift(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "telemetry_drift"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('metric', 'kernel')
    metric: str
    kernel: str | None = None
    statistic: Literal["psi", "ks"] = "psi"
    value: float
    threshold: float
    baseline_n: int
    recent_n: int
    # the evidence: p95 (nearest rank) of the compared samples then and now
    baseline_p95: float | None = None
    recent_p95: float | None = None


class SchemaDrift(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "schema_drift"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('kernel',)
    kernel: str
    url: str
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []


class FailureRiskPredicted(Trigger, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "failure_risk_predicted"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('resource', 'kernel')
    resource: str  # memory, disk, error_rate
    kernel: str | None = None
    eta_s: float
    confidence: float  # 0..1 (r^2 of the fit)
    current: float
    limit: float
    slope_per_s: float
    files: list[str] = []


class ConditionCleared(Trigger, frozen=True, kw_only=True):
    """A finding reported in an earlier cycle is gone: recoveries and verify use it."""

    TYPE: ClassVar[str] = "condition_cleared"
    PROBLEM: ClassVar[bool] = False  # it ends a problem
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('condition',)
    condition: str  # the event type that no longer holds
    key: dict[str, str] = {}  # identifying fields, e.g. {"path": "models/m.pkl"}
    active_s: float | None = None
    severity: Literal["info", "warning", "critical"] = "info"


# ---------------------------------------------------------------- checks


class CheckCompleted(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "check_completed"
    CATEGORY: ClassVar[str] = "check"
    trigger: str
    duration_ms: float
    outcome: Literal["ok", "findings", "skipped"]
    findings: int = 0
    reason: str = ""  # why skipped; else notes on parts not judged (said once, e.g. not JSON)
    cycle: int = 0
    stats: dict[str, float] = {}  # what the check covered, e.g. {"dependencies_tracked": 89}


class CheckFailed(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "check_failed"
    CATEGORY: ClassVar[str] = "check"
    trigger: str
    duration_ms: float
    error: str
    timed_out: bool = False
    backoff_s: float = 0.0
    cycle: int = 0


class MonitorStarted(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "monitor_started"
    CATEGORY: ClassVar[str] = "check"
    interval_s: float
    triggers: list[str]


class MonitorStopped(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "monitor_stopped"
    CATEGORY: ClassVar[str] = "check"
    reason: str = "shutdown"


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
                    "approval_pending", "rate_limit", "blast_radius", "loop_guard"]
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


# ---------------------------------------------------------------- kernels


class KernelEvent(Payload, frozen=True, kw_only=True):
    CATEGORY: ClassVar[str] = "kernel"
    kernel: str
    instance: int = 0  # index within a worker pool


class KernelStarted(KernelEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "kernel_started"
    pid: int
    critical: bool = False


class KernelExited(KernelEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "kernel_exited"
    pid: int
    code: int | None
    expected: bool = False  # stopped by Grace on purpose


class KernelRestarted(KernelEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "kernel_restarted"
    pid: int
    attempt: int = 1


class KernelSuspended(KernelEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "kernel_suspended"
    pids: list[int] = []


class KernelResumed(KernelEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "kernel_resumed"
    pids: list[int] = []
    reason: str = ""  # e.g. "shed.max_s reached" when the actuator resumed it by itself


class KernelScaled(KernelEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "kernel_scaled"
    from_count: int
    to_count: int


class KernelHeld(KernelEvent, frozen=True, kw_only=True):
    """The supervisor leaves an instance stopped (not started at boot, not restarted after
    it exited) because an operator's hold covers it; it starts once the hold ends."""

    TYPE: ClassVar[str] = "kernel_held"
    hold_id: str
    target: str  # the hold's target, e.g. kernel:api or kernel:api/0 or host:web-1
    until: datetime
    by: str = ""
    pid: int = 0  # the process that exited; 0: never started while held (boot)


# ---------------------------------------------------------------- snapshots


class SnapshotPolicy(Payload, frozen=True, kw_only=True):
    """The snapshot hygiene in force, emitted when the actuator starts it."""

    TYPE: ClassVar[str] = "snapshot_policy"
    CATEGORY: ClassVar[str] = "snapshot"
    dir: str
    every_s: float
    max_age_s: float
    keep: int


class SnapshotDue(Payload, frozen=True, kw_only=True):
    """The snapshot schedule (`snapshots.every`) reached a new slot: time to refresh snapshots.

    Emitted by the producers once per slot (floor(time / every_s)); the shipped
    playbook `snapshot_hygiene` answers it with take_snapshot."""

    TYPE: ClassVar[str] = "snapshot_due"
    CATEGORY: ClassVar[str] = "snapshot"
    every_s: float
    slot: int


class SnapshotTaken(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "snapshot_taken"
    CATEGORY: ClassVar[str] = "snapshot"
    path: str
    snapshot: str
    kind: Literal["model", "config"]
    sha256: str
    size: int


class SnapshotRefused(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "snapshot_refused"
    CATEGORY: ClassVar[str] = "snapshot"
    path: str
    kind: Literal["model", "config"]
    reason: str


class SnapshotPruned(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "snapshot_pruned"
    CATEGORY: ClassVar[str] = "snapshot"
    path: str
    snapshot: str
    kind: Literal["model", "config"]
    reason: Literal["age", "count"]


class SnapshotAccepted(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "snapshot_accepted"
    CATEGORY: ClassVar[str] = "snapshot"
    path: str
    kind: Literal["model", "config"]
    sha256: str
    previous_sha256: str | None = None


class SnapshotRestored(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "snapshot_restored"
    CATEGORY: ClassVar[str] = "snapshot"
    path: str
    snapshot: str
    kind: Literal["model", "config"]
    sha256: str


# ---------------------------------------------------------------- boot and stages


class BootPhase(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "boot_phase"
    CATEGORY: ClassVar[str] = "boot"
    phase: int  # 1..7
    name: str
    status: Literal["started", "completed", "failed"]
    detail: str = ""


class SystemStopped(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "system_stopped"
    CATEGORY: ClassVar[str] = "boot"
    reason: str = "shutdown"


class StageHeartbeatGap(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "stage_heartbeat_gap"
    CATEGORY: ClassVar[str] = "stage"
    stage: str
    last_seen: datetime | None = None
    timeout_s: float


class WatchdogStarted(Payload, frozen=True, kw_only=True):
    """A watchdog tier came up (trigger monitor, kernel supervisor, stage watchdog, ...)."""

    TYPE: ClassVar[str] = "watchdog_started"
    CATEGORY: ClassVar[str] = "stage"
    name: str
    tier: int  # 1 = closest to the services; higher tiers watch the lower ones
    interval_s: float = 0.0


class WatchdogStopped(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "watchdog_stopped"
    CATEGORY: ClassVar[str] = "stage"
    name: str
    tier: int
    reason: str = "shutdown"


class StageRestarted(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "stage_restarted"
    CATEGORY: ClassVar[str] = "stage"
    stage: str
    exit_code: int | None
    attempt: int


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


# ---------------------------------------------------------------- heartbeats (core NATS, not the log)


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """Sent on `grace.heartbeat.<host>.<name>`; only gaps become events."""

    name: str
    kind: Literal["kernel", "stage", "monitor"] = "kernel"
    pid: int = 0
    time: datetime
    seq: int = 0
    instance: int = 0  # index within the kernel's pool (GRACE_INSTANCE)


# ---------------------------------------------------------------- envelope


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    """CloudEvents 1.0 structured-mode envelope; `type` is the union's tag."""

    specversion: Literal["1.0"]
    id: str
    source: str
    time: datetime
    subject: str | None = None  # omitted when None: CloudEvents forbids null attributes
    datacontenttype: Literal["application/json"]
    host: str  # CloudEvents extension attribute: the host the event is about
    data: Payload

    @property
    def type(self) -> str:
        return self.data.TYPE

    @property
    def category(self) -> str:
        return self.data.CATEGORY


class Envelope(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The envelope alone with raw data: for stages that keep unknown types.

    gc=False: it holds only text, a time and raw bytes, so it can never be part of a
    reference cycle; not tracking it makes decoding ~20% faster (a replay decodes millions).
    """

    specversion: str
    id: str
    source: str = ""
    type: str
    time: datetime
    subject: str | None = None
    host: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


def _payload_classes() -> list[type[Payload]]:
    found: list[type[Payload]] = []
    stack: list[type[Payload]] = [Payload]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if "TYPE" in sub.__dict__:
                found.append(sub)
    return sorted(found, key=lambda c: (c.CATEGORY, c.TYPE))


PAYLOAD_CLASSES: dict[str, type[Payload]] = {c.TYPE: c for c in _payload_classes()}
EVENT_CLASSES: dict[str, type[Event]] = {
    name: msgspec.defstruct(  # type: ignore[misc]
        f"{cls.__name__}Event", [("data", cls)], bases=(Event,), tag=name, frozen=True,
        kw_only=True, module=__name__,
    )
    for name, cls in PAYLOAD_CLASSES.items()
}
COMMAND_TYPES = frozenset(t for t, c in PAYLOAD_CLASSES.items() if issubclass(c, Command))
TRIGGER_TYPES = frozenset(t for t, c in PAYLOAD_CLASSES.items() if issubclass(c, Trigger))
# the findings that report a problem: counted as issues on the dashboard, each routed or record-only
PROBLEM_TYPES = frozenset(t for t in TRIGGER_TYPES if getattr(PAYLOAD_CLASSES[t], "PROBLEM"))

AnyEvent = Union[tuple(EVENT_CLASSES.values())]  # type: ignore[valid-type]

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(AnyEvent)
_envelope_decoder = msgspec.json.Decoder(Envelope)


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(timezone.utc)


def finding_key(data: Trigger) -> dict[str, str]:
    """The identifying fields of a finding, as strings ('' for None)."""
    out = {}
    for name in data.KEY_FIELDS:
        value = getattr(data, name)
        out[name] = "" if value is None else str(value)
    return out


def new_id() -> str:
    """A fresh random event id."""
    return uuid.uuid4().hex


def derive_id(*parts: object) -> str:
    """A deterministic id from `parts`: re-deriving it after a crash gives the same id."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode())
    return h.hexdigest()[:32]


def make_event(data: Payload, *, host: str, source: str, id: str | None = None,
               subject: str | None = None, time: datetime | None = None) -> Event:
    """Wrap `data` in its typed CloudEvents envelope."""
    cls = EVENT_CLASSES[data.TYPE]
    return cls(specversion="1.0", datacontenttype="application/json", id=id or new_id(), source=source, time=time or now(), subject=subject,
               host=host, data=data)


def encode(event: Event) -> bytes:
    """CloudEvents structured-mode JSON bytes."""
    return _encoder.encode(event)


def decode(raw: bytes) -> Event:
    """Decode and validate one event; raise EventError with the reason and raw bytes."""
    from grace.errors import EventError

    if len(raw) > MAX_PAYLOAD:
        raise EventError(f"payload of {len(raw)} bytes is over the {MAX_PAYLOAD}-byte limit", raw)
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        reason = str(exc)
        if "at `$.type`" in reason:
            reason = f"unknown event type: {reason}"
        raise EventError(reason, raw) from None
    except msgspec.DecodeError as exc:
        raise EventError(f"not valid JSON: {exc}", raw) from None
    except UnicodeDecodeError as exc:
        raise EventError(f"invalid UTF-8 in a string: {exc}", raw) from None


def decode_envelope(raw: bytes) -> Envelope:
    """Decode only the envelope (data kept raw); raise EventError."""
    from grace.errors import EventError

    try:
        return _envelope_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"not a CloudEvents envelope: {exc}", raw) from None


def payload_from_dict(type_name: str, data: dict[str, Any]) -> Payload:
    """Validate a plain dict as the payload of `type_name` (CLI publish, playbook tests)."""
    from grace.errors import EventError

    cls = PAYLOAD_CLASSES.get(type_name)
    if cls is None:
        known = ", ".join(sorted(PAYLOAD_CLASSES))
        raise EventError(f"unknown event type {type_name!r}; known types: {known}")
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise EventError(f"invalid data for {type_name}: {exc}") from None


def json_schema() -> dict[str, Any]:
    """JSON Schema of every event type (the union of envelopes)."""
    _, components = msgspec.json.schema_components(list(EVENT_CLASSES.values()))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Grace events (CloudEvents 1.0 structured mode)",
        "anyOf": [{"$ref": f"#/$defs/{c.__name__}"} for c in EVENT_CLASSES.values()],
        "$defs": components,
    }
