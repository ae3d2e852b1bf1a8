"""`grace produce`: the trigger monitor as a stage process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from grace.bus import Bus
from grace.cliutil import Context
from producers.monitor import TriggerMonitor
from producers.state import StateStore

log = logging.getLogger(__name__)
STAGE = "produce"
HEARTBEAT_EVERY = 5.0


async def _heartbeats(bus: Bus, stop: asyncio.Event) -> None:
    seq = 0
    while not stop.is_set():
        seq += 1
        with contextlib.suppress(Exception):
            await bus.heartbeat(STAGE, "stage", seq=seq)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_EVERY)


async def run_stage(ctx: Context, stop: asyncio.Event) -> None:
    """Run the trigger monitor until `stop` is set, heartbeating as a stage."""
    bus = await ctx.bus(STAGE)
    try:
        monitor = TriggerMonitor(ctx.cfg, bus, StateStore(ctx.data_dir / "state"))
        beats = asyncio.create_task(_heartbeats(bus, stop))
        try:
            await monitor.run(stop)
        finally:
            stop.set()
            await beats
    finally:
        await bus.close()
