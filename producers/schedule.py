"""The snapshot schedule: `snapshot_due` once per `snapshots.every`, from the config.

The schedule lives in grace.yaml (`snapshots.every`), where an operator sets it;
the monitor asks `due()` each cycle and publishes what it returns, and the
shipped playbook `snapshot_hygiene` answers `snapshot_due` with take_snapshot.
Slots are wall-clock aligned (floor(now / every)), so a restart inside a slot
does not fire again (the last slot is persisted, and the event id derives from
the slot); a first start with no recorded slot fires at once. The monitor looks
once per `monitor.interval`, so a slot is seen at most one interval late; an
`every` shorter than the interval fires once per cycle, never in bursts.
"""

from __future__ import annotations

from grace import events
from grace.config import Config
from producers.base import Clock
from producers.state import StateStore

STATE = "snapshot_schedule"


class SnapshotSchedule:
    """Which snapshot slot is due, if any; remembers the last one across restarts."""

    def __init__(self, cfg: Config, state: StateStore, clock: Clock) -> None:
        self.cfg, self.state, self.clock = cfg, state, clock
        saved = state.load(STATE).get("slot")
        self.last: int | None = int(saved) if saved is not None else None

    def due(self) -> tuple[events.SnapshotDue, str] | None:
        """(snapshot_due, its event id) when a new slot began since the last one, else None."""
        every = float(self.cfg.snapshots.every)
        slot = int(self.clock() // every)
        if self.last is not None and self.last >= slot:
            return None
        self.last = slot
        # saved before publishing: the monitor keeps unpublished events and retries them
        self.state.save(STATE, {"slot": slot, "every_s": every})
        return (events.SnapshotDue(every_s=every, slot=slot),
                events.derive_id(self.cfg.host, "snapshot-due", every, slot))
