"""`grace approve`, `grace deny`, `grace approvals`: a person's yes or no on a command.

The processor records `approval_requested` for an `approve`-mode playbook and issues the
command (once, with the requested id) when it reads `approval_granted`. Here the request is
checked against the log first, so approving twice, or after a denial or expiry, is refused
and publishes nothing. Both decisions on one command share one event id, so two people
deciding at the same moment leave one decision: the server drops the second as a duplicate.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from control.common import actor, by_option, iso, left, log_state, operator_bus, refuse, refused, show
from control.log_state import ApprovalRecord, read_state
from grace import events, operator_actions
from grace.cliutil import Context, guarded, load_context, run, stage_options


def decision_id(command_id: str) -> str:
    """The event id of the one decision (granted or denied) on `command_id`."""
    return operator_actions.decision_id(command_id)


def _decide(ctx: Context, command_id: str, by: str | None, deny_reason: str | None,
            verb: str) -> None:
    async def go() -> None:
        bus = await operator_bus(ctx)
        try:
            state = await read_state(bus)
            with refused():
                ev, rec = operator_actions.decide(state, actor(bus, by, ctx), command_id,
                                                  events.now(), deny_reason=deny_reason)
            ack = await bus.publish(ev)
            if ack.duplicate:
                with refused():
                    raise operator_actions.duplicate_decision(command_id)
        finally:
            await bus.close()
        r = rec.request
        click.echo(f"{verb} command {command_id} ({r.playbook}: {r.action} {r.target} on "
                   f"{ev.host}) by {ev.data.by}")  # type: ignore[attr-defined]

    run(go())


@click.command("approve")
@click.argument("command_id")
@by_option
@stage_options
@guarded
def approve(command_id: str, by: str | None, config_path: str | None, nats_url: str | None,
            data_dir: str | None) -> None:
    """Approve pending command COMMAND_ID (see `grace approvals`): it is issued once."""
    ctx = load_context(config_path, nats_url, data_dir)
    _decide(ctx, command_id, by, None, "approved")


@click.command("deny")
@click.argument("command_id")
@click.option("--reason", required=True, help="Why not: recorded in the log.")
@by_option
@stage_options
@guarded
def deny(command_id: str, reason: str, by: str | None, config_path: str | None,
         nats_url: str | None, data_dir: str | None) -> None:
    """Deny pending command COMMAND_ID: it is never issued."""
    if not reason.strip():
        refuse("--reason is empty: say why the command must not run.")
    ctx = load_context(config_path, nats_url, data_dir)
    _decide(ctx, command_id, by, reason, "denied")


def _approval_dict(a: ApprovalRecord, now: datetime) -> dict[str, Any]:
    r = a.request
    return {"command_id": a.command_id, "host": a.requested.host,  # type: ignore[union-attr]
            "playbook": r.playbook, "action": r.action, "target": r.target, "params": r.params,
            "reason": r.reason, "expires_at": iso(r.expires_at),
            "expires_in_s": round(max(0.0, (r.expires_at - now).total_seconds()), 1),
            "requested_at": iso(a.requested.time)}  # type: ignore[union-attr]


@click.command("approvals")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of the pending approvals.")
@stage_options
@guarded
def approvals(as_json: bool, config_path: str | None, nats_url: str | None,
              data_dir: str | None) -> None:
    """Commands waiting for `grace approve` or `grace deny`, from the log (expiring first)."""
    ctx = load_context(config_path, nats_url, data_dir)

    async def go() -> None:
        state = await log_state(ctx)
        now = events.now()
        pending = state.pending_approvals(now)
        rows = [[a.command_id, a.requested.host, a.request.playbook, a.request.action,  # type: ignore[union-attr]
                 a.request.target, json.dumps(a.request.params, sort_keys=True),
                 left(a.request.expires_at, now), a.request.reason] for a in pending]
        if show(as_json, [_approval_dict(a, now) for a in pending], rows,
                ["COMMAND ID", "HOST", "PLAYBOOK", "ACTION", "TARGET", "PARAMS", "EXPIRES IN",
                 "WHY"], "no pending approvals") and not as_json:
            click.echo("approve with `grace approve COMMAND_ID`, refuse with "
                       "`grace deny COMMAND_ID --reason TEXT`")

    run(go())
