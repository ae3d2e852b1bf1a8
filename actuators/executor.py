"""Carry out one command at most once in effect, ending in exactly one result.

Order: look up the intent; if done, re-publish its recorded result (same id:
the log dedupes); if absent, plan the target and record `started` before acting;
apply toward the (recorded) target; record `done` with the result; publish it.
A crash anywhere leaves a record that a redelivery (or the next start) finishes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from actuators.actions import ACTIONS, Action, ActionContext
from actuators.intents import Intent, IntentStore
from actuators.supervisor import Supervisor
from grace import events
from grace.bus import Bus
from grace.config import Config
from grace.consume import TRANSIENT
from grace.errors import ActionError, GraceError

log = logging.getLogger(__name__)


@dataclass
class Started:
    """A command whose intent is recorded: what carry_out() needs to act on it."""

    ev: events.Event
    cmd: events.Command
    action: Action
    intent: Intent | None
    t0: float  # perf_counter at receipt: the result's duration counts from here


def result_id(command_id: str) -> str:
    return events.derive_id("result", command_id)


class Executor:
    """Runs commands for one host's actuator."""

    def __init__(self, cfg: Config, bus: Bus, intents: IntentStore, supervisor: Supervisor | None,
                 clock: Callable[[], datetime] = events.now,
                 flush: Callable[[], Awaitable[None]] | None = None) -> None:
        self.cfg, self.bus, self.intents, self.supervisor = cfg, bus, intents, supervisor
        self.clock = clock
        self.flush = flush  # publishes pending kernel events: effects precede the result in the log

    async def handle(self, ev: events.Event) -> events.Event:
        """Carry out a command event; returns the (published) result event."""
        started = await self.prepare(ev)
        if isinstance(started, events.Event):
            return started
        return await self.carry_out(started)

    async def prepare(self, ev: events.Event) -> Started | events.Event:
        """Everything before acting: the recorded intent of `ev` (planned and stored now when
        absent), or its result when it ends here (done before, not a command, refused plan)."""
        cmd = ev.data
        t0 = time.perf_counter()
        if not isinstance(cmd, events.Command):
            return await self._finish(ev, t0, None, f"{ev.type} is not a command", {})
        if ev.host != self.cfg.host:
            return await self._finish(ev, t0, None, None, {"host": ev.host}, skipped="not_for_this_host")
        intent = await self.intents.get(ev.id)
        if intent is not None and intent.state == "done":
            return await self._republish(intent)
        action = ACTIONS.get(cmd.TYPE)
        if action is None:
            return await self._finish(ev, t0, None, f"no actuator action for {cmd.TYPE}", {})
        started = Started(ev, cmd, action, intent, t0)
        try:
            if intent is None:
                target = await action.plan(self._context(started), cmd)
                started.intent = Intent(command_id=ev.id, action=cmd.TYPE, state="started",
                                        command=msgspec.Raw(events.encode(ev)), target=target,
                                        started_at=self.clock().isoformat())
                await self.intents.put(started.intent)  # durable before anything is touched
            else:
                intent.attempts += 1
                await self.intents.put(intent)
                log.info("resuming %s %s toward its recorded target %s", cmd.TYPE, ev.id,
                         intent.target)
        except TRANSIENT:
            raise  # the bus is down: the command stays unacked and its intent says where we were
        except GraceError as exc:
            extra = exc.details if isinstance(exc, ActionError) else {}
            return await self._finish(ev, t0, started.intent, str(exc),
                                      {"target": started.intent.target if started.intent else {},
                                       **extra})
        except Exception as exc:  # a failing action is a failed result, not a crash
            log.exception("%s %s failed", cmd.TYPE, ev.id)
            return await self._finish(ev, t0, started.intent, f"{type(exc).__name__}: {exc}", {})
        return started

    async def carry_out(self, started: Started) -> events.Event:
        """Act toward the recorded target and publish the command's one result."""
        ev, intent = started.ev, started.intent
        assert intent is not None  # prepare() recorded it
        try:
            details = await started.action.apply(self._context(started), started.cmd,
                                                 intent.target)
            if intent.attempts > 1:
                details = {**details, "resumed": True, "attempts": intent.attempts}
        except TRANSIENT:
            raise  # the bus is down: the intent says where we were; a resume finishes it
        except GraceError as exc:
            extra = exc.details if isinstance(exc, ActionError) else {}
            return await self._finish(ev, started.t0, intent, str(exc),
                                      {"target": intent.target, **extra})
        except Exception as exc:  # a failing action is a failed result, not a crash
            log.exception("%s %s failed", started.cmd.TYPE, ev.id)
            return await self._finish(ev, started.t0, intent, f"{type(exc).__name__}: {exc}", {})
        return await self._finish(ev, started.t0, intent, None, details)

    def _context(self, started: Started) -> ActionContext:
        """The action's view: notes and steps go to the intent once it is recorded."""
        async def note(step: str) -> None:
            if started.intent is not None:
                started.intent.steps.append(step)
                await self.intents.put(started.intent)

        def steps() -> list[str]:
            return list(started.intent.steps) if started.intent is not None else []

        return ActionContext(self.cfg, self.supervisor, self._publish, started.ev.id, note,
                             self.clock, steps)

    async def _publish(self, payload: events.Payload, id: str) -> None:
        await self.bus.publish(self.bus.event(payload, id=id, host=self.cfg.host))

    async def _finish(self, ev: events.Event, t0: float, intent: Intent | None, failure: str | None,
                      details: dict[str, Any], skipped: str | None = None) -> events.Event:
        cmd = ev.data
        common: dict[str, Any] = {
            "command_id": ev.id, "action": ev.type, "playbook": getattr(cmd, "playbook", ""),
            "duration_ms": (time.perf_counter() - t0) * 1000.0, "details": details,
            "target": self._target(cmd)}
        data: events.Result
        if skipped:
            data = events.CommandSkipped(reason=skipped, **common)  # type: ignore[arg-type]
        elif failure is not None:
            data = events.CommandFailed(reason=failure, **common)
        else:
            data = events.CommandSucceeded(**common)
        result = self.bus.event(data, id=result_id(ev.id), host=self.cfg.host)
        if intent is None:
            intent = Intent(command_id=ev.id, action=ev.type, state="done",
                            command=msgspec.Raw(events.encode(ev)), started_at=self.clock().isoformat())
        intent.state, intent.result_id = "done", result.id
        intent.result = msgspec.Raw(events.encode(result))
        await self.intents.put(intent)  # done first: a crash before publishing re-publishes this result
        if self.flush is not None:
            await self.flush()
        await self.bus.publish(result)
        intent.published = True
        await self.intents.put(intent)
        return result

    async def _republish(self, intent: Intent) -> events.Event:
        """A redelivered command that was done: publish its recorded result only if that
        never got a broker ack (past the dedup window a second copy would be stored)."""
        result = events.decode(bytes(intent.result))
        if not intent.published:
            await self.bus.publish(result)
            intent.published = True
            await self.intents.put(intent)
        log.info("command %s already done (result %s); not acting again", intent.command_id, result.id)
        return result

    @staticmethod
    def _target(cmd: events.Payload) -> str:
        action = ACTIONS.get(cmd.TYPE)
        if action is None or not isinstance(cmd, action.params):
            return ""
        return str(action.target(cmd))

    async def resume_open(self, handle: Callable[[events.Event], Awaitable[object]] | None = None
                          ) -> int:
        """Finish the commands a previous run of this actuator started but did not finish
        (through `handle`, when given: the stage's own routing of commands)."""
        handle = handle or self.handle
        n = 0
        for intent in await self.intents.open_intents():
            try:
                ev = events.decode(bytes(intent.command))
            except GraceError as exc:
                log.error("intent %s holds an unreadable command: %s", intent.command_id, exc)
                continue
            await handle(ev)
            n += 1
        return n
