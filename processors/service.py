"""The processor on the bus: rebuild state from the log, then consume GRACE_EVENTS in order.

Commands and decisions of a batch are published (broker-acked, commands first)
before the handler returns; the consume loop acks the batch after that. A crash
in between re-derives the same ids on restart, and decisions found in the log
past the ack floor are never emitted again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from nats.js.errors import NotFoundError
from reactivex import abc
from reactivex.scheduler.eventloop import AsyncIOScheduler

from grace import events, heap, topology
from grace.bus import Bus
from grace.consume import Delivery, PullConsumer, read_range
from grace.errors import EventError
from grace.events import Event
from grace.logread import read_subjects
from processors.gates import Settings
from processors.lease import TimerLease
from processors.matcher import OPERATOR_TYPES, Matcher
from processors.model import Playbook
from processors.partition import Partition
from processors.ticker import Ticker

log = logging.getLogger(__name__)

MARGIN_S = 120.0  # extra history read on rebuild: producers' clocks and batches are not exact


class Processor:
    """One processor: a matcher fed by the durable consumer, ticking on a reactivex scheduler
    (AsyncIOScheduler unless one is injected; `clock` overrides only the time it reads)."""

    def __init__(self, bus: Bus, playbooks: Iterable[Playbook], *,
                 consumer: str = topology.PROCESSOR_CONSUMER, host_filter: str = "*",
                 tick_s: float = 1.0, partition: Partition | None = None,
                 scheduler: abc.SchedulerBase | None = None,
                 clock: Callable[[], float] | None = None,
                 settings: Settings | None = None, settle_heap: bool = False) -> None:
        self.bus, self.scheduler, self._clock = bus, scheduler, clock
        self.settle_heap = settle_heap  # the stage's own process: freeze the heap after boot
        self.matcher = Matcher(playbooks, host=bus.host, source=bus.source, settings=settings)
        self.consumer_name, self.host_filter, self.tick_s = consumer, host_filter, tick_s
        self.partition = partition
        # partitions share the timer playbooks (they act on our own host): the lease holder fires
        self.timers = self.matcher.timers
        self.lease: TimerLease | None = None
        if partition is not None:
            self.consumer_name = partition.consumer
            self.lease = TimerLease(bus)
            self.matcher.timers = []
        # the durable reads every event (of `host_filter`'s host); decisions included
        self.filter_subject = (topology.EVENTS_ALL if host_filter == "*"
                               else topology.event_filter(host=host_filter))
        self.lock = asyncio.Lock()  # the handler and the ticker take turns on the matcher
        self.consumer: PullConsumer[Event] | None = None
        self.published = 0
        self.rebuilt_events = 0
        # a batch whose output is not yet published: (first, last seq), output, rejects
        self._retry: tuple[tuple[int, int], list[Event],
                           list[tuple[Delivery[Event], str]]] | None = None
        self._unsent: list[Event] = []  # timer output a failed publish left behind

    # ---------------------------------------------------------------- rebuild

    async def rebuild(self) -> tuple[int, int]:
        """Replay the log's recent past into the matcher (emitting nothing).

        Returns the durable consumer's (ack floor, last delivered) stream sequences.
        """
        try:
            info = await self.bus.js.consumer_info(topology.EVENTS, self.consumer_name)
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            delivered = info.delivered.stream_seq if info.delivered else 0
        except NotFoundError:
            floor = delivered = 0
        stream = await self.bus.js.stream_info(topology.EVENTS)
        last = stream.state.last_seq
        if last == 0:
            return floor, delivered
        start = await self._seq_at_horizon(floor, stream.state.first_seq)
        m = self.matcher
        m.emit = False

        # a reader may deliver past its end (events keep arriving): those are the live loop's
        async def feed(items: list[Delivery[Event]]) -> None:
            for d in items:
                if d.seq <= floor and self.mine(d.item):
                    m.process(d.item)
                    self.rebuilt_events += 1

        async def note(items: list[Delivery[Event]]) -> None:
            for d in items:
                if d.seq <= last and self.mine(d.item):
                    m.note_logged(d.item)
                    self.rebuilt_events += 1

        # past the ack floor: what a crashed run emitted (decisions, a hold's expiry)
        decisions = [topology.event_filter("decision", "*", self.host_filter),
                     *self.operator_subjects()]
        try:
            # holds last up to holds.max: read people's decisions from that far back first
            early = await self._seq_at_horizon(floor, stream.state.first_seq,
                                               m.settings.holds_max_s)
            if early < start and start <= floor:
                await read_subjects(self.bus, early, start - 1, self.operator_subjects(), feed)
            if start <= floor:  # what the last run had acked: rebuild the state
                await read_subjects(self.bus, start, floor, self.rebuild_subjects(), feed)
            if floor < last:  # past the ack floor only decisions count: what a crashed run emitted
                await read_subjects(self.bus, floor + 1, last, decisions, note)
        finally:
            m.emit = True
            m.take()
        m.record_expiries()  # published with the first tick
        log.info("processor: rebuilt state from %d events (seq %d..%d, ack floor %d)",
                 self.rebuilt_events, start, last, floor)
        return floor, max(delivered, floor)

    def rebuild_subjects(self) -> list[str]:
        """The subjects whose events can change the matcher's state: the playbooks' event
        types, condition_cleared, command_failed (fails a verify), verify events, what the
        gates watch, people's decisions (holds, approvals), the processor's decisions."""
        types = sorted(self.matcher.watched_types - OPERATOR_TYPES)
        return [*(topology.event_filter("*", t, self.host_filter) for t in types),
                *self.operator_subjects(),
                topology.event_filter("decision", "*", self.host_filter)]

    def operator_subjects(self) -> list[str]:
        return [topology.event_filter("operator", "*", self.host_filter)]

    async def catch_up(self, floor: int, delivered: int) -> None:
        """Handle what a killed run had received but not acked, in log order.

        The durable consumer would redeliver those only after ack_wait, behind newer
        events; reading them here keeps the matcher in log order.
        """
        async def live(items: list[Delivery[Event]]) -> None:
            mine = [d for d in items if d.seq <= delivered]
            if mine:
                await self.handle(mine)

        if delivered > floor:
            await read_range(self.bus, floor + 1, live, until_seq=delivered,
                             filter_subject=self.filter_subject, stage="processor-catch-up")
            log.info("processor: caught up on seq %d..%d (received but not acked before)",
                     floor + 1, delivered)

    async def _seq_at_horizon(self, floor: int, first: int, horizon_s: float | None = None) -> int:
        """The first sequence whose event is within the horizon (default: the playbooks')
        before the ack floor's event."""
        if floor < first:
            return first
        end = await time_of(self.bus, floor)
        if end is None:
            return first
        horizon = self.matcher.horizon_s if horizon_s is None else horizon_s
        return await seq_at_time(self.bus, end - horizon - MARGIN_S, first, floor)

    def mine(self, ev: Event) -> bool:
        """Whether this processor's partition owns the event's host."""
        return self.partition is None or self.partition.owns(ev.host)

    # ---------------------------------------------------------------- live

    async def handle(self, items: list[Delivery[Event]]) -> None:
        """Match a batch and publish what it decided; return only once the broker acked it."""
        key = (items[0].seq, items[-1].seq)
        if self._retry is not None and self._retry[0] == key:
            _, out, failed = self._retry  # the same batch after a bus error: decisions are made
        else:
            failed = []
            async with self.lock:
                m = self.matcher
                owns = self.partition.owns if self.partition is not None else None
                for d in items:
                    if owns is not None and not owns(d.item.host):
                        continue  # another partition's host: acked with the batch, untouched
                    try:
                        m.process(d.item)
                    except Exception as exc:  # noqa: BLE001 - bad input never stops the stage
                        failed.append((d, f"processor could not apply it: {exc!r}"))
                out = m.take()
            self._retry = (key, out, failed)
        for d, reason in failed:  # rejects dedupe by stage/subject/seq: safe to repeat
            await self.bus.reject(events.encode(d.item), reason, stage="processor",
                                  subject=d.subject, seq=d.seq)
        await self.publish(out)
        self._retry = None

    async def publish(self, out: list[Event]) -> None:
        """Commands first, then decisions: a decision in the log means its command is stored."""
        if not out:
            return
        commands = [e for e in out if e.data.CATEGORY == "command"]
        rest = [e for e in out if e.data.CATEGORY != "command"]
        if commands:
            await self.bus.publish_many(commands)
        if rest:
            await self.bus.publish_many(rest)
        self.published += len(out)

    def clock(self) -> float:
        """Now, from the injected clock, else the scheduler, else the wall clock."""
        if self._clock is not None:
            return self._clock()
        return self.scheduler.now.timestamp() if self.scheduler is not None else time.time()

    async def tick(self) -> None:
        """Advance wall-clock time: verify deadlines and timer playbooks (only when caught up)."""
        if self.lease is not None:
            held = False
            try:
                held = await self.lease.renew()
            finally:
                self.matcher.timers = self.timers if held else []
        c = self.consumer
        if c is not None and (c.pending != 0 or not c.idle.is_set()):
            return  # events still to read may hold the fix: judge deadlines once caught up
        async with self.lock:
            self.matcher.tick(self.clock())
            out = self._unsent + self.matcher.take()
        self._unsent = out
        await self.publish(out)
        self._unsent = []

    async def run(self, stop: asyncio.Event) -> None:
        """Rebuild, then consume until `stop` is set."""
        floor, delivered = await self.rebuild()
        await self.catch_up(floor, delivered)
        if self.settle_heap:
            heap.settle()

        async def ensure(_next_seq: int) -> str:
            name = await topology.ensure_consumer(
                self.bus.js, topology.EVENTS,
                topology.processor_consumer_config(self.consumer_name, self.filter_subject))
            if self.consumer is not None and self.consumer.pending < 0:
                info = await self.bus.js.consumer_info(topology.EVENTS, name)
                if info.num_pending == 0:
                    self.consumer.pending = 0  # an idle log: timers may tick right away
            return name

        self.consumer = PullConsumer(self.bus, topology.EVENTS, ensure, self.handle,
                                     stage="processor", ack="all", start_seq=delivered + 1)
        task = asyncio.create_task(self.consumer.run())
        if self.scheduler is None:
            self.scheduler = AsyncIOScheduler(asyncio.get_running_loop())
        due = asyncio.Event()
        ticker = Ticker(self.scheduler, self.tick_s, lambda _now: due.set())
        ticker.start()
        due.set()  # a first tick right away: timers due now fire at start
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set() and not task.done():
                waiter = asyncio.create_task(due.wait())
                await asyncio.wait([waiter, stopping, task], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if due.is_set():
                    due.clear()
                    try:
                        await self.tick()
                    except Exception as exc:  # noqa: BLE001 - a bus hiccup: the next tick retries
                        log.warning("processor: tick failed, retrying: %r", exc)
        finally:
            ticker.stop()
            stopping.cancel()
            self.consumer.stop()
            await task
            if self.lease is not None:
                await self.lease.release()


async def time_of(bus: Bus, seq: int) -> float | None:
    """The timestamp of the event at `seq` (None: missing or not an event)."""
    try:
        msg = await bus.js.get_msg(topology.EVENTS, seq)
        return events.decode_envelope(msg.data or b"").time.timestamp()
    except (NotFoundError, EventError):
        return None


async def seq_at_time(bus: Bus, since: float, first: int, last: int) -> int:
    """The first sequence in first..last whose event time is >= `since` (binary search)."""
    lo, hi = first, last
    while lo < hi:  # the log is time-ordered closely enough for a start position
        mid = (lo + hi) // 2
        t = await time_of(bus, mid)
        if t is None or t < since:
            lo = mid + 1
        else:
            hi = mid
    return lo
