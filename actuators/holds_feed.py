"""The holds that apply to this host's kernels, read from the log: history, then live.

The actuator honours `kernel:<name>`, `kernel:<name>/<instance>` and `host:<this host>`
holds: the supervisor neither starts nor restarts an instance one covers. The holds are
rebuilt from the operator events of GRACE_EVENTS (`hold_added`, `hold_released`), read
from `holds.max` (plus a margin) before now, so a hold added before this actuator started
(a restart of all of Grace) is honoured. A hold ends at its `until` even before the
`hold_released` of its expiry arrives.

When the log cannot be read (NATS down), this says so in the actuator's log and keeps
the holds it knew: each still ends at its own `until` (at most `holds.max` away), and
every instance no known hold covers is restarted as usual. An unknown hold state never
stops restarts for good; a hold added or released while the log is unreadable applies
once the log can be read again (the reader resumes where it left off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from nats.js import api

from grace import events, topology
from grace.bus import Bus
from grace.consume import Delivery, PullConsumer
from grace.holds import Hold, HoldBook, Scope

log = logging.getLogger(__name__)

# hosts' clocks differ and a hold may be published a little after its `until` was computed:
# read this much further back than holds.max
MARGIN = timedelta(hours=1)
LOAD_TIMEOUT_S = 10.0
WATCH_S = 2.0


class HoldsFeed:
    """A HoldBook for `host`, fed by an ordered reader of the log's operator events."""

    def __init__(self, bus: Bus, host: str, max_s: float, *,
                 clock: Callable[[], datetime] = events.now) -> None:
        self.bus, self.host, self.max_s, self.clock = bus, host, max_s, clock
        self.book = HoldBook()
        self.loaded = asyncio.Event()  # the history up to the start is in the book
        self.readable = True  # False while the log cannot be read (said once in the log)
        self._consumer: PullConsumer[events.Event] = PullConsumer(
            bus, topology.EVENTS, self._ensure, self._handle, stage="actuator-holds", ack="none",
            batch=500, expires=2.0)
        self._tasks: list[asyncio.Task[None]] = []

    # ---------------------------------------------------------------- queries

    def covering(self, kernel: str, index: int) -> Hold | None:
        """The active hold that covers instance `index` of `kernel` on this host, if any."""
        scope = Scope(host=self.host, kernels=frozenset({(kernel, index)}))
        return self.book.covering(scope, self.clock())

    # ---------------------------------------------------------------- reading

    def _since(self) -> datetime:
        return self.clock().astimezone(UTC) - timedelta(seconds=self.max_s) - MARGIN

    async def _ensure(self, next_seq: int) -> str:
        cfg = topology.reader_consumer_config(next_seq, topology.event_filter("operator", "*", "*"))
        if next_seq <= 1:  # nothing read yet: from the oldest time a hold in force can be added
            cfg.deliver_policy, cfg.opt_start_seq = api.DeliverPolicy.BY_START_TIME, None
            cfg.opt_start_time = self._since()  # nats-py writes it as UTC ISO 8601
        info = await self.bus.js.add_consumer(topology.EVENTS, cfg)
        if info.num_pending == 0:
            self.loaded.set()  # nothing (more) to read: the book is current
        return info.name

    async def _handle(self, items: list[Delivery[events.Event]]) -> None:
        for d in items:
            self.book.apply(d.item)

    async def _loaded(self) -> None:
        """Until the history is in the book: nothing to read at the start, or none left
        after a batch (the consumer's count of what is left for it)."""
        while not (self.loaded.is_set() or self._consumer.pending == 0):  # noqa: ASYNC110 - a counter
            await asyncio.sleep(0.02)
        self.loaded.set()

    async def start(self, timeout: float = LOAD_TIMEOUT_S) -> bool:
        """Start reading; wait up to `timeout` for the holds in force now. False (said loudly
        in the log) when they could not be read: the supervisor then starts as if none held."""
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._watch())]
        try:
            await asyncio.wait_for(self._loaded(), timeout)
        except TimeoutError:
            log.error("actuator: could not read the holds (hold_added/hold_released) from the log "
                      "within %.0fs; starting kernels as if none were held. Check that NATS is up "
                      "(the connection errors above name its URL); holds apply as soon as the log "
                      "can be read", timeout)
            return False
        held = self.book.active(self.clock())
        if held:
            log.info("actuator: %d hold(s) in force: %s", len(held),
                     ", ".join(f"{h.hold_id} ({h.target})" for h in held))
        return True

    async def _read(self) -> None:
        """Run the reader; a failure to set it up is said and retried, never fatal."""
        while True:
            try:
                await self._consumer.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the supervisor must go on supervising
                log.error("actuator: reading holds from the log failed (%r); known holds still "
                          "end at their time, retrying in 5s", exc)
                await asyncio.sleep(5.0)

    async def _watch(self) -> None:
        """Say in the log when holds cannot be followed (NATS unreachable), and when they can again."""
        while True:
            await asyncio.sleep(WATCH_S)
            connected = bool(self.bus.nc.is_connected)
            if self.readable and not connected:
                held = self.book.active(self.clock())
                log.error("actuator: lost the log (NATS unreachable): holds added or released from "
                          "now on are not seen until it is back; the %d hold(s) known still apply "
                          "until they end, every other kernel is restarted as usual", len(held))
            elif not self.readable and connected:
                log.warning("actuator: the log is reachable again; following holds")
            self.readable = connected

    async def close(self) -> None:
        self._consumer.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
