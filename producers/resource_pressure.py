"""resource_pressure: CPU and memory (psutil), system-wide and per kernel, sustained.

A sample above `thresholds.cpu_percent` / `memory_percent` counts only when the
last `sustained_samples` samples (one per run) were all above it. Kernel pids
come from their heartbeats. CPU percent is measured between two runs (psutil's
interval=None), so the first run of each process primes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import psutil

from grace import events
from producers.base import CheckResult, Env


class ResourcePressure:
    NAME: ClassVar[str] = "resource_pressure"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env
        self.streak: dict[tuple[str, str], int] = {}  # (metric, kernel or "") -> consecutive highs
        self.procs: dict[int, psutil.Process] = {}
        psutil.cpu_percent(interval=None)  # prime the system-wide counter

    def _sample(self, metric: str, kernel: str, value: float, threshold: float) -> int:
        key = (metric, kernel)
        self.streak[key] = self.streak.get(key, 0) + 1 if value >= threshold else 0
        return self.streak[key]

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        th = self.env.cfg.thresholds
        need = max(1, th.sustained_samples)
        res = CheckResult()
        cpu = psutil.cpu_percent(interval=None)
        mem = psutil.virtual_memory()
        res.stats.update({"cpu_percent": cpu, "memory_percent": mem.percent})
        if (n := self._sample("cpu", "", cpu, th.cpu_percent)) >= need:
            res.findings.append(events.CpuSaturation(scope="system", percent=cpu,
                                                     threshold=th.cpu_percent, samples=n,
                                                     trigger=self.NAME))
        if (n := self._sample("mem", "", mem.percent, th.memory_percent)) >= need:
            res.findings.append(events.MemoryPressure(scope="system", percent=mem.percent,
                                                      threshold=th.memory_percent, samples=n,
                                                      trigger=self.NAME))
        for k in self.env.cfg.kernels:
            pid = self.env.shared.heartbeats.pid(k.name)
            proc = self._proc(pid) if pid else None
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
            res.stats[f"cpu_percent.{k.name}"] = kcpu
            if (n := self._sample("cpu", k.name, kcpu, th.cpu_percent)) >= need:
                res.findings.append(events.CpuSaturation(scope="kernel", kernel=k.name,
                                                         percent=kcpu, threshold=th.cpu_percent,
                                                         samples=n, trigger=self.NAME))
            # a kernel with max_rss_mb is judged against its own budget: percent of that budget
            kpct, kth = kmem, th.memory_percent
            if k.max_rss_mb:
                kpct, kth = 100.0 * rss / k.max_rss_mb, 100.0
            if (n := self._sample("mem", k.name, kpct, kth)) >= need:
                res.findings.append(events.MemoryPressure(
                    scope="kernel", kernel=k.name, percent=round(kpct, 3),
                    threshold=kth, samples=n, rss_mb=round(rss, 1), trigger=self.NAME))
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
