"""Safety rail `safety.max_pool_restarting`: never take too much of a kernel's pool down at once.

At most `max(1, floor(fraction x instances))` of a kernel's instances may be restarting or
suspended at the same time. At least one is always allowed, so a single-instance kernel
(or a pool of one) can still be restarted; the rail only ever stops the 2nd, 3rd ... of a
pool from going down while others are still down.

The pool is known from the log, per (host, kernel, instance):
- "restarting": a restart_kernel command recorded and not yet answered by its result
  (command_succeeded / command_failed / command_skipped with its command_id) or by a
  kernel_restarted / kernel_started of that instance; or an instance that exited
  (kernel_exited, expected or not) and was not started again;
- "suspended": kernel_suspended not yet followed by kernel_resumed;
- the instances: every instance a kernel event named, less those a kernel_scaled let go.
A proposal is refused only when it would add an instance to those down (restart_kernel of
one instance, or of every instance when `instance` is None, which the actuator does one
instance after the other, so one at a time; shed_load, which suspends at once every
instance of the kernels it
names, or of every non-critical kernel the log knows on the host when it names none) and
the total would pass the limit. A pool the log does not know yet (its kernel_started is
older than the rebuild read) counts the instances it has seen: the limit is then lower,
never higher, than the real one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from grace import events
from grace.events import Event
from processors.gates import Acted, Gate, Proposal, Refusal, Settings

if TYPE_CHECKING:
    from processors.targets import TargetState

KERNEL_TYPES = frozenset({"kernel_started", "kernel_restarted", "kernel_exited", "kernel_suspended",
                          "kernel_resumed", "kernel_scaled"})
RESULT_TYPES = frozenset({"command_succeeded", "command_failed", "command_skipped"})
# a restart unanswered this long is not in flight any more (an actuator restarts an instance
# in seconds; an observed restart is never answered): its instance's kernel events say the rest
IN_FLIGHT_MAX_S = 600.0
# an observed restart is never sent, so nothing answers it: it counts as down for as long as
# a restart of the example takes at most (stop_timeout 5 s, a new process, its first signs
# of life), so observe mode refuses what act mode would, and no longer
OBSERVED_RESTART_S = 30.0


@dataclass
class Pool:
    """What the log says about one kernel's instances on one host."""

    known: set[int] = field(default_factory=set)
    down: set[int] = field(default_factory=set)  # exited and not started again
    suspended: set[int] = field(default_factory=set)
    critical: bool = False  # from kernel_started; shed_load never suspends a critical kernel


@dataclass
class Restart:
    """A restart_kernel command in flight."""

    host: str
    kernel: str
    left: set[int] | None  # instances not yet restarted; None: every instance, none known
    t: float
    ttl: float = IN_FLIGHT_MAX_S


