"""Holds (maintenance windows): what a hold's target names, what it covers, which are active.

A hold is a pair of events in the log (`hold_added`, `hold_released`); every stage that
honours holds rebuilds its `HoldBook` from them, so holds survive restarts. Targets:

    path:<protected path>       the file, relative to the protected root (as findings name it)
    kernel:<name>               every instance of the kernel
    kernel:<name>/<instance>    one instance (and any action on the kernel as a whole)
    playbook:<name>             every match of the playbook
    host:<host>                 everything Grace does on that host

`path:`, `kernel:` and `playbook:` holds apply on the host the hold was added for (the
event's host); `host:` names its host itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from grace import events
from grace.errors import InvalidValue

Kind = Literal["path", "kernel", "playbook", "host"]
KINDS: tuple[Kind, ...] = ("path", "kernel", "playbook", "host")


@dataclass(frozen=True)
class Target:
    kind: Kind
    name: str
    instance: int | None = None  # kernel:<name>/<instance>

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" + ("" if self.instance is None else f"/{self.instance}")


def parse_target(text: str) -> Target:
    """`kernel:api/1` -> Target; InvalidValue with what is wrong and the accepted forms."""
    forms = "path:<protected path>, kernel:<name>, kernel:<name>/<instance>, playbook:<name>, host:<host>"
    kind, sep, name = text.partition(":")
    if not sep or kind not in KINDS or not name.strip():
        raise InvalidValue(f"hold target {text!r} is not one of {forms}")
    if kind == "kernel" and "/" in name:
        name, _, index = name.partition("/")
        if not index.isdigit() or not name:
            raise InvalidValue(f"hold target {text!r}: the instance after '/' must be a number, "
                             "as in kernel:api/0")
        return Target("kernel", name, int(index))
    return Target(kind, name)


@dataclass(frozen=True)
class Scope:
    """What one decision would touch: its host, playbook, kernels (with instance, None: the
    kernel as a whole) and paths. Built from the finding and the command params."""

    host: str
    playbook: str = ""
    kernels: frozenset[tuple[str, int | None]] = frozenset()  # name "*": every kernel
    paths: frozenset[str] = frozenset()


def covers(target: Target, hold_host: str, scope: Scope) -> bool:
    """Whether a hold on `target` (added for `hold_host`) covers `scope`."""
    if target.kind == "host":
        return scope.host == target.name
    if scope.host != hold_host:
        return False
    if target.kind == "playbook":
        return scope.playbook == target.name
    if target.kind == "path":
        return target.name in scope.paths
    # "*": an action on every kernel (shed_load with no list) touches the held one too
    return any(name in (target.name, "*") and (target.instance is None or index is None
                                               or index == target.instance)
               for name, index in scope.kernels)


@dataclass
class Hold:
    hold_id: str
    target: Target
    host: str
    until: datetime
    reason: str
    by: str
    added_at: datetime


@dataclass
class HoldBook:
    """The holds the log says are in force; fed `hold_added`/`hold_released` events in order."""

    holds: dict[str, Hold] = field(default_factory=dict)

    def apply(self, ev: events.Event) -> None:
        d = ev.data
        if isinstance(d, events.HoldAdded):
            try:
                target = parse_target(d.target)
            except InvalidValue:
                return  # the CLI never writes one; a hand-published bad target holds nothing
            self.holds[d.hold_id] = Hold(d.hold_id, target, ev.host, d.until, d.reason, d.by,
                                         ev.time)
        elif isinstance(d, events.HoldReleased):
            self.holds.pop(d.hold_id, None)

    def active(self, now: datetime) -> list[Hold]:
        return [h for h in self.holds.values() if h.until > now]

    def expired(self, now: datetime) -> list[Hold]:
        """Holds past their end that no hold_released has recorded yet."""
        return [h for h in self.holds.values() if h.until <= now]

    def covering(self, scope: Scope, now: datetime) -> Hold | None:
        """The active hold covering `scope` that lasts longest, if any."""
        found = [h for h in self.active(now) if covers(h.target, h.host, scope)]
        return max(found, key=lambda h: h.until) if found else None
