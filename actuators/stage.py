"""`grace act`: the actuator stage. Supervises the kernels (honouring operators' holds on
them), carries out this host's commands at most once in effect, runs the coding-agent task
handler, heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js.errors import NotFoundError

from actuators import snapshots
from actuators.agent import AgentHandler
from actuators.deferred import Deferred
from actuators.executor import Executor
from actuators.holds_feed import HoldsFeed
from actuators.intents import IntentStore
from actuators.supervisor import Supervisor
from grace import events, kernelstate, topology
from grace.bus import Bus
from grace.cliutil import Context
from grace.consume import Delivery, PullConsumer
from grace.errors import GraceError

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0


class Outbox:
    """Lifecycle events from synchronous code, published in order with retries."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.queue: asyncio.Queue[events.Event] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    def put(self, payload: events.Payload) -> None:
        self.queue.put_nowait(self.bus.event(payload))  # the id is fixed now: retries dedupe

    async def _run(self) -> None:
        while True:
            ev = await self.queue.get()
            delay = 0.2
            while True:
                try:
                    await self.bus.publish(ev)
                    break
                except Exception as exc:  # noqa: BLE001 - the bus comes back; keep the event
                    log.warning("actuator: cannot publish %s yet (%r); retrying", ev.type, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            self.queue.task_done()

    async def flush(self) -> None:
        """Wait until every event put so far is published."""
        await self.queue.join()

    async def close(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout)
        self.task.cancel()


async def _with_progress(bus: Bus, d: Delivery[events.Event], deferred: Deferred,
                         every: float) -> None:
    """Handle one command, telling JetStream it is in progress so it is not redelivered meanwhile."""
    async def tick() -> None:
        while True:
            await asyncio.sleep(every)
            await bus.nc.publish(d.reply, b"+WPI")

    ticker = asyncio.create_task(tick())
    try:
        await deferred.handle(d.item)
    finally:
        ticker.cancel()


async def take_over_unacked(bus: Bus, executor: Executor | Deferred, host: str,
                            limit: int = 10_000) -> int:
    """Run the commands a killed run had received but not acked, now.

    JetStream would redeliver them only after ack_wait (60s): a crash would hold a
    remediation that long. They are still in the work-queue stream (acked ones are
    gone); the intent store keeps each at most once, so the late redelivery finds it
    done and is only acked.
    """
    try:
        info = await bus.js.consumer_info(topology.COMMANDS, topology.actuator_consumer(host))
    except NotFoundError:
        return 0
    if not info.num_ack_pending:
        return 0
    first = info.ack_floor.stream_seq + 1 if info.ack_floor else 1
    last = min(info.delivered.stream_seq if info.delivered else 0, first + limit - 1)
    prefix = topology.command_filter(host)[:-1]  # "grace.commands.<host>."
    n = 0
    for seq in range(first, last + 1):
        try:
            msg = await bus.js.get_msg(topology.COMMANDS, seq)
        except NotFoundError:
            continue  # acked meanwhile: the work queue deleted it
        if not (msg.subject or "").startswith(prefix):
            continue  # another host's command: its own actuator takes it
        try:
            ev = events.decode(msg.data or b"")
        except GraceError:
            continue  # the consume loop rejects it with its reason when it comes back
        await executor.handle(ev)
        n += 1
    return n


async def run_stage(ctx: Context, stop: asyncio.Event) -> None:
    """Run the actuator until `stop` is set; stop kernels gracefully on the way out."""
    cfg = ctx.cfg
    bus = await ctx.bus("actuator")
    outbox = Outbox(bus)
    outbox.put(snapshots.policy(cfg))
    state_file = kernelstate.state_path(cfg)
    holds = HoldsFeed(bus, cfg.host, float(cfg.holds.max))
    await holds.start()  # before the first kernel starts: a kernel held at start stays stopped
    supervisor = Supervisor(cfg, outbox.put, nats_url=ctx.url(), state_file=state_file,
                            held_by=holds.covering)
    await supervisor.start()
    executor = Executor(cfg, bus, await IntentStore.open(bus, cfg.host), supervisor,
                        flush=outbox.flush)
    deferred = Deferred(executor)  # notify runs beside the other commands, not before them
    resumed = await executor.resume_open(deferred.handle)
    if resumed:
        log.info("actuator: finished %d command(s) a previous run left in progress", resumed)
    taken = await take_over_unacked(bus, deferred, cfg.host)
    if taken:
        log.info("actuator: ran %d command(s) a previous run had received but not acked", taken)

    progress_every = [10.0]

    async def ensure(_seq: int) -> str:
        name = await topology.ensure_consumer(bus.js, topology.COMMANDS,
                                              topology.actuator_consumer_config(cfg.host))
        info = await bus.js.consumer_info(topology.COMMANDS, name)
        progress_every[0] = max(0.2, float(info.config.ack_wait or 30.0) / 3)
        return name

    async def handle(items: list[Delivery[events.Event]]) -> None:
        for d in items:
            await _with_progress(bus, d, deferred, progress_every[0])

    consumer: PullConsumer[events.Event] = PullConsumer(
        bus, topology.COMMANDS, ensure, handle, stage="actuator", ack="each", batch=4, max_buffer=16)
    agent = AgentHandler(cfg, bus)
    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(agent.run())]
    log.info("actuator for host %s: %d kernel(s), consuming %s", cfg.host, len(cfg.kernels),
             topology.command_filter(cfg.host))
    try:
        seq = 0
        while not stop.is_set():
            await bus.heartbeat("act", "stage", seq=seq)
            seq += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_S)
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
    finally:
        consumer.stop()
        agent.stop()
        await asyncio.gather(*tasks, return_exceptions=True)  # the command in hand finishes first
        await deferred.close()
        await supervisor.stop()
        await holds.close()
        await outbox.close()
        await bus.close()
