"""The last step: a playbook's `mode` says whether its commands are sent (act), recorded as
what would have been sent (observe), or put to a person first (approve)."""

from __future__ import annotations

from processors.gates import Settings
from processors.model import Playbook


def mode_of(p: Playbook, settings: Settings) -> str:
    """`act`, `observe` or `approve`; `processor.mode: observe` overrides every playbook."""
    return "observe" if settings.observe else p.mode
