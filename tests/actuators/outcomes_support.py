"""The shipped example system on a real bus: an executor and Grace's own task handler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest_asyncio

from actuators.agent import AgentHandler
from actuators.executor import Executor
from actuators.intents import IntentStore
from grace import bus as bus_mod
from grace import config as config_mod
from grace import events, topology
from grace.app import demo
from grace.bus import Bus
from grace.config import Config
from processors import stage, validate
from processors.matcher import Matcher
from tests.actuators.helpers import events_of, unique_host
from tests.processors.support import ev
from tests.support import wait_for


@dataclass
class Example:
    """A copy of examples/ (shipped grace.yaml, unique host), an executor without kernels."""

    root: Path
    cfg: Config
    bus: Bus
    executor: Executor

    def shipped(self) -> Matcher:
        """The shipped playbooks, as the processor runs them."""
        return Matcher(validate.load_paths([stage.SHIPPED]), host="grace-1", source="grace/test")

    def commands_for(self, *findings: tuple[events.Payload, float]) -> list[events.Event]:
        """The commands the shipped playbooks issue for findings of this host at virtual times
        (timer playbooks left out)."""
        m = self.shipped()
        timers = {p.name for p in m.playbooks.values() if p.every_s}
        out: list[events.Event] = []
        for payload, t in findings:
            e = ev(payload, t, host=self.cfg.host)
            m.tick(e.time.timestamp())
            m.process(e)
            out += m.take()
        return [e for e in out if e.data.CATEGORY == "command" and e.data.playbook not in timers]

    async def run(self, cmd: events.Event) -> events.FixTask:
        """Execute a command; the fix task it published."""
        result = await self.executor.handle(cmd)
        assert isinstance(result.data, events.CommandSucceeded), result.data
        task_id = result.data.details["task_id"]
        tasks = [t.data for t in await tasks_of(self.bus, self.cfg.host) if t.id == task_id]
        assert len(tasks) == 1 and isinstance(tasks[0], events.FixTask)
        return tasks[0]

    async def report(self, task: events.FixTask) -> events.FixReport:
        """Run Grace's task handler until it reports on `task`; that report."""
        handler = AgentHandler(self.cfg, self.bus)
        running = asyncio.create_task(handler.run())

        async def found() -> list[events.FixReport]:
            return [e.data for e in await events_of(self.bus, self.cfg.host, "task", "fix_report")
                    if e.data.task_id == task.task_id]

        try:
            reports = await wait_for(found, timeout=120, interval=0.2)
        finally:
            handler.stop()
            await running
        assert len(reports) == 1, reports
        return reports[0]


async def tasks_of(bus: Bus, host: str) -> list[events.Event]:
    """The fix tasks of `host` on GRACE_TASKS (an ephemeral pull consumer)."""
    found: list[events.Event] = []
    sub = await bus.js.pull_subscribe(topology.task_subject(host, "*"), durable=None,
                                      stream=topology.TASKS)
    try:
        while True:
            msgs = await sub.fetch(50, timeout=1)
            found += [events.decode(m.data) for m in msgs]
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return found


@pytest_asyncio.fixture(loop_scope="session")
async def example(tmp_path: Path, nats_url: str) -> AsyncIterator[Example]:
    root = tmp_path / "system"
    demo.init_copy(root)
    cfg = msgspec.structs.replace(config_mod.load(root / "grace.yaml"), host=unique_host("ex"))
    b = await bus_mod.connect_and_ensure(nats_url, host=cfg.host, source="grace/test/outcomes")
    try:
        yield Example(root, cfg, b, Executor(cfg, b, await IntentStore.open(b, cfg.host), None))
    finally:
        await b.close()
