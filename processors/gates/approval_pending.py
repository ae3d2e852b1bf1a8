"""A command on this target waits for a person's yes: no second request meanwhile."""

from __future__ import annotations

from typing import TYPE_CHECKING

from processors.gates import Gate, Proposal, Refusal

if TYPE_CHECKING:
    from processors.targets import TargetState


class ApprovalPending(Gate):
    NAME = "approval_pending"

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        if not st.approval:
            return None
        return Refusal("approval_pending", f"waiting for approval of {st.approval} "
                       f"(grace approve {st.approval} | grace deny {st.approval} --reason ...)",
                       key=f"approval:{st.approval}")
