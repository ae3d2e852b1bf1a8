"""`grace bench`: Grace's speed on this machine. Benchmarks, not tests.

Each module listed in MODULES defines `BENCHMARKS: list[Benchmark]`. A
benchmark runs against a fresh embedded nats-server and returns figures keyed
by the contract names of DESIGN.md section 11; each is run several times and
the median reported. A figure not measured is absent, never faked.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

from grace import bus as bus_mod
from grace.embedded import EmbeddedServer
from grace.errors import GraceError

MODULES = (
    "bench.bus",
    "bench.processor",
    "bench.actuator",
    "bench.replay",
    "bench.archive",
    "bench.projection",
    "bench.monitor",
    "bench.monitor_scale",
    "bench.durability",
    "bench.e2e",
    "bench.idle",
    "bench.console_idle",
    "bench.fleet",
)


class BenchError(GraceError):
    """A benchmark could not produce its figures (a run failed or timed out)."""


@dataclass
class BenchContext:
    """A temp folder and a fresh nats-server for one run of one benchmark."""

    dir: Path
    server: EmbeddedServer
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    async def bus(self, host: str = "bench", component: str = "bench") -> bus_mod.Bus:
        return await bus_mod.connect_and_ensure(self.url, host=host, source=f"grace/{host}/{component}")


@dataclass(frozen=True)
class Benchmark:
    name: str
    keys: tuple[str, ...]  # the figures it reports
    run: Callable[[BenchContext], Coroutine[object, object, dict[str, float]]]


def benchmarks() -> list[Benchmark]:
    found: list[Benchmark] = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        found.extend(module.BENCHMARKS)
    return found


def _selected(b: Benchmark, only: tuple[str, ...]) -> bool:
    """`--only P`: the benchmarks named P... or reporting a key P... (`monitor-scale`, `consume`)."""
    return not only or any(n.startswith(p) for n in (b.name, *b.keys) for p in only)


def run_one(b: Benchmark) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"grace-bench-{b.name}-"))
    server = EmbeddedServer(tmp / "data")
    server.start()
    try:
        return asyncio.run(b.run(BenchContext(tmp, server)))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run_all(only: tuple[str, ...] = (), runs: int = 3, progress: bool = True) -> dict[str, float]:
    """Run the selected benchmarks `runs` times each; the median of each figure."""
    figures: dict[str, float] = {}
    for b in benchmarks():
        if not _selected(b, only):
            continue
        samples: dict[str, list[float]] = {}
        for i in range(runs):
            if progress:
                print(f"bench {b.name}: run {i + 1}/{runs}", file=sys.stderr, flush=True)
            for k, v in run_one(b).items():
                samples.setdefault(k, []).append(v)
        for k, vs in samples.items():
            figures[k] = round(statistics.median(vs), 3)
    return figures
