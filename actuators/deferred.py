"""Commands that may wait minutes on a peer (`notify`: a sink that keeps failing is retried
with backoff) run beside the host's other commands, never in front of them.

The command's intent is recorded first (Executor.prepare: planned, stored in the KV bucket),
then the delivery may be acked: from that point the intent alone carries the command, as
after a crash (Executor.resume_open finishes it on the next start). Delivery is then carried
out in a task of its own, with the same at-most-once notes and the same one result; an error
while it finishes (a bus outage) is logged and retried from the intent, which never posts
twice once a 2xx is noted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from actuators.executor import Executor, Started
from grace import events

log = logging.getLogger(__name__)

DEFERRED_ACTIONS = frozenset({"notify"})
RETRY_MAX_S = 5.0


class Deferred:
    """The background worker for DEFERRED_ACTIONS of one actuator."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def takes(ev: events.Event) -> bool:
        return ev.type in DEFERRED_ACTIONS

    async def handle(self, ev: events.Event) -> None:
        """Any command: a deferred one is recorded, then left to run on its own; another runs now."""
        if not self.takes(ev):
            await self.executor.handle(ev)
            return
        started = await self.executor.prepare(ev)
        if isinstance(started, events.Event):
            return  # it ended already (done before, or refused before acting)
        task = asyncio.create_task(self._run(started), name=f"{ev.type} {ev.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, started: Started) -> None:
        ev, delay = started.ev, 0.2
        try:
            await self.executor.carry_out(started)
            return
        except Exception as exc:  # noqa: BLE001 - the intent keeps it: resume, say so
            log.warning("actuator: %s %s interrupted (%r); resuming from its intent", ev.type,
                        ev.id, exc)
        while True:  # the intent (and its notes) say where it was: handle() resumes there
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            try:
                await self.executor.handle(ev)
                return
            except Exception as exc:  # noqa: BLE001 - a bus outage passes; keep the command
                log.warning("actuator: %s %s still cannot finish (%r); retrying in %.1fs",
                            ev.type, ev.id, exc, delay)

    async def close(self, grace_s: float = 5.0) -> None:
        """Give running deliveries `grace_s` to finish, then stop them: their intents stay
        open and the next start finishes them."""
        if not self.tasks:
            return
        _done, pending = await asyncio.wait(set(self.tasks), timeout=grace_s)
        for t in pending:
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.info("actuator: %d notification(s) still retrying at stop; the next start "
                     "finishes them from their intents", len(pending))
