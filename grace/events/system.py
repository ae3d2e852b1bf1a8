"""Kernels, snapshots, boot phases and stages: what Grace itself did and saw."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from grace.events.base import Payload

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


# `grace up`'s phases: 3 is published by the producers, 4 by the actuator, the rest by `up`
BOOT_PHASES = ("config validated", "bus ready", "pre-boot code diff", "snapshots verified",
               "kernels started", "warm-up", "monitoring active")


class BootPhase(Payload, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "boot_phase"
    CATEGORY: ClassVar[str] = "boot"
    phase: int  # 1..7
    name: str
    status: Literal["started", "completed", "failed"]
    detail: str = ""
    blocks: bool = False  # a failed phase that forbids going on: `grace up` stops, no kernel starts


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


class ProducerBufferOverflow(Payload, frozen=True, kw_only=True):
    """While NATS was out of reach the producers' outbox (nats.outbox_max events) was full:
    `refused` events made between `first_refused` and `last_refused` never reached the log.
    Published once the link is back."""

    TYPE: ClassVar[str] = "producer_buffer_overflow"
    CATEGORY: ClassVar[str] = "stage"
    refused: int
    findings_refused: int = 0  # of them finding_appeared / finding_persisted / condition_cleared
    capacity: int
    first_refused: datetime
    last_refused: datetime


class StageRestarted(Payload, frozen=True, kw_only=True):
    """The stage watchdog restarted a stage that exited; `attempt` counts restarts in this run."""

    TYPE: ClassVar[str] = "stage_restarted"
    CATEGORY: ClassVar[str] = "stage"
    stage: str
    exit_code: int | None
    attempt: int
    last_error: str = ""  # the last line the stage wrote to its log before it exited
    recent: int = 0  # restarts of this stage within the crash-loop window, this one included
