"""User projection figures: the trivial projection (bench/trivial_projection.py) replayed
from the stream, as `grace replay --projection ... --into` in a real subprocess.

`projection_stream_per_s` is events over the subprocess's wall time (start-up
included), to compare with `consume_per_s` (`grace bench --only consume`), the
stream's consume limit. GRACE_BENCH_PROJECTION_EVENTS scales the count down.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from bench import BenchContext, BenchError, Benchmark
from bench.replay import fill_log

DEFAULT_EVENTS = 1_000_000
TRIVIAL = Path(__file__).with_name("trivial_projection.py")


def run_projection_replay(url: str, dest: Path) -> float:
    """Seconds of `grace replay --projection TRIVIAL --into dest`."""
    exe = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"
    t0 = time.perf_counter()
    proc = subprocess.run([exe, "replay", "--projection", str(TRIVIAL), "--into", str(dest),
                           "--nats", url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(f"grace replay --projection failed ({proc.returncode}): "
                         f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return seconds


def _check(dest: Path, n: int) -> None:
    """The figure counts only if every event was applied, once."""
    con = duckdb.connect(str(dest), read_only=True)
    try:
        got = con.execute("SELECT (SELECT last_seq FROM grace_projection), "
                          "(SELECT sum(n) FROM type_counts)").fetchone()
    finally:
        con.close()
    if got != (n, n):
        raise BenchError(f"the trivial projection holds (last_seq, events) {got}, expected "
                         f"({n}, {n})")


async def projection_stream(ctx: BenchContext) -> dict[str, float]:
    n = int(os.environ.get("GRACE_BENCH_PROJECTION_EVENTS", DEFAULT_EVENTS))
    await fill_log(ctx, n)
    dest = ctx.dir / "trivial.duckdb"
    seconds = await asyncio.to_thread(run_projection_replay, ctx.url, dest)
    _check(dest, n)
    return {"projection_stream_per_s": n / seconds}


BENCHMARKS = [Benchmark("projection", ("projection_stream_per_s",), projection_stream)]
