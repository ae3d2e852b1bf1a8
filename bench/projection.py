"""User projection figures: the trivial projection (bench/trivial_projection.py) replayed
from the stream, then from the Parquet archive, as `grace replay --projection ... --into` in a
real subprocess.

`projection_stream_per_s` is events over the subprocess's wall time (start-up
included), to compare with `consume_per_s` (`grace bench --only consume`), the
stream's consume limit. `projection_archive_per_s` is the same replay with every event
archived first (as bench/archive.py builds it): the reader reads them all from Parquet.
GRACE_BENCH_PROJECTION_EVENTS scales the count down.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import BenchContext, BenchError, Benchmark
from bench.replay import fill_log
from grace.config import Archive
from grace.durations import Duration

DEFAULT_EVENTS = 1_000_000
TRIVIAL = Path(__file__).with_name("trivial_projection.py")


def run_projection_replay(url: str, dest: Path, config: Path | None = None) -> float:
    """Seconds of `grace replay --projection TRIVIAL --into dest` (with `-c config` if given)."""
    exe = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"
    args = [exe, "replay", "--projection", str(TRIVIAL), "--into", str(dest), "--nats", url]
    if config is not None:
        args += ["-c", str(config)]
    t0 = time.perf_counter()
    proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(f"grace replay --projection failed ({proc.returncode}): "
                         f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return seconds


def _check(dest: Path, n: int) -> None:
    """The figure counts only if every event was applied, once."""
    import duckdb  # imported here: `grace bench --only X` loads no DuckDB for other figures

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
    from projections.archiver import archive_closed  # DuckDB and Parquet: only when it runs

    n = int(os.environ.get("GRACE_BENCH_PROJECTION_EVENTS", DEFAULT_EVENTS))
    await fill_log(ctx, n)
    dest = ctx.dir / "trivial.duckdb"
    seconds = await asyncio.to_thread(run_projection_replay, ctx.url, dest)
    _check(dest, n)
    stream_per_s = n / seconds

    folder = ctx.dir / "archive"  # every event archived, as bench/archive.py builds it
    b = await ctx.bus()
    try:
        written = await archive_closed(b, folder, Archive(dir=str(folder), segment=Duration(3600),
                                                          after=Duration(0)),
                                       now=time.time() + 7200)
    finally:
        await b.close()
    if sum(m.events for m in written) != n:
        raise BenchError(f"the archiver wrote {sum(m.events for m in written)} of {n} events")
    config = ctx.dir / "grace.yaml"
    config.write_text(f"archive: {{dir: {folder}, segment: 1h, after: 0s}}\n")
    dest = ctx.dir / "trivial-archive.duckdb"
    seconds = await asyncio.to_thread(run_projection_replay, ctx.url, dest, config)
    _check(dest, n)
    return {"projection_stream_per_s": stream_per_s, "projection_archive_per_s": n / seconds}


BENCHMARKS = [Benchmark("projection", ("projection_stream_per_s", "projection_archive_per_s"),
                        projection_stream)]
