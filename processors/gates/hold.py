"""Holds (maintenance windows): nothing on a held path, kernel, playbook or host.

What a proposal touches (`scope_of`) is read from the finding (kernel, instance, culprit,
path) and from the params of every command it would send (kernel, instance, kernels,
path, paths); a command on every kernel (`kernels: []`) touches any held kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from grace import holds
from processors.gates import Gate, Proposal, Refusal

if TYPE_CHECKING:
    from processors.targets import TargetState


class Hold(Gate):
    NAME = "hold"
    AT_APPROVAL = True

    def __init__(self, book: holds.HoldBook) -> None:
        self.book = book

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        if not self.book.holds:
            return None
        h = self.book.covering(scope_of(prop), prop.at)
        if h is None:
            return None
        return Refusal("hold", f"hold {h.hold_id} on {h.target} by {h.by} until "
                               f"{h.until.isoformat()}: {h.reason}",
                       key=f"hold:{h.hold_id}", hold_id=h.hold_id)


def scope_of(prop: Proposal) -> holds.Scope:
    kernels: set[tuple[str, int | None]] = set()
    paths: set[str] = set()
    sources: list[dict[str, Any]] = [pl.params for pl in prop.planned]
    if prop.event is not None:
        sources.append(msgspec.to_builtins(prop.event.data))
    for src in sources:
        for name_key, index_key in (("kernel", "instance"), ("culprit_kernel", "culprit_instance")):
            name = src.get(name_key)
            if isinstance(name, str) and name:
                index = src.get(index_key)
                kernels.add((name, index if isinstance(index, int) else None))
        named = src.get("kernels")
        if isinstance(named, list):
            kernels.update((k, None) for k in named if isinstance(k, str))
            if not named:
                kernels.add(("*", None))
        if isinstance(src.get("path"), str):
            paths.add(src["path"])
        if isinstance(src.get("paths"), list):
            paths.update(p for p in src["paths"] if isinstance(p, str))
    return holds.Scope(host=prop.host, playbook=prop.playbook.name, kernels=frozenset(kernels),
                       paths=frozenset(paths))
