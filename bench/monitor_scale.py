"""Monitor cost as the work grows: CPU time of one cycle of the ten triggers (median).

The system is large on purpose: N protected config files with accepted
baselines (10, 100 and 1,000), a 2 GiB model file (sparse: `truncate`), 50
kernel instances (real `sleep` processes recorded the way the supervisor
records them, grace.kernelstate) and a 100 MB log that grows every cycle. The
monitor runs at the shipped defaults. `monitor_scale_cycle_cpu_ms` is the
ordinary cycle (files rehashed only when their stamp changed); one run in
`full_verify_every` (10) rehashes everything, and `monitor_scale_full_verify_cpu_ms`
is what that costs model_integrity for the 2 GiB model. The kernel processes run
outside this process, so their CPU is not counted.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil
import yaml

from bench import BenchContext, Benchmark
from grace import config, integrity, kernelstate, manifest
from grace.errors import GraceError
from producers.monitor import TriggerMonitor
from producers.state import StateStore

CYCLES = 8  # ordinary cycles: model_integrity's runs 3-10, before its next full verify (run 11)
SIZES = (10, 100, 1_000)  # protected config files
MODEL_BYTES = 2 * 1024**3
LOG_BYTES = 100 * 1024**2
INSTANCES = 50
MODEL = "models/model.safetensors"  # hashed, no structure walk (a format Grace does not parse)


@dataclass
class ScaleSystem:
    """A config on disk, its kernel processes, and how to tear them down."""

    cfg: config.Config
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def _log(path: Path, size: int) -> None:
    line = b"2026-01-01T00:00:00Z INFO request served in 12 ms path=/api/items status=200\n"
    block = line * (1024 * 1024 // len(line))
    with open(path, "wb") as f:
        f.writelines(block for _ in range(size // len(block) + 1))


def build(root: Path, n_files: int, model_bytes: int = MODEL_BYTES, log_bytes: int = LOG_BYTES,
          instances: int = INSTANCES, host: str = "bench") -> ScaleSystem:
    """Write the system under `root`, baseline it, and start its kernel processes."""
    for d in ("models", "config", "logs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    with open(root / MODEL, "wb") as f:
        f.truncate(model_bytes)  # sparse: reads as zeros, costs no disk
    for i in range(n_files):
        (root / "config" / f"svc{i:04d}.yaml").write_text(f"name: svc{i}\nthreads: {i % 8 + 1}\n")
    _log(root / "logs" / "app.log", log_bytes)
    doc = {
        "host": host, "data_dir": "data",
        "monitor": {"watch_files": False},
        "kernels": [{"name": "worker", "command": ["sleep", "3600"],
                     "pool": {"min": 1, "max": instances}, "max_rss_mb": 500}],
        "protect": {"models": ["models/*.safetensors"], "configs": ["config/*.yaml"]},
        "logs": ["logs/app.log"],
    }
    (root / "grace.yaml").write_text(yaml.safe_dump(doc))
    cfg = config.load(root / "grace.yaml")
    m = manifest.Manifest()
    rels: list[tuple[str, Literal["model", "config"]]] = [
        (MODEL, "model"), *((f"config/svc{i:04d}.yaml", "config") for i in range(n_files))]
    for rel, kind in rels:
        p = root / rel
        m.files[rel] = manifest.Entry(path=rel, kind=kind, sha256=integrity.sha256_file(p),
                                      size=p.stat().st_size, latest=rel)
    manifest.save(cfg, m)
    system = ScaleSystem(cfg)
    rows = []
    for i in range(instances):
        proc = subprocess.Popen(["sleep", "3600"], start_new_session=True)
        system.procs.append(proc)
        rows.append(kernelstate.Recorded(kernel="worker", index=i, pid=proc.pid,
                                         create_time=psutil.Process(proc.pid).create_time()))
    kernelstate.write(kernelstate.state_path(cfg), rows)
    return system


def _append(path: Path, text: str) -> None:
    """A live log: new lines every cycle."""
    with open(path, "a") as f:
        f.write(text)


async def cycle_cpu_ms(ctx: BenchContext, n_files: int) -> tuple[float, float]:
    """Median CPU ms of an ordinary monitor cycle over a system with `n_files` configs, and the
    CPU ms of model_integrity's full verification (the first run and every
    `full_verify_every`-th one rehash the model)."""
    system = build(ctx.dir / f"sys{n_files}", n_files)
    bus = await ctx.bus()
    try:
        cfg = system.cfg
        mon = TriggerMonitor(cfg, bus, StateStore(cfg.data_path / "state"))
        await mon.env.shared.heartbeats.listen(bus.nc)
        # model_integrity's run 1, a full verify, outside the cycle: at 2 GiB it can take longer
        # than monitor.timeout, and the back-off that follows would leave it out of the cycles
        c0 = time.process_time()
        await mon.checks["model_integrity"].check(None)
        full_ms = (time.process_time() - c0) * 1000
        await mon.run_cycle()  # warm-up: the other triggers' first run, log position, baselines
        log = cfg.path("logs/app.log")
        cpu: list[float] = []
        for i in range(CYCLES):
            _append(log, f"INFO request {i} ok\nERROR upstream 502 after {i} ms\n" * 20)
            c0 = time.process_time()
            await mon.run_cycle()
            cpu.append((time.process_time() - c0) * 1000)
            if mon.not_before:  # a trigger in back-off: the cycle did not run all ten
                raise GraceError(f"monitor-scale: {sorted(mon.not_before)} failed in cycle {i}; "
                                 "the figure would leave them out")
        await mon.env.shared.heartbeats.close()
        return statistics.median(cpu), full_ms
    finally:
        system.stop()
        await bus.close()


async def monitor_scale(ctx: BenchContext) -> dict[str, float]:
    out = {n: await cycle_cpu_ms(ctx, n) for n in SIZES}
    return {"monitor_scale_cycle_cpu_ms": out[1_000][0],
            "monitor_scale_10_files_cpu_ms": out[10][0],
            "monitor_scale_100_files_cpu_ms": out[100][0],
            "monitor_scale_full_verify_cpu_ms": out[1_000][1]}


BENCHMARKS = [
    Benchmark("monitor-scale", ("monitor_scale_cycle_cpu_ms", "monitor_scale_10_files_cpu_ms",
                                "monitor_scale_100_files_cpu_ms", "monitor_scale_full_verify_cpu_ms"),
              monitor_scale),
]
