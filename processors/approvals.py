"""Commands waiting for a person's yes (`approve`-mode playbooks), rebuilt from the log."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any


@dataclass
class Request:
    """One approval_requested that no grant, denial or expiry has answered yet."""

    playbook: str
    index: int  # the action's place in the playbook's `do`
    command_id: str
    target: str
    host: str
    params: dict[str, Any]
    cause_ids: list[str]
    reason: str
    expires: float


class Approvals:
    def __init__(self) -> None:
        self.pending: dict[str, Request] = {}
        self._deadlines: list[tuple[float, str]] = []

    def add(self, req: Request) -> None:
        self.pending[req.command_id] = req
        heapq.heappush(self._deadlines, (req.expires, req.command_id))

    def pop(self, command_id: str) -> Request | None:
        return self.pending.pop(command_id, None)

    @property
    def soonest(self) -> float:
        while self._deadlines and self._deadlines[0][1] not in self.pending:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else float("inf")

    def due(self, now: float) -> list[Request]:
        """The requests whose time ran out before `now`, removed."""
        out = []
        while self.soonest < now:
            _, cid = heapq.heappop(self._deadlines)
            req = self.pending.pop(cid, None)
            if req is not None:
                out.append(req)
        return out
