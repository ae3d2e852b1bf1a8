"""Heartbeats of kernels, heard on core NATS (`grace.heartbeat.<host>.*`), kept in memory.

Heartbeats are never stored in the log; this tracker keeps the last one per
kernel instance (`kernel`, `instance`) so health_signal can see the gap of one
hung instance of a pool and resource_pressure knows each instance's pid.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from grace import topology
from grace.events import Heartbeat

log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(Heartbeat)


@dataclass
class Seen:
    at: float  # clock time the heartbeat arrived
    pid: int
    seq: int


class HeartbeatTracker:
    """Last heartbeat per kernel instance on one host."""

    def __init__(self, host: str, clock: Callable[[], float]) -> None:
        self.host = host
        self.clock = clock
        self.started_at = clock()
        self.listening = False
        self.instances: dict[tuple[str, int], Seen] = {}
        self._sub: Any = None

    def record(self, hb: Heartbeat) -> None:
        if hb.kind == "kernel":
            self.instances[(hb.name, hb.instance)] = Seen(self.clock(), hb.pid, hb.seq)

    def of(self, kernel: str) -> dict[int, Seen]:
        """The instances of `kernel` heard from: index -> last heartbeat."""
        return {i: s for (k, i), s in self.instances.items() if k == kernel}

    def sends(self, kernel: str) -> bool:
        """Whether any instance of `kernel` has sent a heartbeat since listening began."""
        return any(k == kernel for k, _ in self.instances)

    def pid(self, kernel: str, instance: int = 0) -> int | None:
        seen = self.instances.get((kernel, instance))
        return seen.pid if seen and seen.pid > 0 else None

    async def listen(self, nc: Any) -> None:
        """Subscribe to this host's heartbeats; the listening time counts as the grace period."""
        async def on_msg(msg: Any) -> None:
            try:
                self.record(_decoder.decode(msg.data))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("unreadable heartbeat on %s: %s", msg.subject, exc)

        self._sub = await nc.subscribe(topology.heartbeat_filter(self.host), cb=on_msg)
        self.started_at = self.clock()
        self.listening = True

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):  # the connection may already be closed
                await self._sub.unsubscribe()
            self._sub = None
        self.listening = False
