"""The decision after a match: an ordered chain of small gates, one module each.

A gate answers one question about a proposal (may these commands go now?) with None
(go) or a `Refusal` (recorded as `decision_suppressed` with its reason). The first
refusal is recorded and the rest of the chain is not asked; when every gate says go,
the playbook's mode (gates/mode.py) decides whether the commands are sent, observed or
put to a person. A gate may watch event types of the log (`TYPES`, `see`: called before
the event is matched, so a gate judging a match knows the event) and learns of
every command recorded (`acted`), issued, observed or approved, including those read
back from the log on a restart, so its state is rebuilt like everything else.

A new rail is one module here and one line in `chain()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from grace import holds
from grace.events import Event
from processors.model import Action, Playbook

if TYPE_CHECKING:
    from processors.targets import TargetState


@dataclass(frozen=True)
class Settings:
    """What the config says about deciding (grace.yaml `processor`, `holds`, `safety`)."""

    observe: bool = False  # processor.mode observe / `grace up --observe`: every playbook observes
    holds_max_s: float = 86400.0
    max_commands: int = 30
    max_commands_per_s: float = 60.0
    max_pool_restarting: float = 0.5
    max_chain_depth: int = 3
    sinks: tuple[str, ...] = ()  # config `notify` sink names: a notify to none is `no_sink`


@dataclass(frozen=True)
class Planned:
    """One command a proposal would send."""

    action: Action
    command_id: str
    params: dict[str, Any]


class Proposal:
    """A playbook that matched (or a timer that is due), before the gates. One is made per
    match, so it is a plain slotted class and its commands are rendered only when asked."""

    __slots__ = (
        "_planned",
        "_reason",
        "_render",
        "at",
        "cause_ids",
        "event",
        "host",
        "playbook",
        "t",
        "target",
    )

    def __init__(self, playbook: Playbook, event: Event | None, target: str, host: str,
                 at: datetime, cause_ids: list[str], reason: str | Callable[[], str],
                 render: Callable[[], list[Planned]], t: float | None = None) -> None:
        self.playbook = playbook
        self.event = event  # the finding that matched; None: a timer, or an approved command
        self.target, self.host, self.at = target, host, at
        self.t = at.timestamp() if t is None else t
        self.cause_ids = cause_ids
        self._reason = reason  # why it matched (written only when a gate or mode asks)
        self._render: Callable[[], list[Planned]] = render
        self._planned: list[Planned] | None = None

    @property
    def reason(self) -> str:
        if not isinstance(self._reason, str):
            self._reason = self._reason()
        return self._reason

    @property
    def planned(self) -> list[Planned]:
        """The commands it would send, rendered on first use."""
        if self._planned is None:
            self._planned = self._render()
        return self._planned


@dataclass(frozen=True)
class Refusal:
    """Why a proposal may not go now."""

    reason: str  # decision_suppressed.reason
    detail: str
    key: str = ""  # record once per key ("" : once per episode of the target)
    hold_id: str | None = None
    escalate: bool = False  # a safety rail: escalate once per reason, host and hour
    then: bool = False  # budget spent: run the playbook's budget `then`


@dataclass(frozen=True)
class Acted:
    """A command recorded as done (issued, observed, or read back from the log)."""

    playbook: str
    command_id: str
    action: str
    params: dict[str, Any]
    target: str
    host: str
    t: float
    cause_ids: list[str]
    escalation: bool
    observed: bool = False  # observe mode: recorded as if sent, nothing was sent


class Gate:
    NAME: ClassVar[str]
    TYPES: ClassVar[frozenset[str]] = frozenset()  # event types it watches (a rebuild reads them)
    AT_APPROVAL: ClassVar[bool] = False  # asked again when an approved command is about to go

    def see(self, ev: Event) -> None:
        """An event of one of `TYPES`, in log order."""

    def acted(self, rec: Acted) -> None:
        """A command was recorded as done."""

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        raise NotImplementedError


def chain(settings: Settings, book: holds.HoldBook) -> list[Gate]:
    """The gates in the order they are asked."""
    from processors.gates.approval_pending import ApprovalPending
    from processors.gates.blast_radius import BlastRadius
    from processors.gates.budget import Budget
    from processors.gates.cooldown import Cooldown
    from processors.gates.hold import Hold
    from processors.gates.loop_guard import LoopGuard
    from processors.gates.no_sink import NoSink
    from processors.gates.rate_limit import RateLimit
    from processors.gates.verify_pending import VerifyPending

    return [
        NoSink(settings),  # before any state moves: an unsendable notify spends nothing
        VerifyPending(),
        Cooldown(),
        Budget(),
        Hold(book),
        ApprovalPending(),
        RateLimit(settings),  # the safety rails (config `safety`): refuse and escalate
        BlastRadius(settings),
        LoopGuard(settings),
    ]
