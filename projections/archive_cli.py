"""CLI: `grace archive verify` (every manifest against its segment), `grace archive run`."""

from __future__ import annotations

import asyncio
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
from grace.config import Config
from grace.errors import ExitCode


def archive_dir(cfg: Config) -> Path | None:
    """The archive's folder (archive.dir, relative to the config file), None when it is off."""
    return cfg.path(cfg.archive.dir) if cfg.archive.dir else None


def _require(cfg: Config) -> Path:
    folder = archive_dir(cfg)
    if folder is None:
        fail("the archive is off: set archive.dir in grace.yaml (see the README's \"Archive "
             "and retention\"), or pass -c with the config that sets it")
    return folder


@click.group("archive")
def archive_group() -> None:
    """The log's Parquet archive (archive.dir): verify it, or run the archiver alone."""


@archive_group.command()
@config_option
@data_dir_option
@guarded
def verify(config_path: str | None, data_dir: str | None) -> None:
    """Check every segment against its manifest; exit 1 naming each missing or altered one."""
    from projections.archive_read import manifests, problems

    folder = _require(load_context(config_path, None, data_dir).cfg)
    if not folder.is_dir():
        fail(f"archive folder {folder} does not exist (archive.dir); nothing was archived yet, "
             "or the path is wrong")
    found = problems(folder)
    for p in found:
        click.echo(f"segment problem: {p}")
    ms = manifests(folder)
    if found:
        fail(f"{len(found)} problem(s) in the archive {folder}: restore those segments from a "
             "backup; replay refuses them", ExitCode.FINDINGS)
    span = f"sequences {ms[0].first_seq}..{ms[-1].last_seq}" if ms else "empty"
    click.echo(f"archive {folder}: {len(ms)} segments, {span}, "
               f"{sum(m.events for m in ms)} events, every sha256 matches")


@archive_group.command("run")
@stage_options
@guarded
def run_archiver(config_path: str | None, nats_url: str | None, data_dir: str | None) -> None:
    """Run the archiver alone (`grace project` runs it too when archive.dir is set)."""
    from projections import archiver

    ctx = load_context(config_path, nats_url, data_dir)
    folder = _require(ctx.cfg)

    async def main(stop: asyncio.Event) -> None:
        bus = await ctx.bus("projector")
        try:
            await archiver.run(bus, folder, ctx.cfg.archive, stop)
        finally:
            await bus.close()

    run_until_signal(main)
