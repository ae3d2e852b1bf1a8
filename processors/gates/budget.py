"""The playbook's `budget`: at most `max` actions per `per` on a target; then `then`, once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from grace.durations import fmt
from processors.gates import Gate, Proposal, Refusal

if TYPE_CHECKING:
    from processors.targets import TargetState


class Budget(Gate):
    NAME = "budget"

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        p = prop.playbook
        if not (p.budget_max and p.budget_per_s):
            return None
        acts = st.actions
        while acts and acts[0] <= prop.t - p.budget_per_s:
            acts.popleft()
        if len(acts) < p.budget_max:
            return None
        then = p.budget_then
        detail = (f"{len(acts)} actions within {fmt(p.budget_per_s)} (max {p.budget_max}); "
                  + (f"escalating with {then.action}" if then else
                     "no budget `then`: nothing more until it refills"))
        return Refusal("budget_spent", detail, key=f"budget:{acts[0]}", then=then is not None)
