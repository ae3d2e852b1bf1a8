"""Monitor cost as the work grows: CPU time of one cycle of the ten triggers (median).

The system is large on purpose: N protected config files with accepted
baselines (10, 100 and 1,000), a 2 GiB model file (sparse: `truncate`), 50
kernel instances (real `sleep` processes recorded the way the supervisor
records them, grace.kernelstate) and a 100 MB log that grows every cycle. The
monitor runs at the shipped defaults. `monitor_scale_cycle_cpu_ms` is the
ordinary cycle (files rehashed only when their stamp changed). The model's full
verify (run 1, then the first run due by `full_verify_every` once it is done)
reads 128 MiB of it per run: `monitor_scale_verify_cycle_cpu_ms` is a cycle
carrying such a piece, `monitor_scale_full_verify_runs` the runs one verify
spans and `monitor_scale_full_verify_cpu_ms` its whole cost (measured apart).
The kernel processes run outside this process, so their CPU is not counted.
"""

from __future__ import annotations

import contextlib
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
from producers import fullverify
from producers.model_integrity import ModelIntegrity
from producers.monitor import TriggerMonitor
from producers.state import StateStore

# model_integrity's runs 2-24: the rest of the verify begun in run 1 (16 runs of VERIFY_CHUNK
# for 2 GiB), the ordinary runs 17-20 (run 11's due verify is skipped: one is under way) and
# the next verify's first pieces from run 21
CYCLES = 23
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


@dataclass(frozen=True)
class Figures:
    """One system's figures (CPU ms unless named otherwise)."""

    ordinary: float  # median cycle that reads no piece of the model
    piece: float  # median cycle that also reads one VERIFY_CHUNK piece of it
    worst: float  # the most expensive cycle
    full_verify: float  # the model's whole verify (hash state drained in one go, outside the cycle)
    verify_runs: float  # runs one full verify of the model spans


async def cycle_cpu_ms(ctx: BenchContext, n_files: int) -> Figures:
    """CPU of the monitor's cycles over a system with `n_files` configs: CYCLES cycles after a
    warm-up, sorted by whether model_integrity read a piece of the 2 GiB model's full verify."""
    system = build(ctx.dir / f"sys{n_files}", n_files)
    bus = await ctx.bus()
    try:
        cfg = system.cfg
        c0 = time.process_time()
        steps = fullverify.steps(cfg.path(MODEL), structure=True)
        with contextlib.suppress(StopIteration):
            while True:
                next(steps)
        full_ms = (time.process_time() - c0) * 1000
        mon = TriggerMonitor(cfg, bus, StateStore(cfg.data_path / "state"))
        model = mon.checks["model_integrity"]
        if not isinstance(model, ModelIntegrity):
            raise GraceError("monitor-scale: the model_integrity trigger is not ModelIntegrity")
        await mon.env.shared.heartbeats.listen(bus.nc)
        await mon.run_cycle()  # warm-up: the other triggers' first run, log position, baselines
        log = cfg.path("logs/app.log")
        ordinary: list[float] = []
        piece: list[float] = []
        started, completed = 1, 0
        for i in range(CYCLES):
            _append(log, f"INFO request {i} ok\nERROR upstream 502 after {i} ms\n" * 20)
            read, rehashed = model.cache.read, model.cache.rehashed
            c0 = time.process_time()
            await mon.run_cycle()
            (piece if model.cache.read > read else ordinary).append((time.process_time() - c0) * 1000)
            if model.cache.rehashed > rehashed and not completed:
                completed = i + 2  # run 1 was the warm-up
            if mon.not_before:  # a trigger in back-off: the cycle did not run all ten
                raise GraceError(f"monitor-scale: {sorted(mon.not_before)} failed in cycle {i}; "
                                 "the figure would leave them out")
        await mon.env.shared.heartbeats.close()
        if not ordinary or not piece or not completed:
            raise GraceError(f"monitor-scale: {CYCLES} cycles held {len(ordinary)} ordinary and "
                             f"{len(piece)} verify cycles, verify done in run {completed or None}; "
                             "raise CYCLES")
        return Figures(statistics.median(ordinary), statistics.median(piece), max(ordinary + piece),
                       full_ms, float(completed - started + 1))
    finally:
        system.stop()
        await bus.close()


async def monitor_scale(ctx: BenchContext) -> dict[str, float]:
    out = {n: await cycle_cpu_ms(ctx, n) for n in SIZES}
    big = out[1_000]
    return {"monitor_scale_cycle_cpu_ms": big.ordinary,
            "monitor_scale_10_files_cpu_ms": out[10].ordinary,
            "monitor_scale_100_files_cpu_ms": out[100].ordinary,
            "monitor_scale_verify_cycle_cpu_ms": big.piece,
            "monitor_scale_max_cycle_cpu_ms": big.worst,
            "monitor_scale_full_verify_cpu_ms": big.full_verify,
            "monitor_scale_full_verify_runs": big.verify_runs}


BENCHMARKS = [
    Benchmark("monitor-scale", ("monitor_scale_cycle_cpu_ms", "monitor_scale_10_files_cpu_ms",
                                "monitor_scale_100_files_cpu_ms", "monitor_scale_verify_cycle_cpu_ms",
                                "monitor_scale_max_cycle_cpu_ms", "monitor_scale_full_verify_cpu_ms",
                                "monitor_scale_full_verify_runs"),
              monitor_scale),
]
