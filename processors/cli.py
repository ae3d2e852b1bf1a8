"""CLI of the processors stage: `grace process`, `grace playbooks validate|test`."""

from __future__ import annotations

import json
import sys
from datetime import UTC
from pathlib import Path

import click

from grace import playbook_files
from grace.cliutil import fail, guarded, load_context, run, run_until_signal, stage_options
from grace.durations import parse_duration
from grace.errors import ExitCode, InvalidValue, ValidationErrors
from grace.events import Event


@click.command("process")
@stage_options
@click.option("--partition", "partition", envvar="GRACE_PARTITION", show_envvar=True,
              help="I/N: run as partition I of N processors sharing the log (each owns the hosts "
                   "hashing to it). Default: one processor owns every host.")
@click.option("--observe", is_flag=True, envvar="GRACE_OBSERVE", show_envvar=True,
              help="Every playbook records what it would do (decision_observed); nothing is sent.")
@guarded
def process(config_path: str | None, nats_url: str | None, data_dir: str | None,
            partition: str | None, observe: bool) -> None:
    """Run the processor stage: match the log against the playbooks, emit commands."""
    from processors import partition as partition_mod
    from processors import stage

    ctx = load_context(config_path, nats_url, data_dir)
    stage.load_playbooks(ctx)  # refuse to start on invalid playbooks, before connecting
    partition_mod.parse(partition)  # a bad I/N fails here, with its message

    # SIGINT/SIGTERM stop it cleanly; started by `grace up`, so does the end of `grace up`
    run_until_signal(lambda stop: stage.run_stage(ctx, stop, partition=partition or "", observe=observe))


@click.group("playbooks")
def playbooks_group() -> None:
    """Check and try out playbooks."""


@playbooks_group.command("validate")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              envvar="GRACE_CONFIG", show_envvar=True,
              help="grace.yaml whose `playbooks` paths are checked when no PATH is given.")
@guarded
def validate_cmd(paths: tuple[str, ...], config_path: str | None) -> None:
    """Validate playbook files or folders; errors as file:line: message (exit 1)."""
    from processors import stage, validate

    targets: list[str | Path] = list(paths)
    sinks: list[str] | None = None  # notify sinks: checked against the config when one is read
    if not targets or config_path:
        ctx = load_context(config_path)
        sinks = [s.name for s in ctx.cfg.notify]
        targets = targets or list(stage.playbook_paths(ctx))
    missing = [str(p) for p in targets if not Path(p).exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}")
    files = playbook_files.playbook_files(targets)
    playbooks, errors = validate.check_paths(targets, sinks)
    for e in errors:
        click.echo(str(e), err=True)
    if errors:
        click.echo(f"{len(errors)} error(s) in {len(files)} file(s); nothing was loaded from a "
                   "file with errors", err=True)
        sys.exit(int(ExitCode.FINDINGS))
    click.echo(f"ok: {len(playbooks)} playbooks in {len(files)} file(s)")


@playbooks_group.command("test")
@click.argument("path", type=click.Path(exists=True))
@click.option("--events", "events_file", type=click.Path(exists=True, dir_okay=False),
              help="JSON-lines file of CloudEvents to replay.")
@click.option("--from-log", is_flag=True, help="Replay the event log instead of a file.")
@click.option("--since", default="24h", show_default=True, help="With --from-log: how far back.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per decision.")
@stage_options
@guarded
def test_cmd(path: str, events_file: str | None, from_log: bool, since: str, as_json: bool,
             config_path: str | None, nats_url: str | None, data_dir: str | None) -> None:
    """Replay events through PATH's playbooks without side effects: what would fire, and why not."""
    from processors import backtest, validate

    if bool(events_file) == from_log:
        fail("give exactly one of --events FILE.jsonl or --from-log")
    try:
        playbooks = validate.load_paths([path])
    except ValidationErrors as exc:
        fail(str(exc), ExitCode.FINDINGS)
    outcome = backtest.Outcome()
    if events_file:
        backtest.replay(playbooks, backtest.read_jsonl(Path(events_file), outcome), outcome)
    else:
        try:
            window = parse_duration(since)
        except InvalidValue as exc:
            fail(f"--since: {exc}")
        ctx = load_context(config_path, nats_url, data_dir)
        evs = run(_read_log(ctx, window))
        backtest.replay(playbooks, evs, outcome)
    if as_json:
        for ev in outcome.emitted:
            click.echo(json.dumps(backtest.describe(ev)))
    else:
        for line in backtest.report_lines(outcome):
            click.echo(line)


async def _read_log(ctx: object, window: float) -> list[Event]:
    """The log's events stored within `window` seconds, in order (a viewer's permissions)."""
    from datetime import datetime, timedelta

    from grace import topology
    from grace.consume import Delivery
    from grace.logread import read_subjects

    bus = await ctx.bus("playbooks-test")  # type: ignore[attr-defined]
    try:
        info = await bus.js.stream_info(topology.EVENTS)
        out: list[Event] = []

        async def keep(items: list[Delivery[Event]]) -> None:
            out.extend(d.item for d in items)

        since = datetime.now(UTC) - timedelta(seconds=window)
        await read_subjects(bus, 1, info.state.last_seq, [topology.EVENTS_ALL], keep,
                            stage="playbooks-test", since=since)
        return out
    finally:
        await bus.close()


def register(group: click.Group) -> None:
    group.add_command(process)
    group.add_command(playbooks_group)
