"""What the matcher remembers per playbook and target."""

from __future__ import annotations

from collections import deque

import msgspec

from grace.events import Event


class Pending(msgspec.Struct):
    """A fix awaiting its proof (condition_cleared, or the verify event)."""

    command_id: str
    deadline: float
    cause: Event | None


class TargetState:
    """What one playbook remembers about one target."""

    __slots__ = (
        "actions",
        "approval",
        "escalated",
        "last_action",
        "last_command",
        "said",
        "seen",
        "since",
        "verify",
        "window",
    )

    def __init__(self) -> None:
        self.since: float | None = None  # when the `for` condition started to hold
        self.window: deque[tuple[float, str]] = deque()
        self.said: set[str] = set()  # suppressions already recorded (no flooding)
        self.last_action: float | None = None
        self.last_command = ""
        self.actions: deque[float] = deque()  # times of acts inside the budget period
        self.verify: Pending | None = None
        self.seen: Event | None = None  # the latest finding while a verify is pending: evidence
        self.escalated = ""  # the verify escalation already sent this episode (sent once)
        self.approval = ""  # the command waiting for a person's yes on this target

    def reset_episode(self) -> None:
        self.since = None
        self.window.clear()
        self.said = {k for k in self.said if not k.startswith("episode:")}
