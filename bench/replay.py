"""Replay figures: `grace replay` of 1,000,000 events from the log into a new DuckDB file.

The replay runs as a real subprocess (`grace replay --into`); its time is the
subprocess's wall time, its RSS the sum of each process's own peak (VmHWM: the
replay and its log-reader child; an upper bound of their peak together, since
their peaks need not coincide), and `replay_cpu_s` the CPU both used (the
nats-server's is not included).
GRACE_BENCH_REPLAY_EVENTS scales the event count down (e.g. 100000).
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench import BenchContext, BenchError, Benchmark
from grace import events, topology

DEFAULT_EVENTS = 1_000_000
_PLACEHOLDER = "f" * 32  # an event id that the per-event id replaces


def templates(host: str = "bench") -> list[tuple[str, bytes]]:
    """(subject, raw) of one event of each kind a busy Grace writes, with a placeholder id."""
    e = events
    payloads: list[e.Payload] = [
        e.QueueBacklog(kernel="worker", stream="JOBS", consumer="w", pending=120, ack_pending=3,
                       backlog=123, threshold=100, trigger="latency_queue"),
        e.CpuSaturation(scope="system", percent=95.0, threshold=90.0, samples=3,
                        trigger="resource_pressure"),
        e.CheckCompleted(trigger="latency_queue", duration_ms=2.5, outcome="findings", findings=1),
        e.CheckCompleted(trigger="dependency_regression", duration_ms=8.0, outcome="ok",
                         stats={"dependencies_tracked": 89}),
        e.CommandIssued(playbook="high_queue_backlog", command_id="c", action="scale_workers",
                        target="worker", cause_ids=["x"], params={"kernel": "worker", "by": 1}),
        e.CommandSucceeded(command_id="c", action="scale_workers", target="worker",
                           playbook="high_queue_backlog", duration_ms=4.0),
        e.KernelRestarted(kernel="api", pid=4242),
        e.ConditionCleared(condition="queue_backlog", key={"kernel": "worker"}),
        e.SnapshotTaken(path="models/m.pkl", snapshot="m_1.pkl", kind="model", sha256="ab" * 32,
                        size=1024),
        e.WatchdogStarted(name="monitor", tier=1),
    ]
    out = []
    for p in payloads:
        ev = e.make_event(p, host=host, source=f"grace/{host}/bench", id=_PLACEHOLDER)
        out.append((topology.event_subject(p.CATEGORY, p.TYPE, host), e.encode(ev)))
    return out


async def fill_log(ctx: BenchContext, n: int, first: int = 0) -> None:
    """Publish n events (a mix of kinds, unique ids from number `first`) with broker acks."""
    b = await ctx.bus()
    tpl = templates()
    marker = _PLACEHOLDER.encode()
    try:
        chunk = 10_000
        for start in range(first, first + n, chunk):
            items = []
            for i in range(start, min(start + chunk, first + n)):
                subject, raw = tpl[i % len(tpl)]
                new_id = f"{i:032x}"
                items.append((subject, raw.replace(marker, new_id.encode(), 1), new_id))
            await b.publish_raw_many(items)
    finally:
        await b.close()


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _high_water_mb(p: psutil.Process) -> float | None:
    """The process's peak resident set so far (Linux keeps it as VmHWM), else its RSS now;
    None once it is gone."""
    try:
        with open(f"/proc/{p.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        return float(p.memory_info().rss) / (1024 * 1024)
    except psutil.Error:
        return None


def run_replay(url: str, dest: Path, config: Path | None = None) -> tuple[float, float, float]:
    """(seconds, peak RSS MB of the process tree, CPU seconds) of `grace replay --into dest`
    (with `-c config` when given)."""
    exe = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"
    cpu0 = _children_cpu()  # reaped children only: the running nats-server is not counted
    t0 = time.perf_counter()
    args = [exe, "replay", "--into", str(dest), "--nats", url]
    if config is not None:
        args += ["-c", str(config)]
    proc = subprocess.Popen(args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peaks: dict[int, float] = {}
    while proc.poll() is None:
        # each process's own high-water mark, summed: never below the tree's true peak, and
        # cheap enough to poll without taking CPU from the replay on a 2-core machine
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = [root]
        for p in tree:
            hwm = _high_water_mb(p)
            if hwm is not None:
                peaks[p.pid] = max(peaks.get(p.pid, 0.0), hwm)
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise BenchError(f"grace replay failed ({proc.returncode}): {err[-2000:]}")
    return seconds, sum(peaks.values()), _children_cpu() - cpu0


async def replay(ctx: BenchContext) -> dict[str, float]:
    n = int(os.environ.get("GRACE_BENCH_REPLAY_EVENTS", DEFAULT_EVENTS))
    await fill_log(ctx, n)
    seconds, rss, cpu = await asyncio.to_thread(run_replay, ctx.url, ctx.dir / "replayed.duckdb")
    return {"replay_events": float(n), "replay_s": seconds, "replay_rss_mb": rss,
            "replay_cpu_s": cpu}


BENCHMARKS = [Benchmark("replay", ("replay_events", "replay_s", "replay_rss_mb", "replay_cpu_s"),
                        replay)]
