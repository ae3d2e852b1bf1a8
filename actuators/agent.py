"""Grace's built-in coding-agent handler: consumes fix tasks, runs the targeted checks.

Any program may consume GRACE_TASKS; this handler py_compiles and lints
(pyflakes) the implicated files, runs the tests that name them (code.tests),
optionally hands the task to an external agent command (agent.command + the task
as a JSON file path), and publishes a fix_report event: `failed` if a check
failed, `passed` if compile/lint/tests ran and passed, `unverified` if nothing
could be checked. Reviews (review_code) are tasks of kind `review`, handled here
too, so a test run never holds up the command queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

from actuators import checks
from grace import events, topology
from grace.bus import Bus
from grace.config import Config
from grace.consume import Delivery, PullConsumer

log = logging.getLogger(__name__)


def consumer_config(host: str) -> Any:
    """The agent consumer of this host: only its own host's tasks."""
    base = topology.agent_consumer_config(f"{topology.AGENT_CONSUMER}-{host}")
    return dataclasses.replace(base, filter_subject=topology.task_subject(host, "*"))


def _write_task(tasks_dir: Path, task: events.FixTask, host: str) -> Path:
    """The task as an event file for the agent command; returns its path."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    path = tasks_dir / f"{task.task_id}.json"
    path.write_bytes(events.encode(events.make_event(task, host=host, source="grace/agent",
                                                     id=task.task_id)))
    return path


async def handle_task(cfg: Config, task: events.FixTask, tasks_dir: Path) -> events.FixReport:
    """Run the checks for one task and build its report."""
    timeout = float(cfg.agent.timeout)
    files, outside = checks.partition_code(cfg, task.files)
    existing = [f for f in files if f.is_file()]
    missing = [str(f) for f in files if not f.is_file()]
    found = await checks.static_checks(cfg, existing, timeout)
    found += await checks.targeted_tests(cfg, existing, timeout)
    if cfg.agent.command:
        path = await asyncio.to_thread(_write_task, tasks_dir, task, cfg.host)
        r = await checks.run_argv([*cfg.agent.command, str(path)], checks.code_root(cfg), timeout)
        found.append({"check": "agent_command", **r})
    outcome = checks.outcome(found)
    failed = [c for c in found if not c["ok"]]
    if outcome == "unverified":
        summary = ("nothing checked: " + ("no files named" if not task.files else
                   "no Python file inside the code root or a kernel's code: among the files"))
    else:
        summary = f"{len(found)} checks, {len(failed)} failed"
    if missing:
        summary += f"; missing: {', '.join(missing)}"
    if outside:
        summary += f"; not checked (outside code root {checks.code_root(cfg)}): {', '.join(outside)}"
    return events.FixReport(task_id=task.task_id, kind=task.kind, outcome=outcome,  # type: ignore[arg-type]
                            checks=found, summary=summary)


class AgentHandler:
    """Consumes this host's fix tasks until stop()."""

    def __init__(self, cfg: Config, bus: Bus) -> None:
        self.cfg, self.bus = cfg, bus
        self.reports = 0
        self.consumer: PullConsumer[events.Event] = PullConsumer(
            bus, topology.TASKS, self._ensure, self._handle, stage="agent", ack="each", batch=4)

    async def _ensure(self, _seq: int) -> str:
        return await topology.ensure_consumer(self.bus.js, topology.TASKS, consumer_config(self.cfg.host))

    async def _handle(self, items: list[Delivery[events.Event]]) -> None:
        for d in items:
            task = d.item.data
            if not isinstance(task, events.FixTask):
                log.warning("agent: ignoring %s on %s (not a fix task)", d.item.type, d.subject)
                continue
            report = await handle_task(self.cfg, task, self.cfg.data_path / "tasks")
            await self.bus.publish(self.bus.event(report, id=events.derive_id("fix_report", task.task_id),
                                                  host=self.cfg.host))
            self.reports += 1

    async def run(self) -> None:
        await self.consumer.run()

    def stop(self) -> None:
        self.consumer.stop()
