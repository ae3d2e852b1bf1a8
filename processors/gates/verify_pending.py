"""A fix still waiting for its proof: nothing more on that target until it is verified."""

from __future__ import annotations

from typing import TYPE_CHECKING

from processors.gates import Gate, Proposal, Refusal

if TYPE_CHECKING:
    from processors.targets import TargetState


class VerifyPending(Gate):
    NAME = "verify_pending"

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        if st.verify is None or prop.event is None:
            return None  # a timer fires on its slot whatever its last run's verify says
        key = f"verify:{st.verify.command_id}"
        if key in st.said:
            return Refusal("verify_pending", "", key)  # recorded already
        return Refusal("verify_pending", f"waiting for {st.verify.command_id} to be verified",
                       key=key)
