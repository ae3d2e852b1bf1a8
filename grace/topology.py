"""The NATS topology, declared once: streams, subjects, consumers, KV buckets.

Every subject string Grace uses is built here; no other module formats one.
Who publishes and who consumes what (EVENT_PUBLISHERS below is the authority on publishing;
grace.auth derives each role's NATS permissions from it):

    producers   -> grace.events.trigger.* / check.* / stage.*      (GRACE_EVENTS)
    processors  <- GRACE_EVENTS (durable "processor")
                -> grace.events.decision.*  and  grace.commands.<host>.<action>
    actuators   <- GRACE_COMMANDS (durable "actuator-<host>", filter grace.commands.<host>.>)
                -> grace.events.result.* / kernel.* / snapshot.*   and  grace.tasks.<host>.<kind>
    operators   -> grace.events.operator.*  (holds, approvals: grace hold|approve|deny)
    projections <- GRACE_EVENTS (ephemeral, from the sequence stored with the rows)
    anyone      -> grace.rejected.<stage> (raw bytes + reason headers)
    kernels     -> grace.heartbeat.<host>.<name> (core NATS, never stored)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from grace.errors import TopologyConflict

EVENTS = "GRACE_EVENTS"
COMMANDS = "GRACE_COMMANDS"
REJECTED = "GRACE_REJECTED"
TASKS = "GRACE_TASKS"

EVENTS_ALL = "grace.events.>"
COMMANDS_ALL = "grace.commands.>"
REJECTED_ALL = "grace.rejected.>"
TASKS_ALL = "grace.tasks.>"
HEARTBEATS_ALL = "grace.heartbeat.>"

# KV buckets (JetStream streams named KV_<bucket>)
INTENTS_BUCKET = "grace_intents"  # actuators: command id -> intent/outcome, written before acting
STATE_BUCKET = "grace_state"  # producers: baselines, log offsets, last good tree hash
# processors: which partition fires the timer playbooks of a host (processors/lease.py); an entry
# not renewed for the TTL expires, and another partition takes the lease over
TIMER_LEASE_BUCKET = "grace_timer_lease"
TIMER_LEASE_TTL_S = 10.0

DUPLICATE_WINDOW_S = 120.0  # Nats-Msg-Id dedup window: a crashed stage re-publishes well within it

# headers on GRACE_REJECTED messages
H_REJECT_REASON = "Grace-Reject-Reason"
H_REJECT_STAGE = "Grace-Reject-Stage"
H_REJECT_SUBJECT = "Grace-Original-Subject"
H_REJECT_SEQ = "Grace-Original-Seq"


def event_subject(category: str, type_: str, host: str) -> str:
    return f"grace.events.{category}.{type_}.{host}"


def event_filter(category: str = "*", type_: str = "*", host: str = "*") -> str:
    return f"grace.events.{category}.{type_}.{host}"


def command_subject(host: str, action: str) -> str:
    return f"grace.commands.{host}.{action}"


def command_filter(host: str) -> str:
    return f"grace.commands.{host}.>"


def task_subject(host: str, kind: str) -> str:
    return f"grace.tasks.{host}.{kind}"


def rejected_subject(stage: str) -> str:
    return f"grace.rejected.{stage}"


def heartbeat_subject(host: str, name: str) -> str:
    return f"grace.heartbeat.{host}.{name}"


def heartbeat_publish(host: str = "*") -> str:
    """What a kernel on `host` may publish: its heartbeats, whatever the kernel's name."""
    return f"grace.heartbeat.{host}.>"


def heartbeat_filter(host: str = "*") -> str:
    return f"grace.heartbeat.{host}.*"


# --- who publishes what ---------------------------------------------------------------------
# One NATS user (a role) per kind of component; grace.auth turns this table into the permissions
# of `grace auth init`. "admin" is `grace up` (boot phases, the stage watchdog) and the operator's
# `grace events publish`; it may publish anything anyway.

# event category -> the one role that publishes it
EVENT_PUBLISHERS: dict[str, str] = {
    "trigger": "producer",
    "check": "producer",
    "decision": "processor",
    "command": "processor",  # on grace.commands.<host>.<action>, not the event log's subjects
    "result": "actuator",
    "kernel": "actuator",
    "snapshot": "actuator",
    "task": "actuator",  # fix_task on grace.tasks.<host>.<kind>, fix_report in the log
    "operator": "operator",  # holds, approvals, denials: people, through grace hold|approve|deny
    "boot": "admin",
    "stage": "admin",  # grace up's stage watchdog
}

