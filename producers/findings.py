"""Active findings per (type, finding_key): appearance, throttled re-publish, clearing.

Policy (documented in docs/producers.md): a finding is published when it
appears, then re-published at most once per `monitor.interval` while it stays
active (so `for:` and count windows in playbooks see it persist); when its
trigger completes a run without it, a `condition_cleared` is published.
Failed or skipped runs, and runs with partial errors, clear nothing. The active set is persisted; after a
restart a restored finding may be cleared only after RESTORED_GRACE runs of its
trigger without it (signals kept in memory, like heartbeats and latency
windows, need a few runs to be re-measured).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grace import events

RESTORED_GRACE = 3
STATE = "monitor"


def key_of(f: events.Trigger) -> str:
    return f.TYPE + " " + json.dumps(events.finding_key(f), sort_keys=True)


@dataclass
class Active:
    type: str
    key: dict[str, str]
    trigger: str
    first_seen: float
    last_published: float
    grace: int = 0  # > 0: restored after a restart, runs left before it may be cleared


class ActiveFindings:
    """Pure bookkeeping: which findings to publish and which conditions cleared."""

    def __init__(self, host: str, interval: float) -> None:
        self.host = host
        self.interval = interval
        self.active: dict[str, Active] = {}

    def update(self, trigger: str, findings: list[events.Trigger], now: float, run_id: str,
               clear: bool = True) -> list[tuple[events.Payload, str]]:
        """(payload, event id) to publish for one completed run of `trigger`."""
        out: list[tuple[events.Payload, str]] = []
        current: dict[str, events.Trigger] = {}
        for f in findings:
            current.setdefault(key_of(f), f)
        for k, f in current.items():
            a = self.active.get(k)
            if a is None:
                self.active[k] = Active(f.TYPE, events.finding_key(f), trigger, now, now)
            elif now - a.last_published >= 0.9 * self.interval:  # jitter tolerance
                a.last_published, a.grace = now, 0
            else:
                a.grace = 0
                continue
            out.append((f, events.derive_id(self.host, k, run_id)))
        for k, a in list(self.active.items()):
            if not clear or a.trigger != trigger or k in current:
                continue
            if a.grace > 0:
                a.grace -= 1
                continue
            del self.active[k]
            cleared = events.ConditionCleared(condition=a.type, key=a.key, trigger=trigger,
                                              active_s=round(now - a.first_seen, 3))
            out.append((cleared, events.derive_id(self.host, "cleared", k, run_id)))
        return out

    def dump(self) -> dict[str, Any]:
        return {k: vars(a) for k, a in self.active.items()}

    def restore(self, saved: dict[str, Any]) -> None:
        for k, d in saved.items():
            try:
                self.active[k] = Active(**{**d, "grace": RESTORED_GRACE})
            except TypeError:
                continue  # an entry from an incompatible version: it will re-fire if real
