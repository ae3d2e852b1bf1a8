"""What every trigger shares: its environment in, a CheckResult out.

A trigger is a small class: `__init__(env)` keeps its state, `check(changed)`
runs one detection and returns findings (Trigger payloads) and stats. It
raises CheckError when it cannot run at all; the monitor turns that into
check_failed and backs off.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from grace import events
from grace.bus import Bus
from grace.config import Config
from grace.errors import GraceError
from producers.heartbeats import HeartbeatTracker
from producers.state import StateStore

Clock = Callable[[], float]


class CheckError(GraceError):
    """A trigger could not run; the message says what, where and what to do."""


@dataclass
class CheckResult:
    findings: list[events.Trigger] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    skipped: str = ""  # non-empty: the check did not run, and why
    errors: list[str] = field(default_factory=list)  # partial failures (a dead health URL)
    notes: list[str] = field(default_factory=list)  # parts not run, not failures (no NATS)


@dataclass
class Shared:
    """Signals one trigger measures and another reads (all in-process)."""

    heartbeats: HeartbeatTracker
    latency: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)  # kernel -> (t, ms)
    errors: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=1000))  # (t, lines)
    latency_taken: dict[str, int] = field(default_factory=dict)  # kernel -> samples ever added

    def add_latency(self, kernel: str, t: float, ms: float) -> None:
        """One latency sample of `kernel`; readers find new ones by `latency_taken`."""
        self.latency.setdefault(kernel, deque(maxlen=5000)).append((t, ms))
        self.latency_taken[kernel] = self.latency_taken.get(kernel, 0) + 1


@dataclass
class Env:
    """A trigger's inputs: config, persistent state, shared signals, the bus if any, a clock."""

    cfg: Config
    state: StateStore
    shared: Shared
    bus: Bus | None = None
    clock: Clock = time.time


class Check(Protocol):
    NAME: ClassVar[str]
    WATCHES_FILES: ClassVar[bool]

    def __init__(self, env: Env) -> None: ...

    async def check(self, changed: set[Path] | None = None) -> CheckResult: ...


def make_env(cfg: Config, state: StateStore, bus: Bus | None = None, clock: Clock = time.time
             ) -> Env:
    return Env(cfg=cfg, state=state, shared=Shared(HeartbeatTracker(cfg.host, clock)), bus=bus,
               clock=clock)
