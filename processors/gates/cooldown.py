"""The playbook's `cooldown`: no new action on a target this soon after the last one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from grace.durations import fmt
from processors.gates import Gate, Proposal, Refusal

if TYPE_CHECKING:
    from processors.targets import TargetState


class Cooldown(Gate):
    NAME = "cooldown"

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        p = prop.playbook
        if not p.cooldown_s or st.last_action is None or prop.t - st.last_action >= p.cooldown_s:
            return None
        key = f"cooldown:{st.last_command}"
        if key in st.said:
            return Refusal("cooldown", "", key)  # recorded already: no need to say why again
        return Refusal("cooldown", f"last action {st.last_command} {fmt(prop.t - st.last_action)} "
                                   f"ago; cooldown {fmt(p.cooldown_s)}", key=key)
