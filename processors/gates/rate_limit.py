"""Safety rail `safety.max_commands`: at most `count` commands per sliding `per` on a host.

Every command recorded counts (issued, observed, approved, or read back from the log on a
restart), whatever playbook sent it, so a storm of distinct findings on distinct targets,
which no per-target cooldown or budget sees, stops at the host's limit. Escalations
(a budget `then`, a failed verify, a rail's own escalation, `escalate_to_coding_agent`)
neither count nor are refused: handing a storm to a person is what a tripped rail does.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from grace.durations import fmt
from processors.gates import Acted, Gate, Proposal, Refusal, Settings
from processors.model import ESCALATE

if TYPE_CHECKING:
    from processors.targets import TargetState


class RateLimit(Gate):
    NAME = "rate_limit"
    AT_APPROVAL = True  # an approval may come when the host is already at its limit

    def __init__(self, settings: Settings) -> None:
        self.max = settings.max_commands
        self.per_s = settings.max_commands_per_s
        self.sent: dict[str, deque[float]] = {}  # host -> times of its counted commands

    def acted(self, rec: Acted) -> None:
        if rec.escalation or rec.action == ESCALATE:
            return
        times = self.sent.setdefault(rec.host, deque())
        times.append(rec.t)
        self._slide(times, rec.t)

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        times = self.sent.get(prop.host)
        if not times:
            return None
        wanted = sum(1 for pl in prop.planned if pl.action.action != ESCALATE)
        if not wanted:
            return None
        self._slide(times, prop.t)
        if len(times) + wanted <= self.max:
            return None
        oldest = times[0]
        per = fmt(self.per_s)
        return Refusal(
            "rate_limit",
            f"{len(times)} commands on host {prop.host} within the last {per} (limit "
            f"safety.max_commands {self.max} per {per}); {prop.playbook.name} acts again once the "
            f"window slides (in {fmt(math.ceil(oldest + self.per_s - prop.t))} at the earliest); "
            "a storm of findings is escalated once per hour. If this many commands is intended, "
            "raise safety.max_commands in grace.yaml",
            key=f"rate_limit:{prop.host}:{oldest}", escalate=True)

    def _slide(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.per_s:
            times.popleft()
