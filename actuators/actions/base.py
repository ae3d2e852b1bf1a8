"""What every action gets and provides.

An action is split in two so a redelivered command never acts twice:
`plan` computes the target once (recorded in the intent before anything is
touched) and `apply` moves the world to that target, doing nothing where it is
already there. Both raise ActionError with a reason for a failed result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actuators.supervisor import Supervisor
from grace import events
from grace.config import Config
from grace.errors import ActionError

Target = dict[str, Any]
Details = dict[str, Any]
Publish = Callable[[events.Payload, str], Awaitable[None]]  # payload, event id


@dataclass
class ActionContext:
    """The world an action may touch: config, kernels, the bus, the command in hand."""

    cfg: Config
    supervisor: Supervisor | None
    publish: Publish
    command_id: str
    note: Callable[[str], Awaitable[None]]  # record a progress step in the intent
    clock: Callable[[], datetime] = events.now
    steps: Callable[[], list[str]] = list  # the intent's progress notes so far (a resume reads them)

    def kernels(self) -> Supervisor:
        if self.supervisor is None:
            raise ActionError("no kernel supervisor runs in this actuator; start it with `grace act`")
        return self.supervisor

    def event_id(self, *parts: object) -> str:
        """A deterministic id for an event this command publishes (re-publishing dedupes)."""
        return events.derive_id("effect", self.command_id, *parts)


@dataclass(frozen=True)
class Action:
    params: type[events.Command]
    plan: Callable[[ActionContext, Any], Awaitable[Target]]
    apply: Callable[[ActionContext, Any, Target], Awaitable[Details]]
    target: Callable[[Any], str]  # what the result names as its target
