"""`grace process` as a stage: load the playbooks, run the processor, send heartbeats."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from grace import playbook_files
from grace.cliutil import Context
from processors import partition as partition_mod
from processors import validate
from processors.gates import Settings
from processors.model import Playbook
from processors.service import Processor

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
SHIPPED = playbook_files.SHIPPED


def playbook_paths(ctx: Context) -> list[Path]:
    """The config's `playbooks` paths; the shipped folder when the config names none."""
    return playbook_files.playbook_paths(ctx.cfg)


def load_playbooks(ctx: Context) -> list[Playbook]:
    """Every playbook the config names; raises ValidationErrors (file:line) on any error."""
    return validate.load_paths(list(playbook_paths(ctx)), sinks=[s.name for s in ctx.cfg.notify])


def settings(ctx: Context, observe: bool = False) -> Settings:
    """The deciding rules of the config; `observe` (grace up --observe) wins over processor.mode."""
    cfg = ctx.cfg
    return Settings(observe=observe or cfg.processor.mode == "observe",
                    holds_max_s=float(cfg.holds.max),
                    max_commands=cfg.safety.max_commands.count,
                    max_commands_per_s=float(cfg.safety.max_commands.per),
                    max_pool_restarting=cfg.safety.max_pool_restarting,
                    max_chain_depth=cfg.safety.max_chain_depth,
                    sinks=tuple(s.name for s in cfg.notify))


async def run_stage(ctx: Context, stop: asyncio.Event, partition: str | None = None,
                    observe: bool = False) -> None:
    """Run the processor until `stop` is set; refuses to start on invalid playbooks.

    `partition` "I/N" (default: env GRACE_PARTITION) handles only the hosts hashing to I.
    `observe`: every playbook records what it would do and sends nothing."""
    playbooks = load_playbooks(ctx)
    rules = settings(ctx, observe)
    part = partition_mod.parse(partition if partition is not None
                               else os.environ.get("GRACE_PARTITION"))
    bus = await ctx.bus("processor")
    try:
        processor = Processor(bus, playbooks, partition=part, settings=rules, settle_heap=True)
        log.info("processor: %d playbooks loaded from %s%s%s", len(playbooks),
                 ", ".join(map(str, playbook_paths(ctx))),
                 f"; partition {part} (durable {part.consumer})" if part else "",
                 "; OBSERVE mode: every playbook records what it would do, nothing is sent"
                 if rules.observe else "")
        task = asyncio.create_task(processor.run(stop))
        while not task.done():
            try:
                # named after the stage command: `grace ping` and the watchdog look for it
                await bus.heartbeat("process", "stage")
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat is not fatal
                log.warning("processor: heartbeat failed: %r", exc)
            await asyncio.wait([task], timeout=HEARTBEAT_S)
        await task
    finally:
        await bus.close()
