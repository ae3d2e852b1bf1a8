"""latency_queue: JetStream consumer backlog and p95 latency of health probes.

Backlog = num_pending + num_ack_pending of the kernel's `queue` consumer,
compared with `queue.max_backlog`. Latency: `thresholds.latency_probes` GETs
of `health_url` per run; p95 (nearest rank) of the samples inside
`thresholds.latency_window` against `kernel.latency_p95_ms`. The samples are
shared with telemetry_drift.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import ClassVar

import aiohttp
from nats.js.errors import NotFoundError

from grace import events
from grace.config import Kernel
from producers.base import CheckResult, Env
from producers.probes import ProbeFailed, probe


def p95(values: list[float]) -> float:
    """95th percentile, nearest-rank method."""
    s = sorted(values)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


class LatencyQueue:
    NAME: ClassVar[str] = "latency_queue"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env

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

    async def _latencies(self, res: CheckResult, kernels: list[Kernel]) -> None:
        th = self.env.cfg.thresholds
        timeout = max(0.1, float(self.env.cfg.monitor.timeout) / (2 * max(1, th.latency_probes)))
        async with aiohttp.ClientSession() as session:
            for k in kernels:
                window = self.env.shared.latency.setdefault(k.name, deque(maxlen=5000))
                for _ in range(max(1, th.latency_probes)):
                    try:
                        ms, _ = await probe(session, k.health_url or "", timeout)
                    except ProbeFailed as exc:
                        res.errors.append(f"kernel {k.name}: health probe failed: {exc}")
                        break
                    window.append((self.env.clock(), ms))
                now = self.env.clock()
                while window and window[0][0] < now - float(th.latency_window):
                    window.popleft()
                samples = [ms for _, ms in window]
                if len(samples) < th.latency_min_samples:
                    continue
                value = p95(samples)
                res.stats[f"p95_ms.{k.name}"] = round(value, 3)
                if value > k.latency_p95_ms:
                    res.findings.append(events.LatencySpike(
                        kernel=k.name, url=k.health_url or "", p95_ms=round(value, 3),
                        threshold_ms=k.latency_p95_ms, samples=len(samples), trigger=self.NAME))
