"""latency_queue: JetStream consumer backlog and p95 latency of health probes.

Backlog = num_pending + num_ack_pending of the kernel's `queue` consumer,
compared with `queue.max_backlog`; at or below `queue.low_backlog` while the
pool runs more than `pool.min` processes (counted in the world,
producers/pools.py) it is queue_backlog_low: a worker can be given back.
Latency: `thresholds.latency_probes` GETs of `health_url` per run
(`probe_plan`); p95 (nearest rank) of the samples inside
`thresholds.latency_window` against `kernel.latency_p95_ms`. A probe that does
not answer in time is a slow sample at the time it waited (at least twice the
threshold), never a dropped one; any answer below HTTP 400 counts, JSON or not.
The samples are shared with telemetry_drift.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from pathlib import Path
from typing import ClassVar

import aiohttp
from nats.js.errors import NotFoundError

from grace import events
from grace.config import Config, Kernel
from producers.base import CheckResult, Env
from producers.pools import pool_sizes
from producers.probes import ProbeFailed, ProbeTimedOut, probe

PROBE_BUDGET = 0.8  # share of monitor.timeout the probes of one run may use


def p95(values: list[float]) -> float:
    """95th percentile, nearest-rank method."""
    s = sorted(values)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


class LatencyQueue:
    NAME: ClassVar[str] = "latency_queue"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env
        self.timeouts: dict[str, deque[float]] = {}  # kernel -> times of probes that timed out

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        cfg = self.env.cfg
        res = CheckResult()
        queued = [k for k in cfg.kernels if k.queue]
        probed = [k for k in cfg.kernels if k.health_url]
        if queued and self.env.bus is None:
            res.notes.append("queue backlog of " + ", ".join(k.name for k in queued)
                             + " skipped: no NATS")
        elif queued:
            await self._backlogs(res, queued)
        if probed:
            await self._latencies(res, probed)
        res.stats.update({"queues": len(queued), "probed": len(probed)})
        if not queued and not probed:
            res.skipped = "no kernel has a queue or a health_url"
        elif not probed and self.env.bus is None:
            res.skipped = "no NATS"
        return res

    async def _backlogs(self, res: CheckResult, kernels: list[Kernel]) -> None:
        assert self.env.bus is not None
        low: dict[str, tuple[Kernel, int]] = {}  # pools that may give a worker back
        for k in kernels:
            q = k.queue
            assert q is not None
            try:
                info = await self.env.bus.js.consumer_info(q.stream, q.consumer)
            except NotFoundError:
                res.errors.append(f"kernel {k.name}: consumer {q.consumer} on stream {q.stream} "
                                  "does not exist; fix kernels[].queue in the config")
                continue
            pending, ack_pending = int(info.num_pending or 0), int(info.num_ack_pending or 0)
            backlog = pending + ack_pending
            res.stats[f"backlog.{k.name}"] = backlog
            if backlog > q.max_backlog:
                res.findings.append(events.QueueBacklog(
                    kernel=k.name, stream=q.stream, consumer=q.consumer, pending=pending,
                    ack_pending=ack_pending, backlog=backlog, threshold=q.max_backlog,
                    trigger=self.NAME))
            elif backlog <= q.low_backlog and k.pool is not None and k.pool.max > k.pool.min:
                low[k.name] = (k, backlog)
        if not low:
            return
        cfg = self.env.cfg
        sizes = await asyncio.to_thread(pool_sizes, cfg.host, cfg.data_path, set(low))
        for name, (k, backlog) in low.items():
            q, pool = k.queue, k.pool
            assert q is not None and pool is not None
            res.stats[f"workers.{name}"] = sizes[name]
            if sizes[name] > pool.min:
                res.findings.append(events.QueueBacklogLow(
                    kernel=name, stream=q.stream, consumer=q.consumer, backlog=backlog,
                    threshold=q.low_backlog, workers=sizes[name], min_workers=pool.min,
                    trigger=self.NAME))

    async def _latencies(self, res: CheckResult, kernels: list[Kernel]) -> None:
        th = self.env.cfg.thresholds.latency_queue
        async with aiohttp.ClientSession() as session:
            # kernels in parallel (different servers); each kernel's probes one after another,
            # so a serial server is not measured against its own queue
            await asyncio.gather(*(self._kernel(res, session, k) for k in kernels))
        now = self.env.clock()
        for k in kernels:
            window = self.env.shared.latency.get(k.name)
            if window is None:
                continue
            while window and window[0][0] < now - float(th.latency_window):
                window.popleft()
            samples = [ms for _, ms in window]
            if len(samples) < th.latency_min_samples:
                continue
            value = p95(samples)
            res.stats[f"p95_ms.{k.name}"] = round(value, 3)
            if value > k.latency_p95_ms:
                timeouts = self.timeouts.get(k.name, deque())
                res.findings.append(events.LatencySpike(
                    kernel=k.name, url=k.health_url or "", p95_ms=round(value, 3),
                    threshold_ms=k.latency_p95_ms, samples=len(samples), trigger=self.NAME,
                    timeouts=sum(1 for t in timeouts if t >= now - float(th.latency_window))))

    async def _kernel(self, res: CheckResult, session: aiohttp.ClientSession, k: Kernel) -> None:
        """This run's probes of one kernel, appended to its window as (time, ms)."""
        cfg = self.env.cfg
        n, timeout = probe_plan(cfg, k, cfg.thresholds.latency_queue.latency_probes)
        for _ in range(n):
            try:
                ms, _ = await probe(session, k.health_url or "", timeout)
            except ProbeTimedOut as exc:
                # no answer within twice the threshold (or more): a slow sample, counted at
                # what it cost so far (a lower bound), never dropped
                ms = max(exc.waited_ms, timeout * 1000.0)
                self.timeouts.setdefault(k.name, deque(maxlen=5000)).append(self.env.clock())
                res.stats[f"timeouts.{k.name}"] = res.stats.get(f"timeouts.{k.name}", 0.0) + 1
            except ProbeFailed as exc:
                res.errors.append(f"kernel {k.name}: health probe failed: {exc}")
                return
            self.env.shared.add_latency(k.name, self.env.clock(), ms)


def probe_plan(cfg: Config, k: Kernel, probes: int) -> tuple[int, float]:
    """(probes this run, seconds each may wait) for kernel `k`, of `probes` wanted.

    All of a kernel's probes fit in PROBE_BUDGET of monitor.timeout. Each may wait
    the budget's share, but at least twice the kernel's latency threshold, so a probe
    that times out proves the kernel slower than its threshold; fewer probes are sent
    when the longer waits would not fit. (A threshold above half the budget, 2 s at
    the default timeout, gets one probe of the whole budget: raise monitor.timeout.)
    """
    budget = PROBE_BUDGET * float(cfg.monitor.timeout)
    wanted = max(1, probes)
    timeout = min(budget, max(budget / wanted, 2 * k.latency_p95_ms / 1000.0))
    return max(1, min(wanted, int(budget / timeout + 1e-9))), timeout
