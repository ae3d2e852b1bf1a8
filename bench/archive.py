"""Archive figures (`grace bench --only archive`): 1,000,000 events written to the Parquet
archive, read back through the replay's log reader, and the dashboard replayed from archive +
stream against the stream alone.

- `archive_write_per_s`: the archiver's pass over the log (NATS read + Parquet write).
- `archive_bytes_per_million`: the archive's size (Parquet + manifests) per million events.
- `archive_read_per_s`: `python -m projections.reader --archive` into a trivial projection
  (frames decoded and counted), wall time including the reader's start.
- `replay_archive_s` / `replay_stream_s`: `grace replay --into` of the same events (the
  archived ones plus 10,000 more in the stream only) with and without the archive;
  `replay_archive_rss_mb` / `replay_stream_rss_mb`: their peak RSS (the process tree's).
GRACE_BENCH_ARCHIVE_EVENTS scales the event count down (e.g. 100000).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from bench import BenchContext, BenchError, Benchmark
from bench.replay import fill_log, run_replay
from grace.config import Archive
from grace.durations import Duration

DEFAULT_EVENTS = 1_000_000
TAIL = 10_000  # events only the stream holds: the replay reads the archive, then the stream


def read_through_reader(url: str, folder: Path, until: int) -> float:
    """Seconds for the log reader to hand 1..until from the archive to a counting consumer."""
    from projections import reader  # imported here: `grace bench --only X` loads no Parquet

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "projections.reader", url, "1", str(until),
                             "--archive", str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    frames = reader.read_frames(proc.stdout)
    head = msgspec.msgpack.decode(next(frames))
    seen = last = 0
    for body in frames:
        batch = reader.decode_batch(body)
        seen, last = seen + len(batch), batch[-1][0]
    seconds = time.perf_counter() - t0
    if proc.wait() != 0 or seen != until or last != until or head["until"] != until:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise BenchError(f"the archive reader handed {seen} of {until} events: {err[-2000:]}")
    return seconds


async def archive_bench(ctx: BenchContext) -> dict[str, float]:
    from projections.archiver import archive_closed  # DuckDB and Parquet: only when it runs

    n = int(os.environ.get("GRACE_BENCH_ARCHIVE_EVENTS", DEFAULT_EVENTS))
    await fill_log(ctx, n)
    folder = ctx.dir / "archive"
    cfg = Archive(dir=str(folder), segment=Duration(3600), after=Duration(0))
    b = await ctx.bus()
    try:
        t0 = time.perf_counter()
        written = await archive_closed(b, folder, cfg, now=time.time() + 7200)
        write_s = time.perf_counter() - t0
    finally:
        await b.close()
    if sum(m.events for m in written) != n:
        raise BenchError(f"the archiver wrote {sum(m.events for m in written)} of {n} events")
    size = sum(p.stat().st_size for p in folder.iterdir())
    read_s = await asyncio.to_thread(read_through_reader, ctx.url, folder, n)
    await fill_log(ctx, TAIL, first=n)  # only in the stream: published after the archive
    config = ctx.dir / "grace.yaml"
    config.write_text(f"archive: {{dir: {folder}, segment: 1h, after: 0s}}\n")
    stream_s, stream_rss, _ = await asyncio.to_thread(run_replay, ctx.url,
                                                      ctx.dir / "stream.duckdb")
    archive_s, archive_rss, _ = await asyncio.to_thread(run_replay, ctx.url,
                                                        ctx.dir / "archive.duckdb", config)
    return {"archive_write_per_s": n / write_s, "archive_bytes_per_million": size * 1e6 / n,
            "archive_read_per_s": n / read_s, "replay_archive_s": archive_s,
            "replay_stream_s": stream_s, "replay_archive_rss_mb": archive_rss,
            "replay_stream_rss_mb": stream_rss}


BENCHMARKS = [Benchmark("archive", ("archive_write_per_s", "archive_bytes_per_million",
                                    "archive_read_per_s", "replay_archive_s", "replay_stream_s",
                                    "replay_archive_rss_mb", "replay_stream_rss_mb"),
                        archive_bench)]
