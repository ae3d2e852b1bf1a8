"""resource_pressure: CPU and memory (psutil), system-wide and per kernel instance, sustained.

A sample above `thresholds.cpu_percent` / `memory_percent` counts only when the
last `sustained_samples` samples (one per run) were all above it. Kernel
instances and their pids come from the supervisor's record and from heartbeats
(producers/kernel_procs); each instance of a pool is sampled on its own. CPU
percent is measured between two runs (psutil's interval=None), so the first run
of each process primes it.

Every memory_pressure names its culprit (`culprit_kernel`, `culprit_instance`):
the instance holding the memory, so that restarting it frees it. For a kernel
finding that is the instance itself; for the system it is the instance with the
largest RSS over its `max_rss_mb`, else the largest non-critical instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil

from grace import events
from grace.config import Kernel
from producers import kernel_procs
from producers.base import CheckResult, Env


@dataclass
class Sample:
    kernel: Kernel
    index: int
    rss_mb: float


def culprit(samples: list[Sample]) -> Sample | None:
    """The instance to restart under memory pressure (see the module docstring)."""
    over = [s for s in samples if s.kernel.max_rss_mb and s.rss_mb > s.kernel.max_rss_mb]
    pool = over or [s for s in samples if not s.kernel.critical]
    return max(pool, key=lambda s: s.rss_mb, default=None)


class ResourcePressure:
    NAME: ClassVar[str] = "resource_pressure"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env
        # (metric, kernel or "", instance) -> consecutive highs
        self.streak: dict[tuple[str, str, int], int] = {}
        self.procs: dict[int, psutil.Process] = {}
        psutil.cpu_percent(interval=None)  # prime the system-wide counter

    def _sample(self, metric: str, kernel: str, index: int, value: float, threshold: float) -> int:
        key = (metric, kernel, index)
        self.streak[key] = self.streak.get(key, 0) + 1 if value >= threshold else 0
        return self.streak[key]

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        th = self.env.cfg.thresholds.resource_pressure
        need = max(1, th.sustained_samples)
        res = CheckResult()
        cpu = psutil.cpu_percent(interval=None)
        mem = psutil.virtual_memory()
        res.stats.update({"cpu_percent": cpu, "memory_percent": mem.percent})
        samples: list[Sample] = []
        kernel_mem: list[events.MemoryPressure] = []
        instances = kernel_procs.instances(self.env.cfg, self.env.shared.heartbeats)
        for k in self.env.cfg.kernels:
            for p in instances[k.name]:
                proc = self._proc(p.pid) if p.pid else None
                if proc is None:
                    continue
                try:
                    with proc.oneshot():
                        kcpu = proc.cpu_percent(interval=None)
                        kmem = proc.memory_percent()
                        rss = proc.memory_info().rss / 1e6
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    self.procs.pop(proc.pid, None)
                    continue  # health_signal reports a process gone
                samples.append(Sample(k, p.index, rss))
                suffix = k.name if p.index == 0 else f"{k.name}.{p.index}"
                res.stats[f"cpu_percent.{suffix}"] = kcpu
                res.stats[f"rss_mb.{suffix}"] = round(rss, 1)
                if (n := self._sample("cpu", k.name, p.index, kcpu, th.cpu_percent)) >= need:
                    res.findings.append(events.CpuSaturation(
                        scope="kernel", kernel=k.name, instance=p.index, percent=kcpu,
                        threshold=th.cpu_percent, samples=n, trigger=self.NAME))
                # a kernel with max_rss_mb is judged against its own budget: percent of that budget
                kpct, kth = kmem, th.memory_percent
                if k.max_rss_mb:
                    kpct, kth = 100.0 * rss / k.max_rss_mb, 100.0
                if (n := self._sample("mem", k.name, p.index, kpct, kth)) >= need:
                    kernel_mem.append(events.MemoryPressure(
                        scope="kernel", kernel=k.name, instance=p.index, percent=round(kpct, 3),
                        threshold=kth, samples=n, rss_mb=round(rss, 1), culprit_kernel=k.name,
                        culprit_instance=p.index, culprit_rss_mb=round(rss, 1), trigger=self.NAME))
        if (n := self._sample("cpu", "", 0, cpu, th.cpu_percent)) >= need:
            res.findings.append(events.CpuSaturation(scope="system", percent=cpu,
                                                     threshold=th.cpu_percent, samples=n,
                                                     trigger=self.NAME))
        if (n := self._sample("mem", "", 0, mem.percent, th.memory_percent)) >= need:
            c = culprit(samples)
            res.findings.append(events.MemoryPressure(
                scope="system", percent=mem.percent, threshold=th.memory_percent, samples=n,
                culprit_kernel=c.kernel.name if c else "", culprit_instance=c.index if c else None,
                culprit_rss_mb=round(c.rss_mb, 1) if c else None, trigger=self.NAME))
        res.findings.extend(kernel_mem)
        return res

    def _proc(self, pid: int) -> psutil.Process | None:
        proc = self.procs.get(pid)
        if proc is None:
            try:
                proc = self.procs[pid] = psutil.Process(pid)
                proc.cpu_percent(interval=None)  # prime: the next call measures since now
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return None
        return proc