class BlastRadius(Gate):
    NAME = "blast_radius"
    TYPES = KERNEL_TYPES | RESULT_TYPES
    AT_APPROVAL = True  # the pool may have changed while the command waited for a yes

    def __init__(self, settings: Settings) -> None:
        self.fraction = settings.max_pool_restarting
        self.pools: dict[tuple[str, str], Pool] = {}
        self.restarts: dict[str, Restart] = {}  # command id -> restart in flight

    # ---------------------------------------------------------------- learning

    def see(self, ev: Event) -> None:
        d = ev.data
        if isinstance(d, events.Result):
            self.restarts.pop(d.command_id, None)
            return
        if not isinstance(d, events.KernelEvent):
            return
        pool = self.pools.setdefault((ev.host, d.kernel), Pool())
        i = d.instance
        if isinstance(d, events.KernelScaled):
            _shrink(pool, d.to_count)
        elif isinstance(d, (events.KernelStarted, events.KernelRestarted)):
            pool.known.add(i)
            pool.down.discard(i)
            pool.suspended.discard(i)  # a new process is not stopped
            if isinstance(d, events.KernelStarted):
                pool.critical = d.critical
            self._answered(ev.host, d.kernel, i)
        elif isinstance(d, events.KernelExited):
            pool.known.add(i)
            pool.down.add(i)
            pool.suspended.discard(i)
        elif isinstance(d, events.KernelSuspended):
            pool.known.add(i)
            pool.suspended.add(i)
        elif isinstance(d, events.KernelResumed):
            pool.known.add(i)
            pool.suspended.discard(i)

    def acted(self, rec: Acted) -> None:
        if rec.action != "restart_kernel" or rec.escalation:
            return
        kernel = rec.params.get("kernel")
        if not isinstance(kernel, str):
            return
        instance = _index(rec.params.get("instance"))
        known = self.pools.get((rec.host, kernel), Pool()).known
        left = {instance} if instance is not None else (set(known) or None)
        self.restarts[rec.command_id] = Restart(rec.host, kernel, left, rec.t,
                                                OBSERVED_RESTART_S if rec.observed else IN_FLIGHT_MAX_S)

    def _answered(self, host: str, kernel: str, instance: int) -> None:
        for cid, r in list(self.restarts.items()):
            if r.host != host or r.kernel != kernel:
                continue
            if r.left is not None:
                r.left.discard(instance)
            if not r.left:
                del self.restarts[cid]

    # ---------------------------------------------------------------- judging

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        wanted = self._wanted(prop)
        if not wanted:
            return None
        self._forget(prop.t)
        for kernel, adds in sorted(wanted.items()):
            busy = self._busy(prop.host, kernel)
            added = adds - set(busy)
            if not added:
                continue  # already down: restarting it again takes nothing more away
            pool = self.pools.get((prop.host, kernel), Pool())
            size = len(pool.known | set(busy) | adds)
            limit = max(1, math.floor(self.fraction * size))
            after = len(set(busy) | adds)
            if after <= limit:
                continue
            down = ", ".join(f"{i}: {why}" for i, why in sorted(busy.items())) or "none"
            return Refusal(
                "blast_radius",
                f"kernel {kernel} on {prop.host}: {len(busy)} of {size} instances restarting or "
                f"suspended ({down}); {prop.playbook.name} would take instance(s) "
                f"{', '.join(map(str, sorted(added)))} down too, {after} of {size} at once (limit "
                f"safety.max_pool_restarting {self.fraction:g} = {limit} of {size}, at least 1). "
                "It may act once a result or kernel_restarted shows the others back; if this is "
                "intended, raise safety.max_pool_restarting in grace.yaml",
                key=f"blast_radius:{prop.host}/{kernel}:{sorted(busy)}:{sorted(added)}",
                escalate=True)
        return None

    def _wanted(self, prop: Proposal) -> dict[str, set[int]]:
        """The instances per kernel the proposal's commands would take down."""
        out: dict[str, set[int]] = {}
        for pl in prop.planned:
            action, params = pl.action.action, pl.params
            if action == "restart_kernel" and isinstance(params.get("kernel"), str):
                kernel = params["kernel"]
                instance = _index(params.get("instance"))
                # every instance: the actuator restarts them one after the other, so one at a
                # time is down (the first that is up now stands for it)
                out.setdefault(kernel, set()).add(
                    instance if instance is not None else self._next_up(prop.host, kernel))
            elif action == "shed_load":
                names = params.get("kernels") or [
                    k for (h, k), pool in self.pools.items() if h == prop.host and not pool.critical]
                for kernel in names:
                    if isinstance(kernel, str):
                        out.setdefault(kernel, set()).update(self._all(prop.host, kernel))
        return out

    def _all(self, host: str, kernel: str) -> set[int]:
        pool = self.pools.get((host, kernel))
        return set(pool.known) if pool is not None and pool.known else {0}

    def _next_up(self, host: str, kernel: str) -> int:
        up = sorted(self._all(host, kernel) - set(self._busy(host, kernel)))
        return up[0] if up else min(self._all(host, kernel))

    def _busy(self, host: str, kernel: str) -> dict[int, str]:
        """Instances of the kernel down now, with why."""
        pool = self.pools.get((host, kernel), Pool())
        out: dict[int, str] = dict.fromkeys(pool.suspended, "suspended")
        out.update(dict.fromkeys(pool.down, "exited, not started again"))
        for cid, r in self.restarts.items():
            if r.host == host and r.kernel == kernel:
                for i in (r.left if r.left is not None else self._all(host, kernel)):
                    out.setdefault(i, f"restart {cid} in flight")
        return out

    def _forget(self, now: float) -> None:
        for cid, r in list(self.restarts.items()):
            if r.t < now - r.ttl:
                del self.restarts[cid]


def _index(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _shrink(pool: Pool, to_count: int) -> None:
    """kernel_scaled down: the instances let go (stopped just before) leave the pool."""
    while len(pool.known) > max(0, to_count):
        gone = max(pool.down) if pool.down else max(pool.known)
        pool.known.discard(gone)
        pool.down.discard(gone)
        pool.suspended.discard(gone)