# roles whose permissions are derived from this table (viewer and admin are fixed in grace.auth)
PIPELINE_ROLES: tuple[str, ...] = ("producer", "processor", "actuator", "operator", "projector")

# what a role publishes beyond the categories it owns: single event types of another role's
# category, and the KV bucket it writes
ROLE_EXTRA_SUBJECTS: dict[str, tuple[str, ...]] = {
    # snapshot_due: the schedule of snapshots.every (the actuator takes the copies); stage: the
    # monitor's own watchdog_started/stopped (tier 1)
    # boot_phase: boot phase 3 (`grace produce --boot-phase`)
    "producer": (event_filter("snapshot", "snapshot_due"), event_filter("stage"),
                 event_filter("boot", "boot_phase"), f"$KV.{STATE_BUCKET}.>"),
    # hold_released: the processor records a hold's expiry; the timer lease bucket
    "processor": (event_filter("operator", "hold_released"), f"$KV.{TIMER_LEASE_BUCKET}.>"),
    # stage: the kernel supervisor's watchdog_started/stopped (tier 2)
    # boot_phase: boot phase 4 (`grace act --boot-phase`)
    "actuator": (event_filter("stage"), event_filter("boot", "boot_phase"), f"$KV.{INTENTS_BUCKET}.>"),
    "operator": (),
    "projector": (),  # reads only
}


def category_subjects(category: str) -> tuple[str, ...]:
    """The subjects events of `category` are published on (see grace.bus.Bus.subject_of)."""
    if category == "command":
        return (COMMANDS_ALL,)
    if category == "task":
        return (event_filter("task"), TASKS_ALL)
    return (event_filter(category),)


def publish_subjects(role: str) -> tuple[str, ...]:
    """Every subject a pipeline role publishes to: its categories', then its extras."""
    owned = [s for category, owner in EVENT_PUBLISHERS.items() if owner == role
             for s in category_subjects(category)]
    return (*owned, *ROLE_EXTRA_SUBJECTS[role])


def actuator_consumer(host: str) -> str:
    return f"actuator-{host}"


PROCESSOR_CONSUMER = "processor"


def processor_partition_consumer(index: int, count: int) -> str:
    """The durable of processor partition `index` of `count` (`grace process --partition I/N`)."""
    return f"processor-{index}-of-{count}"


AGENT_CONSUMER = "agent"


@dataclass(frozen=True)
class StreamSpec:
    """A stream as Grace declares it; `check` compares it with what the server has."""

    name: str
    subjects: list[str]
    retention: api.RetentionPolicy
    discard: api.DiscardPolicy = api.DiscardPolicy.OLD
    deny_delete: bool = False
    deny_purge: bool = False
    allow_atomic: bool = False
    duplicate_window: float = DUPLICATE_WINDOW_S
    extra: dict[str, Any] = field(default_factory=dict)

    def config(self, replicas: int) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.name, subjects=list(self.subjects), retention=self.retention,
            storage=api.StorageType.FILE, discard=self.discard, num_replicas=replicas,
            deny_delete=self.deny_delete, deny_purge=self.deny_purge, allow_rollup_hdrs=False,
            duplicate_window=self.duplicate_window, allow_atomic=self.allow_atomic or None,
            **self.extra,
        )


STREAMS: tuple[StreamSpec, ...] = (
    # THE immutable log: nothing is ever deleted, purged or rolled up.
    StreamSpec(EVENTS, [EVENTS_ALL], api.RetentionPolicy.LIMITS, api.DiscardPolicy.NEW,
               deny_delete=True, deny_purge=True, allow_atomic=True),
    StreamSpec(COMMANDS, [COMMANDS_ALL], api.RetentionPolicy.WORK_QUEUE),
    StreamSpec(REJECTED, [REJECTED_ALL], api.RetentionPolicy.LIMITS),
    StreamSpec(TASKS, [TASKS_ALL], api.RetentionPolicy.LIMITS),
)

# Fields whose difference makes an existing stream incompatible.
_COMPARED = ("subjects", "retention", "storage", "discard", "num_replicas", "deny_delete",
             "deny_purge", "allow_rollup_hdrs", "allow_atomic")


def _norm(field_name: str, value: Any) -> Any:
    if field_name == "subjects":
        return sorted(value or [])
    if field_name in ("deny_delete", "deny_purge", "allow_rollup_hdrs", "allow_atomic"):
        return bool(value)
    return value


