"""Safety rail `safety.max_chain_depth`: playbooks answering each other's results must stop.

A command's depth follows its `cause_ids`: a finding of a producer has depth 0; a command
has 1 + the deepest of its causes; an event that answers a command (it carries the
command's `command_id`: a result, a verify decision) has that command's depth. A command
deeper than `max_chain_depth` (a command caused by the result of a command caused by the
result of ...) is refused: at the default 3, a finding's fix, a follow-up on its result and
one on that follow-up's result go; the 4th link is a loop and stops there.

An event that names no command (a kernel event of a restart, a snapshot_restored) counts
as a finding: the chain is followed through results, which carry the command's id.
Memory is bounded: ids older than `FORGET_S` behind the newest, or past `MAX_IDS`, are
forgotten (a forgotten command counts as depth 1: it had at least one link).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from grace.events import Event
from processors.gates import Acted, Gate, Proposal, Refusal, Settings

if TYPE_CHECKING:
    from processors.targets import TargetState

FORGET_S = 6 * 3600.0
MAX_IDS = 50_000


class Link(NamedTuple):
    depth: int
    t: float
    command_id: str  # the command itself, or the command an event answers
    playbook: str
    parent: str  # the deepest cause's command ("" : a finding)


class LoopGuard(Gate):
    NAME = "loop_guard"
    TYPES = frozenset({"command_succeeded", "command_failed", "command_skipped"})

    def __init__(self, settings: Settings) -> None:
        self.max_depth = settings.max_chain_depth
        self.links: dict[str, Link] = {}  # command id or answering event id -> its link

    def see(self, ev: Event) -> None:
        link = self._answering(ev)
        if link is not None:
            self._remember(ev.id, link)

    def acted(self, rec: Acted) -> None:
        parent = self._deepest(rec.cause_ids)
        depth = 1 + (parent.depth if parent is not None else 0)
        self._remember(rec.command_id, Link(depth, rec.t, rec.command_id, rec.playbook,
                                            parent.command_id if parent is not None else ""))

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        parent = self._deepest(prop.cause_ids)
        if parent is None or parent.depth + 1 <= self.max_depth:
            return None
        chain = self._chain(parent)
        return Refusal(
            "loop_guard",
            f"{prop.playbook.name} would answer the result of {parent.command_id}, link "
            f"{parent.depth + 1} of a chain of commands each caused by the last one's result "
            f"({' -> '.join(chain)} -> {prop.playbook.name}); safety.max_chain_depth is "
            f"{self.max_depth}. Playbooks reacting to each other's results loop: fix their `on`/"
            "`where`; if the chain is intended, raise safety.max_chain_depth in grace.yaml",
            key=f"loop_guard:{parent.command_id}", escalate=True)

    # ---------------------------------------------------------------- depth

    def _answering(self, ev: Event) -> Link | None:
        """The link of an event that answers a command (it names its command_id)."""
        cid = getattr(ev.data, "command_id", None)
        if not isinstance(cid, str) or not cid:
            return None
        cmd = self.links.get(cid)
        if cmd is None:  # a command older than the memory: at least one link
            cmd = Link(1, ev.time.timestamp(), cid, getattr(ev.data, "playbook", "") or "?", "")
        return cmd._replace(t=ev.time.timestamp())

    def _deepest(self, ids: list[str]) -> Link | None:
        found = [link for i in ids if (link := self.links.get(i)) is not None]
        return max(found, key=lambda link: link.depth) if found else None

    def _chain(self, link: Link) -> list[str]:
        """The playbooks of the chain ending in `link`, first to last."""
        out = [f"{link.playbook} ({link.command_id})"]
        seen = {link.command_id}
        while link.parent and link.parent not in seen and (up := self.links.get(link.parent)):
            seen.add(up.command_id)
            out.append(f"{up.playbook} ({up.command_id})")
            link = up
        return out[::-1]

    def _remember(self, key: str, link: Link) -> None:
        links = self.links
        links.pop(key, None)  # re-inserted at the end: the dict stays in time order
        links[key] = link
        while links:
            first = next(iter(links))
            if len(links) <= MAX_IDS and links[first].t >= link.t - FORGET_S:
                break
            del links[first]
