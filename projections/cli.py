"""CLI: `grace project`, `grace replay`, `grace dashboard` (and `grace archive`)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import click

from grace.cliutil import (
    config_option,
    data_dir_option,
    fail,
    guarded,
    load_context,
    run_until_signal,
    stage_options,
)
from grace.errors import GraceError
from projections.archive_cli import archive_dir, archive_group

PROJECTION_HELP = ("A user projection (a .py file defining PROJECTION, a .sql file, or a module "
                   "name) instead of the dashboard projection; see examples/projections/.")


@click.command()
@click.option("--projection", "projection", metavar="FILE", help=PROJECTION_HELP)
@click.option("--into", "into", type=click.Path(dir_okay=False),
              help="With --projection: the DuckDB file to publish it at (kept up to date).")
@stage_options
@guarded
def project(projection: str | None, into: str | None, config_path: str | None,
            nats_url: str | None, data_dir: str | None) -> None:
    """Follow the log into <data_dir>/projection.duckdb; publish <data_dir>/dashboard.duckdb.

    With --projection FILE --into DB: keep that user projection up to date in DB instead.
    """
    ctx = load_context(config_path, nats_url, data_dir)
    if projection is not None or into is not None:
        from projections.user.live import run_live
        from projections.user.load import load

        if projection is None or into is None:
            fail("--projection and --into go together: `grace project --projection FILE "
                 "--into DB` keeps the user projection FILE up to date in DB.")
            return
        proj = load(projection)
        dest = Path(into).resolve()
        run_until_signal(lambda stop: run_live(ctx, proj, dest, stop))
        return
    from projections.stage import run_stage

    run_until_signal(lambda stop: run_stage(ctx, stop))


@click.command()
@click.option("--into", "into", required=True, type=click.Path(dir_okay=False),
              help="The new DuckDB file to build.")
@click.option("--force", is_flag=True, help="Replace --into if it exists.")
@click.option("--until", "until_seq", type=int, help="Stop at this sequence (default: the last now).")
@click.option("--projection", "projection", metavar="FILE", help=PROJECTION_HELP)
@stage_options
@guarded
def replay(into: str, force: bool, until_seq: int | None, projection: str | None,
           config_path: str | None, nats_url: str | None, data_dir: str | None) -> None:
    """Rebuild a projection from sequence 1 of the log into a new file."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from projections.replay import replay_into
    from projections.user.load import load
    from projections.user.replay import replay_projection

    ctx = load_context(config_path, nats_url, data_dir)
    proj = load(projection) if projection is not None else None
    url = ctx.url()
    dest = Path(into).resolve()
    started = time.perf_counter()
    columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]} events/s"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, transient=False, console=None) as bar:
        task = bar.add_task("replay", total=None, rate="-")

        def progress(done: int, total: int) -> None:
            elapsed = max(time.perf_counter() - started, 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f}")

        try:
            if proj is None:
                last = replay_into(url, dest, force=force, until_seq=until_seq, progress=progress,
                                   archive=archive_dir(ctx.cfg))
            else:
                last, _ = replay_projection(url, proj, dest, force=force, until_seq=until_seq,
                                            progress=progress, archive=archive_dir(ctx.cfg))
        except GraceError as exc:
            bar.stop()
            fail(str(exc), exc.exit_code)
            return
    elapsed = time.perf_counter() - started
    click.echo(f"replayed sequences 1..{last} into {dest} in {elapsed:.1f}s "
               f"({last / max(elapsed, 1e-6):,.0f} events/s)")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The /operator/dashboard JSON.")
@click.option("--file", "file", type=click.Path(dir_okay=False),
              help="Dashboard file (default: <data_dir>/dashboard.duckdb).")
@click.option("--at", "at", metavar="TIME",
              help="Read the file as of this UTC time (ISO 8601, e.g. 2026-01-01T12:00:00Z) "
                   "instead of now: for audits; it changes only what depends on the reading time "
                   "(stale, the degraded window).")
@config_option
@data_dir_option
@guarded
def dashboard(as_json: bool, file: str | None, at: str | None, config_path: str | None,
              data_dir: str | None) -> None:
    """Show the dashboard from the published dashboard file (read-only)."""
    from projections.dashboard import read_dashboard, render
    from projections.stage import dashboard_path
    from projections.store import naive_utc

    ctx = load_context(config_path, None, data_dir)
    path = Path(file) if file else dashboard_path(ctx.data_dir)
    if not path.is_file():
        fail(f"no dashboard file at {path}: start the projection (`grace project` or `grace up`) "
             "so it publishes one, or pass --file (e.g. a `grace replay --into` result).")
    now = None
    if at is not None:
        try:
            now = naive_utc(datetime.fromisoformat(at.replace("Z", "+00:00")))
        except ValueError:
            fail(f"--at {at!r} is not an ISO 8601 time; write it like 2026-01-01T12:00:00Z.")
    body = read_dashboard(path, window_s=float(ctx.cfg.projection.degraded_window), now=now,
                          interval_s=float(ctx.cfg.monitor.interval))
    if as_json:
        click.echo(json.dumps(body, indent=2))
    else:
        render(body, path)


def register(group: click.Group) -> None:
    for cmd in (project, replay, dashboard):
        group.add_command(cmd)
    group.add_command(archive_group)