def differences(want: api.StreamConfig, have: api.StreamConfig) -> list[str]:
    """Human-readable differences between the declared and the existing stream."""
    out = []
    for name in _COMPARED:
        w, h = _norm(name, getattr(want, name)), _norm(name, getattr(have, name))
        if w != h:
            out.append(f"{name}: Grace declares {_show(w)}, the server has {_show(h)}")
    return out


def _show(v: Any) -> str:
    return str(v.value) if hasattr(v, "value") else repr(v)


async def ensure_topology(js: JetStreamContext, replicas: int = 1) -> None:
    """Create the streams and KV buckets when missing; never change an existing one.

    Raises TopologyConflict naming the stream and each differing field.
    """
    for spec in STREAMS:
        want = spec.config(replicas)
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(want)
            continue
        diffs = differences(want, info.config)
        if diffs:
            raise TopologyConflict(
                f"stream {spec.name} exists with an incompatible config: " + "; ".join(diffs)
                + f". Grace never changes an existing stream: migrate it by hand (nats stream edit"
                f" {spec.name}) or point Grace at another server/data dir.")
    for bucket in (INTENTS_BUCKET, STATE_BUCKET):
        try:
            await js.key_value(bucket)
        except NotFoundError:
            await js.create_key_value(api.KeyValueConfig(
                bucket=bucket, history=1, storage=api.StorageType.FILE, replicas=replicas))
    try:
        await js.key_value(TIMER_LEASE_BUCKET)
    except NotFoundError:
        await js.create_key_value(api.KeyValueConfig(
            bucket=TIMER_LEASE_BUCKET, history=1, ttl=TIMER_LEASE_TTL_S,
            storage=api.StorageType.FILE, replicas=replicas))


def timer_lease_key(host: str) -> str:
    """The timer lease's key for the timer playbooks of `host` (processors/lease.py)."""
    return f"timers.{host}"


def processor_consumer_config(name: str = PROCESSOR_CONSUMER, filter_subject: str = EVENTS_ALL
                              ) -> api.ConsumerConfig:
    """The processor reads the log in order; acks cover everything up to a sequence."""
    return api.ConsumerConfig(
        durable_name=name, deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.ALL,
        filter_subject=filter_subject, max_ack_pending=20_000, ack_wait=30.0, max_deliver=-1,
        max_waiting=16,
    )


def actuator_consumer_config(host: str) -> api.ConsumerConfig:
    """Each actuator takes only its own host's commands, acking each one."""
    return api.ConsumerConfig(
        durable_name=actuator_consumer(host), deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT, filter_subject=command_filter(host),
        max_ack_pending=256, ack_wait=60.0, max_deliver=-1, max_waiting=16,
    )


def agent_consumer_config(name: str = AGENT_CONSUMER) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=name, deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.EXPLICIT,
        filter_subject=TASKS_ALL, max_ack_pending=16, ack_wait=600.0, max_deliver=-1,
    )


def reader_consumer_config(start_seq: int | None, filter_subject: str | None = EVENTS_ALL
                           ) -> api.ConsumerConfig:
    """An ephemeral, ack-less reader from `start_seq`, or from now on when None."""
    if start_seq is None:
        policy, seq = api.DeliverPolicy.NEW, None
    elif start_seq <= 1:
        policy, seq = api.DeliverPolicy.ALL, None
    else:
        policy, seq = api.DeliverPolicy.BY_START_SEQUENCE, start_seq
    return api.ConsumerConfig(
        deliver_policy=policy, opt_start_seq=seq, ack_policy=api.AckPolicy.NONE,
        filter_subject=filter_subject, inactive_threshold=30.0, max_waiting=16,
        mem_storage=True, num_replicas=1,
    )


async def ensure_consumer(js: JetStreamContext, stream: str, config: api.ConsumerConfig) -> str:
    """Create a durable (or ephemeral) consumer; an existing durable must match. Returns its name."""
    if config.durable_name:
        try:
            info = await js.consumer_info(stream, config.durable_name)
        except NotFoundError:
            info = None
        if info is not None:
            have = info.config
            for name in ("filter_subject", "ack_policy", "deliver_policy"):
                if getattr(have, name) != getattr(config, name):
                    raise TopologyConflict(
                        f"consumer {config.durable_name} on stream {stream} exists with {name}="
                        f"{_show(getattr(have, name))}, Grace declares {_show(getattr(config, name))}."
                        f" Delete it (nats consumer rm {stream} {config.durable_name}) to let Grace"
                        " recreate it; its position is rebuilt from the log.")
            return config.durable_name
    info = await js.add_consumer(stream, config)
    return info.name
