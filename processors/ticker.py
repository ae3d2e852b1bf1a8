"""Clock ticks for the matcher from an injected reactivex scheduler.

Live, the scheduler is reactivex's AsyncIOScheduler on the processor's event
loop; in tests it is reactivex.testing.TestScheduler, so verify deadlines and
timer playbooks are exercised in virtual time without sleeping. The scheduled
action only hands the time over: publishing stays in plain asyncio code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import abc

from grace.errors import GraceError


class NotPeriodic(GraceError, TypeError):
    """The scheduler given cannot run periodic work (a wiring mistake, found at start)."""


class Ticker:
    """Call `on_tick(now)` every `period_s` seconds of `scheduler` time."""

    def __init__(self, scheduler: abc.SchedulerBase, period_s: float,
                 on_tick: Callable[[float], None]) -> None:
        self.scheduler, self.period_s, self.on_tick = scheduler, period_s, on_tick
        self._disposable: abc.DisposableBase | None = None

    def now(self) -> float:
        """The scheduler's time as a UNIX timestamp."""
        return self.scheduler.now.timestamp()

    def start(self) -> None:
        if not isinstance(self.scheduler, abc.PeriodicSchedulerBase):
            raise NotPeriodic(f"{type(self.scheduler).__name__} cannot schedule periodic work; pass a "
                              "periodic scheduler such as reactivex's AsyncIOScheduler")
        self._disposable = self.scheduler.schedule_periodic(self.period_s, self._fire)

    def _fire(self, _state: Any = None) -> None:
        self.on_tick(self.now())

    def stop(self) -> None:
        if self._disposable is not None:
            self._disposable.dispose()
            self._disposable = None
