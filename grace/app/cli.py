"""The `grace` command. Stage commands come from each stage's own `cli` module (grace.app.commands)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from grace import __version__, config, events
from grace.app.commands import CommandLoadError, GraceGroup, import_part
from grace.cliutil import fail, guarded, load_context, run, run_until_signal, setup_logging, stage_options
from grace.errors import EventError


@click.group(cls=GraceGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="grace")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (or set GRACE_LOG_LEVEL).")
def main(verbose: bool) -> None:
    """Grace keeps services healthy without a person in the loop, and keeps an
    immutable record (NATS JetStream) of everything it saw and did."""
    setup_logging(verbose)


@main.command()
def schema() -> None:
    """Print the JSON Schema of every event, command and result type."""
    click.echo(json.dumps(events.json_schema(), indent=2, sort_keys=True))


@main.group("events")
def events_group() -> None:
    """Read and write the event log."""


@events_group.command("tail")
@click.argument("subject", default="grace.events.>")
@click.option("--from-start", is_flag=True, help="Begin at the first event, not at the next new one.")
@click.option("--json", "as_json", is_flag=True, help="One CloudEvents JSON object per line.")
@stage_options
@guarded
def events_tail(subject: str, from_start: bool, as_json: bool, config_path: str | None,
                nats_url: str | None, data_dir: str | None) -> None:
    """Follow the log, decoded. SUBJECT filters, e.g. 'grace.events.trigger.>'."""
    from grace.tail import tail

    if not subject.startswith("grace.events."):
        fail(f"subject {subject!r} is not in the event log; use grace.events.<category>.<type>.<host>"
             " with * and > wildcards, e.g. 'grace.events.trigger.>'")
    ctx = load_context(config_path, nats_url, data_dir)

    async def go(stop: asyncio.Event) -> None:
        bus = await ctx.bus("tail")
        try:
            await tail(bus, subject, from_start=from_start, as_json_lines=as_json, stop=stop)
        finally:
            await bus.close()

    run_until_signal(go)


@events_group.command("publish")
@click.argument("type_name", metavar="TYPE")
@click.option("--data", "data_json", required=True,
              help="The event's data as a JSON object, @FILE to read it from a file, - for stdin.")
@click.option("--host", help="Host the event is about (default: the config's host).")
@click.option("--id", "event_id", help="Event id (default: a new one); re-using an id dedupes.")
@stage_options
@guarded
def events_publish(type_name: str, data_json: str, host: str | None, event_id: str | None,
                   config_path: str | None, nats_url: str | None, data_dir: str | None) -> None:
    """Inject one validated event (or command) and print its stream sequence.

    Exits 2 when the event is over the NATS server's max_payload; nothing is sent.
    """
    if event_id is not None and (not event_id or any(ord(c) < 32 or ord(c) == 127 for c in event_id)):
        fail(f"--id {event_id!r}: an event id must be non-empty and hold no control characters "
             "(no line breaks or tabs): it is sent as the Nats-Msg-Id header")
    if host is not None and not config.TOKEN.match(host):
        fail(f"--host {host!r}: a host must be letters, digits, '-' or '_' (it is a NATS subject "
             "token, as `host` in grace.yaml)")
    if data_json == "-":
        data_json = sys.stdin.read()
    elif data_json.startswith("@"):
        try:
            data_json = Path(data_json[1:]).read_text()
        except OSError as exc:
            fail(f"--data {data_json}: cannot read the file: {exc.strerror or exc}")
    try:
        data = json.loads(data_json)
    except json.JSONDecodeError as exc:
        fail(f"--data is not valid JSON: {exc}")
    if not isinstance(data, dict):
        fail("--data must be a JSON object, e.g. '{\"path\": \"models/m.pkl\"}'")
    try:
        payload = events.payload_from_dict(type_name, data)
    except EventError as exc:
        fail(str(exc))
    ctx = load_context(config_path, nats_url, data_dir)

    async def go() -> None:
        bus = await ctx.bus("cli")
        try:
            ev = bus.event(payload, id=event_id, host=host)
            ack = await bus.publish(ev)
            dup = " (duplicate: already in the log)" if ack.duplicate else ""
            click.echo(f"published {ev.type} id={ev.id} to {bus.subject_of(ev)} "
                       f"as {ack.stream} seq {ack.seq}{dup}")
        finally:
            await bus.close()

    run(go())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object with every figure.")
@click.option("--only", "only", multiple=True, help="Run only benchmarks whose key starts with this.")
@click.option("--runs", default=3, show_default=True, help="Runs per benchmark; the median is reported.")
def bench(as_json: bool, only: tuple[str, ...], runs: int) -> None:
    """Measure Grace's speed on this machine (see bench/)."""
    try:
        run_all = import_part("bench", "the benchmarks (grace bench)").run_all
    except CommandLoadError as exc:
        fail(str(exc), exc.exit_code)
    figures = run_all(only=only, runs=runs, progress=not as_json)
    if as_json:
        click.echo(json.dumps(figures, sort_keys=True))
    else:
        for key in sorted(figures):
            click.echo(f"{key:<28} {figures[key]}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
