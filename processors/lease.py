"""The timer lease: one processor partition of a fleet fires the timer playbooks.

N partitions all run the matcher's timers (`every:`); without a lease each would fire
every slot. The lease is one key per host in the JetStream KV bucket
topology.TIMER_LEASE_BUCKET, whose entries expire after topology.TIMER_LEASE_TTL_S.
A partition takes the key when it is absent (`create`: only one wins) and renews it
on each tick with a compare-and-set on its revision. If the holder dies, the key
expires and another partition takes it: timers go on within one TTL. A slot fired
twice around a takeover keeps its deterministic command id, so the stream's
duplicate window and the actuator's intent record hold it to one effect.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from grace import topology
from grace.bus import Bus

log = logging.getLogger(__name__)


class TimerLease:
    """Whether this process holds the timer lease of `host`; `renew()` once per tick."""

    def __init__(self, bus: Bus, holder: str | None = None) -> None:
        self.bus = bus
        self.key = topology.timer_lease_key(bus.host)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.revision: int | None = None  # of our entry while we hold it
        self._kv: KeyValue | None = None

    @property
    def held(self) -> bool:
        return self.revision is not None

    async def renew(self) -> bool:
        """Take the lease if it is free, renew it if ours; True while we hold it."""
        if self._kv is None:
            self._kv = await self.bus.js.key_value(topology.TIMER_LEASE_BUCKET)
        was = self.held
        value = self.holder.encode()
        try:
            if self.revision is not None:
                self.revision = await self._kv.update(self.key, value, last=self.revision)
            else:
                self.revision = await self._kv.create(self.key, value)
        except (KeyWrongLastSequenceError, NotFoundError, KeyNotFoundError):
            # someone else holds it (or ours expired and another took it): not ours now
            self.revision = None
        if self.held != was:
            log.info("timer lease %s %s by %s", self.key, "taken" if self.held else "lost", self.holder)
        return self.held

    async def release(self) -> None:
        """Give the lease up at a clean stop, so another partition takes over at once."""
        if self._kv is not None and self.revision is not None:
            try:
                await self._kv.purge(self.key)
            except Exception as exc:  # noqa: BLE001 - it expires after its TTL anyway
                log.warning("timer lease %s not released (it expires by itself): %r", self.key, exc)
            self.revision = None
