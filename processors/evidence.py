"""What a failed verify checked and what it found: the evidence its escalation carries."""

from __future__ import annotations

from typing import Any

import msgspec

from grace import events
from grace.events import Event
from processors.model import Playbook

# result events carry the command_id they answer: a verify on them is about that command only
RESULTS = frozenset(t for t, c in events.PAYLOAD_CLASSES.items() if c.CATEGORY == "result")


def _shown(ev: Event) -> dict[str, Any]:
    return {"event_id": ev.id, "type": ev.type, "time": ev.time.isoformat(),
            "data": msgspec.to_builtins(ev.data)}


def verify_evidence(p: Playbook, cid: str, target: str, within: float, cause: Event | None,
                    seen: Event | None, failed: Event | None) -> dict[str, Any]:
    action = p.actions[0].action if p.actions else ""
    if p.verify_event:
        checked = f"{p.verify_event} for {cid}" if p.verify_event in RESULTS else \
            f"{p.verify_event} for {target}"
        found = f"no {p.verify_event} after {action}"
    else:
        checked = f"condition_cleared of {'/'.join(p.on)} for {target}"
        found = (f"{seen.type} still reported at {seen.time.isoformat()}" if seen is not None
                 else f"no condition_cleared after {action}")
    if failed is not None:
        found = f"{action} failed: {getattr(failed.data, 'reason', '')}"
    out: dict[str, Any] = {"command_id": cid, "action": action, "target": target,
                           "within_s": within, "checked": checked, "found": found}
    if cause is not None:
        out["cause"] = _shown(cause)
    if failed is not None:
        out["result"] = _shown(failed)
    if seen is not None:
        out["latest"] = _shown(seen)
    return out
