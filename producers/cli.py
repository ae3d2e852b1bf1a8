"""The producers' commands: `grace check` and `grace produce`."""

from __future__ import annotations

import json
import sys

import click

from grace.cliutil import guarded, load_context, run, run_until_signal, stage_options


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object: every trigger and finding.")
@click.option("--listen", default=1.0, show_default=True,
              help="Seconds to listen for kernel heartbeats when NATS is reachable.")
@stage_options
@guarded
def check(as_json: bool, listen: float, config_path: str | None, nats_url: str | None,
          data_dir: str | None) -> None:
    """Run every trigger once and print its findings; publish nothing.

    Exit 0: healthy; 1: findings; 2: a trigger could not run (or bad config).
    """
    from producers.check import run_once

    ctx = load_context(config_path, nats_url, data_dir)
    report = run(run_once(ctx, listen))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        _print_table(report)
    sys.exit(int(report.exit_code))


def _print_table(report: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from producers.check import Report

    assert isinstance(report, Report)
    data = report.to_json()
    console = Console()
    t = Table(title=f"grace check on {data['host']} (NATS: {data['nats'] or 'not reachable'})")
    for col in ("trigger", "outcome", "findings", "ms", "note"):
        t.add_column(col)
    for row in data["triggers"]:
        note = row["reason"] or "; ".join(row["errors"] + row["notes"])
        note = note if len(note) <= 60 else note[:57] + "..."
        style = {"failed": "red", "findings": "yellow", "skipped": "dim"}.get(row["outcome"], "green")
        t.add_row(row["trigger"], f"[{style}]{row['outcome']}[/]", str(row["findings"]),
                  f"{row['duration_ms']:.1f}", note)
    console.print(t)
    for row in data["triggers"]:  # in full, unwrapped: an operator copies these
        for err in ([row["reason"]] if row["outcome"] == "failed" else []) + row["errors"]:
            click.echo(f"{row['trigger']}: {err}")
    if data["findings"]:
        f = Table(title="findings")
        for col in ("type", "key", "detail"):
            f.add_column(col)
        for item in data["findings"]:
            detail = {k: (v[:12] + "..." if k.endswith("sha256") and isinstance(v, str) else v)
                      for k, v in item["data"].items() if k not in item["key"] and k != "trigger"}
            f.add_row(item["type"], json.dumps(item["key"]), json.dumps(detail, default=str)[:400])
        console.print(f)


@click.command()
@stage_options
@click.option("--boot-phase", is_flag=True,
              help="Run boot phase 3 (the pre-boot code diff) only, publish it to the log and exit "
                   "(0 completed, 1 failed); `grace up` runs this before any kernel starts.")
@guarded
def produce(config_path: str | None, nats_url: str | None, data_dir: str | None,
            boot_phase: bool) -> None:
    """Run the trigger monitor (the producers stage) until SIGINT/SIGTERM."""
    from producers.stage import run_stage

    ctx = load_context(config_path, nats_url, data_dir)
    if boot_phase:
        from producers.boot import publish_phase

        raise SystemExit(run(publish_phase(ctx)))
    run_until_signal(lambda stop: run_stage(ctx, stop))


def register(group: click.Group) -> None:
    group.add_command(check)
    group.add_command(produce)
