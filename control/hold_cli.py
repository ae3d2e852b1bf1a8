"""`grace hold add | list | release`: maintenance windows, recorded in the log."""

from __future__ import annotations

from typing import Any

import click

from control.common import actor, by_option, iso, left, log_state, operator_bus, refused, show
from control.log_state import HoldRecord, read_state
from grace import events, operator_actions, playbook_files
from grace.cliutil import Context, guarded, load_context, run, stage_options
from grace.durations import format_duration


@click.group("hold")
def hold_group() -> None:
    """Holds: leave a target alone for a while (maintenance windows)."""


def _playbook_names(ctx: Context) -> list[str]:
    return playbook_files.declared_names(list(playbook_files.playbook_paths(ctx.cfg)))


@hold_group.command("add")
@click.argument("target")
@click.option("--for", "for_", metavar="DURATION",
              help="How long, e.g. 30m, 2h (required; at most the config's holds.max, 24h shipped).")
@click.option("--reason", required=True, help="Why: recorded in the log and shown in the dashboard.")
@by_option
@stage_options
@guarded
def hold_add(target: str, for_: str | None, reason: str, by: str | None, config_path: str | None,
             nats_url: str | None, data_dir: str | None) -> None:
    """Leave TARGET alone until the hold ends.

    TARGET: path:<protected file>, kernel:<name>[/<instance>], playbook:<name> or host:<host>.
    Playbook matches on it are suppressed (reason hold) and a held kernel is not restarted
    by its supervisor; triggers keep reporting."""
    ctx = load_context(config_path, nats_url, data_dir)
    names = _playbook_names(ctx) if target.startswith("playbook:") else None
    with refused():  # before connecting: a wrong target or length needs no server
        operator_actions.check_hold(ctx.cfg, target, for_, reason, names)

    async def go() -> None:
        bus = await operator_bus(ctx)
        try:
            state = await read_state(bus)
            with refused():
                ev = operator_actions.add_hold(ctx.cfg, state, actor(bus, by, ctx), target=target,
                                               for_=for_, reason=reason, playbook_names=names,
                                               now=events.now())
            await bus.publish(ev)
        finally:
            await bus.close()
        d: events.HoldAdded = ev.data  # type: ignore[assignment]
        click.echo(f"hold {d.hold_id} added on {ev.host}: {d.target} until {iso(d.until)} "
                   f"({format_duration(d.for_s)}), by {d.by}: {d.reason}")
        click.echo(f"release it early with: grace hold release {d.hold_id}")

    run(go())


def _hold_dict(h: HoldRecord, now: Any) -> dict[str, Any]:
    d = h.data
    return {"hold_id": d.hold_id, "host": h.added.host, "target": d.target, "until": iso(d.until),
            "left_s": round(max(0.0, (d.until - now).total_seconds()), 1), "reason": d.reason,
            "by": d.by, "via": d.via, "added_at": iso(h.added.time)}


@hold_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of the active holds.")
@stage_options
@guarded
def hold_list(as_json: bool, config_path: str | None, nats_url: str | None,
              data_dir: str | None) -> None:
    """The holds in force now, from the log (ending soonest first)."""
    ctx = load_context(config_path, nats_url, data_dir)

    async def go() -> None:
        state = await log_state(ctx)
        now = events.now()
        active = state.active_holds(now)
        rows = [[h.data.hold_id, h.added.host, h.data.target, iso(h.data.until),
                 left(h.data.until, now), h.data.reason, f"{h.data.by} ({h.data.via})"]
                for h in active]
        show(as_json, [_hold_dict(h, now) for h in active], rows,
             ["ID", "HOST", "TARGET", "UNTIL (UTC)", "LEFT", "REASON", "BY"], "no active holds")

    run(go())


@hold_group.command("release")
@click.argument("hold_id", metavar="ID")
@by_option
@stage_options
@guarded
def hold_release(hold_id: str, by: str | None, config_path: str | None, nats_url: str | None,
                 data_dir: str | None) -> None:
    """End hold ID now (see `grace hold list`); Grace looks after its target again."""
    ctx = load_context(config_path, nats_url, data_dir)

    async def go() -> None:
        bus = await operator_bus(ctx)
        try:
            state = await read_state(bus)
            with refused():
                ev, rec = operator_actions.release_hold(state, actor(bus, by, ctx), hold_id,
                                                        events.now())
            d = rec.data
            ack = await bus.publish(ev)
            if ack.duplicate:
                with refused():
                    raise operator_actions.duplicate_release(hold_id)
        finally:
            await bus.close()
        click.echo(f"hold {hold_id} released: {d.target} on {rec.added.host} is looked after "
                   "by Grace again")

    run(go())
