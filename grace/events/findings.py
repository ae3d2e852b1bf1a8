"""Findings of the producers (triggers) and their check records."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from grace.events.base import Payload

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


class ExternalAlert(Trigger, frozen=True, kw_only=True):
    """An alert another system raised (Alertmanager's webhook, `POST /hooks/alertmanager`).

    One event per alert and status; its id derives from fingerprint + startsAt + status, so
    Alertmanager's re-sends and its HA peers' copies are stored once. A resolved alert is
    followed by a `condition_cleared` with the same key, so `verify:` works on alerts.
    """

    TYPE: ClassVar[str] = "external_alert"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ('alertname', 'fingerprint')
    status: Literal["firing", "resolved"]
    alertname: str = ""  # labels.alertname
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    fingerprint: str  # Alertmanager's; a hash of the sorted labels when the sender gave none
    starts_at: datetime | None = None
    ends_at: datetime | None = None  # None while firing (Alertmanager sends year 1)
    generator_url: str = ""
    receiver: str = ""
    group_key: str = ""
    common_labels: dict[str, str] = {}
    external_url: str = ""
    truncated_alerts: int = 0  # alerts Alertmanager left out of the request (max_alerts)


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
