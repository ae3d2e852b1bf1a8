"""`grace hold add | list | release`: maintenance windows, recorded in the log."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import click

from control.common import by_option, iso, left, log_state, operator_bus, operator_event, refuse, show, who
from control.log_state import HoldRecord, read_state
from control.targets import TargetError, normalize
from grace import events
from grace.cliutil import Context, guarded, load_context, run, stage_options
from grace.durations import format_duration, parse_duration
from grace.errors import InvalidValue


@click.group("hold")
def hold_group() -> None:
    """Holds: leave a target alone for a while (maintenance windows)."""


def _playbook_names(ctx: Context) -> list[str]:
    from processors import stage, validate

    playbooks, _errors = validate.check_paths(list(stage.playbook_paths(ctx)))
    return [p.name for p in playbooks]


def _duration(ctx: Context, text: str | None, target: str) -> float:
    most = float(ctx.cfg.holds.max)
    limit = (f"at most holds.max, {format_duration(most)} in this config; raise holds.max there "
             "for longer holds")
    if text is None:
        refuse(f"--for is required: how long Grace should leave {target} alone, e.g. --for 30m; "
               f"{limit}.")
    try:
        seconds = float(parse_duration(text))
    except InvalidValue as exc:
        refuse(f"--for {text!r}: {exc}.")
    if seconds <= 0:
        refuse(f"--for {text!r} must be more than 0s, e.g. --for 30m ({limit}).")
    if seconds > most:
        refuse(f"--for {text!r} is longer than the longest hold allowed: {limit}, or add a new "
               "hold when this one ends if the work takes longer.")
    return seconds


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
    try:
        held = normalize(ctx.cfg, target, _playbook_names(ctx) if target.startswith("playbook:")
                         else None)
    except TargetError as exc:
        refuse(str(exc))
    seconds = _duration(ctx, for_, str(held))
    if not reason.strip():
        refuse("--reason is empty: say why, e.g. --reason 'migrating the api database'.")

    async def go() -> None:
        bus = await operator_bus(ctx)
        try:
            state = await read_state(bus)
            hold_id = secrets.token_hex(4)
            while hold_id in state.holds:  # 8 hex digits: unique in this log, checked
                hold_id = secrets.token_hex(4)
            now = events.now()
            until = now + timedelta(seconds=seconds)
            # a host: hold is about that host: it travels on that host's subject, so the
            # processor partition owning the host reads it
            host = held.name if held.kind == "host" else ctx.cfg.host
            ev = operator_event(bus, events.HoldAdded(
                hold_id=hold_id, target=str(held), until=until, for_s=seconds,
                reason=reason.strip(), by=who(by), via="cli"), time=now, host=host)
            await bus.publish(ev)
        finally:
            await bus.close()
        click.echo(f"hold {hold_id} added on {ev.host}: {held} until {iso(until)} "
                   f"({format_duration(seconds)}), by {ev.data.by}: {reason.strip()}")  # type: ignore[attr-defined]
        click.echo(f"release it early with: grace hold release {hold_id}")

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
            now = events.now()
            rec = state.holds.get(hold_id)
            if rec is None:
                ids = ", ".join(h.data.hold_id for h in state.active_holds(now)) or "none"
                refuse(f"no hold with id {hold_id!r} in the log. Active holds: {ids} "
                       "(`grace hold list`).")
            status = rec.state(now)
            if status != "active":
                refuse(_over(rec, status))
            d = rec.data
            ev = operator_event(bus, events.HoldReleased(
                hold_id=hold_id, target=d.target, by=who(by), via="cli", reason="released"),
                id=events.derive_id("hold_released", hold_id), host=rec.added.host, time=now)
            ack = await bus.publish(ev)
            if ack.duplicate:
                refuse(f"hold {hold_id} was released by someone else at the same moment.")
        finally:
            await bus.close()
        click.echo(f"hold {hold_id} released: {d.target} on {rec.added.host} is looked after "
                   "by Grace again")

    run(go())


def _over(rec: HoldRecord, status: str) -> str:
    d, rel = rec.data, rec.released
    if rel is not None:
        rd = rel.data
        how = "expired" if status == "expired" else "was released"
        return (f"hold {d.hold_id} ({d.target}) {how} already: recorded by {rd.by} "  # type: ignore[attr-defined]
                f"(via {rd.via}) at {iso(rel.time)}.")  # type: ignore[attr-defined]
    return (f"hold {d.hold_id} ({d.target}) expired already at {iso(d.until)}; it holds "
            "nothing any more (add a new one with `grace hold add` if needed).")
