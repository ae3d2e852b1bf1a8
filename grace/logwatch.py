"""Wait for events to appear in the log (boot sequence, tests, demos)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from grace import events, topology
from grace.bus import Bus
from grace.consume import Delivery, PullConsumer


class LogWatcher:
    """Reads the log from a sequence on, keeping decoded events, until closed."""

    def __init__(self, bus: Bus, start_seq: int, filter_subject: str = topology.EVENTS_ALL) -> None:
        self.bus, self.filter = bus, filter_subject
        self.seen: list[events.Event] = []
        self._changed = asyncio.Event()
        self._consumer: PullConsumer[events.Event] = PullConsumer(
            bus, topology.EVENTS, self._ensure, self._handle, stage="logwatch", ack="none",
            batch=500, start_seq=start_seq, expires=1.0)
        self._task: asyncio.Task[None] | None = None

    async def _ensure(self, next_seq: int) -> str:
        return await topology.ensure_consumer(self.bus.js, topology.EVENTS,
                                              topology.reader_consumer_config(next_seq, self.filter))

    async def _handle(self, items: list[Delivery[events.Event]]) -> None:
        self.seen.extend(d.item for d in items)
        self._changed.set()

    def start(self) -> LogWatcher:
        self._task = asyncio.create_task(self._consumer.run())
        return self

    async def close(self) -> None:
        self._consumer.stop()
        if self._task:
            await self._task

    async def wait(self, done: Callable[[list[events.Event]], bool], timeout: float) -> bool:
        """Wait until `done(seen)` is true; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done(self.seen):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return True


async def last_seq(bus: Bus) -> int:
    info = await bus.js.stream_info(topology.EVENTS)
    return int(info.state.last_seq)
