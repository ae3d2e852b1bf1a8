"""A person's actions on Grace (hold add / release, approve / deny): checks and events.

`grace hold`, `grace approve`, `grace deny` and the web console run the same code: each
function here checks the request against the hold and approval state (grace.operator_state)
and returns the one event to publish, or raises ActionRefused saying what the log knows and
what to do. Nothing here publishes; the caller sends the event on a connection of the
`operator` role. Both decisions on one command share one event id (`decision_id`), so two
people deciding at the same moment leave one decision: the server drops the second.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from grace import events
from grace.config import Config
from grace.durations import format_duration, parse_duration
from grace.errors import GraceError
from grace.hold_targets import TargetError, normalize
from grace.holds import Target
from grace.operator_state import ApprovalRecord, HoldRecord, LogState

Via = Literal["cli", "http"]


class ActionRefused(GraceError):
    """The request contradicts the log or the config; nothing was published."""


@dataclass(frozen=True)
class Actor:
    """Who acts (recorded as `by`), from where (`via`), and the host of this Grace."""

    by: str
    via: Via
    host: str
    source: str


def iso(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def decision_id(command_id: str) -> str:
    """The event id of the one decision (granted or denied) on `command_id`."""
    return events.derive_id("approval_decision", command_id)


def _event(actor: Actor, payload: events.Payload, *, time: datetime, host: str,
           id: str | None = None) -> events.Event:
    return events.make_event(payload, host=host, source=actor.source, id=id, time=time)


# ---------------------------------------------------------------- holds


def hold_seconds(cfg: Config, text: str | None, target: str) -> float:
    """The hold's length from `--for` text, at most `holds.max`."""
    most = float(cfg.holds.max)
    limit = (f"at most holds.max, {format_duration(most)} in this config; raise holds.max there "
             "for longer holds")
    if text is None or not text.strip():
        raise ActionRefused(f"--for is required: how long Grace should leave {target} alone, e.g. "
                            f"--for 30m; {limit}.")
    try:
        seconds = float(parse_duration(text))
    except ValueError as exc:
        raise ActionRefused(f"--for {text!r}: {exc}.") from None
    if seconds <= 0:
        raise ActionRefused(f"--for {text!r} must be more than 0s, e.g. --for 30m ({limit}).")
    if seconds > most:
        raise ActionRefused(f"--for {text!r} is longer than the longest hold allowed: {limit}, or "
                            "add a new hold when this one ends if the work takes longer.")
    return seconds


def check_hold(cfg: Config, target: str, for_: str | None, reason: str,
               playbook_names: list[str] | None) -> tuple[Target, float]:
    """The target as stored and the hold's length, checked against the config (no log needed)."""
    try:
        held = normalize(cfg, target, playbook_names)
    except TargetError as exc:
        raise ActionRefused(str(exc)) from None
    seconds = hold_seconds(cfg, for_, str(held))
    if not reason.strip():
        raise ActionRefused("--reason is empty: say why, e.g. --reason 'migrating the api "
                            "database'.")
    return held, seconds


def add_hold(cfg: Config, state: LogState, actor: Actor, *, target: str, for_: str | None,
             reason: str, playbook_names: list[str] | None, now: datetime) -> events.Event:
    """The hold_added event for a new hold on `target` (checked against the config)."""
    held, seconds = check_hold(cfg, target, for_, reason, playbook_names)
    hold_id = secrets.token_hex(4)
    while hold_id in state.holds:  # 8 hex digits: unique in this log, checked
        hold_id = secrets.token_hex(4)
    until = now + timedelta(seconds=seconds)
    # a host: hold is about that host: it travels on that host's subject, so the processor
    # partition owning the host reads it
    host = held.name if held.kind == "host" else actor.host
    return _event(actor, events.HoldAdded(
        hold_id=hold_id, target=str(held), until=until, for_s=seconds, reason=reason.strip(),
        by=actor.by, via=actor.via), time=now, host=host)


def _over(rec: HoldRecord, status: str) -> str:
    d, rel = rec.data, rec.released
    if rel is not None:
        rd = rel.data
        how = "expired" if status == "expired" else "was released"
        return (f"hold {d.hold_id} ({d.target}) {how} already: recorded by {rd.by} "  # type: ignore[attr-defined]
                f"(via {rd.via}) at {iso(rel.time)}.")  # type: ignore[attr-defined]
    return (f"hold {d.hold_id} ({d.target}) expired already at {iso(d.until)}; it holds "
            "nothing any more (add a new one with `grace hold add` if needed).")


def release_hold(state: LogState, actor: Actor, hold_id: str, now: datetime) -> tuple[events.Event,
                                                                                      HoldRecord]:
    """The hold_released event ending active hold `hold_id` now, and its record."""
    rec = state.holds.get(hold_id)
    if rec is None:
        ids = ", ".join(h.data.hold_id for h in state.active_holds(now)) or "none"
        raise ActionRefused(f"no hold with id {hold_id!r} in the log. Active holds: {ids} "
                            "(`grace hold list`).")
    status = rec.state(now)
    if status != "active":
        raise ActionRefused(_over(rec, status))
    ev = _event(actor, events.HoldReleased(hold_id=hold_id, target=rec.data.target, by=actor.by,
                                           via=actor.via, reason="released"),
                id=events.derive_id("hold_released", hold_id), host=rec.added.host, time=now)
    return ev, rec


# ---------------------------------------------------------------- approvals


def _pending_ids(state: LogState, now: datetime) -> str:
    return ", ".join(a.command_id for a in state.pending_approvals(now)) or "none"


def check_pending(state: LogState, command_id: str, now: datetime) -> ApprovalRecord:
    """The pending request for `command_id`, or ActionRefused saying what the log knows of it."""
    rec = state.approvals.get(command_id)
    if rec is None or rec.requested is None:
        raise ActionRefused(
            f"no approval is requested for command id {command_id!r}: the log has no "
            f"approval_requested with that id. Pending approvals: {_pending_ids(state, now)} "
            "(`grace approvals`).")
    status = rec.state(now)
    if status == "pending":
        return rec
    dec = rec.decision
    what = f"command {command_id} ({rec.request.playbook}: {rec.request.action} {rec.request.target})"
    if status == "approved" and dec is not None:
        raise ActionRefused(f"{what} was already approved by {dec.data.by} (via {dec.data.via}) "  # type: ignore[attr-defined]
                            f"at {iso(dec.time)}; it is issued once, with that id.")
    if status == "denied" and dec is not None:
        raise ActionRefused(f"{what} was denied by {dec.data.by} (via {dec.data.via}) at "  # type: ignore[attr-defined]
                            f"{iso(dec.time)}: {dec.data.reason}. It will not be issued; a new "  # type: ignore[attr-defined]
                            "match asks again.")
    if dec is not None:
        raise ActionRefused(f"{what} expired at {iso(dec.time)} (approval_expired recorded) "
                            "without a decision. It will not be issued; a new match asks again.")
    raise ActionRefused(f"{what} expired at {iso(rec.request.expires_at)} (approve_within "
                        f"{rec.request.within_s:g}s) without a decision. It will not be issued; a "
                        "new match asks again.")


def decide(state: LogState, actor: Actor, command_id: str, now: datetime, *,
           deny_reason: str | None = None) -> tuple[events.Event, ApprovalRecord]:
    """approval_granted (or approval_denied when `deny_reason` is given) on pending
    `command_id`, with the one decision id, and the request's record."""
    if deny_reason is not None and not deny_reason.strip():
        raise ActionRefused("--reason is empty: say why the command must not run.")
    rec = check_pending(state, command_id, now)
    payload: events.Payload
    if deny_reason is None:
        payload = events.ApprovalGranted(command_id=command_id, by=actor.by, via=actor.via)
    else:
        payload = events.ApprovalDenied(command_id=command_id, by=actor.by, via=actor.via,
                                        reason=deny_reason.strip())
    assert rec.requested is not None  # check_pending returns requested records only
    return _event(actor, payload, time=now, id=decision_id(command_id),
                  host=rec.requested.host), rec


def duplicate_decision(command_id: str) -> ActionRefused:
    """A decision the server dropped as a duplicate: why it was not recorded."""
    return ActionRefused(f"another decision on command {command_id} was recorded at the same "
                         "moment; see `grace approvals` and the log.")


def duplicate_release(hold_id: str) -> ActionRefused:
    """A release the server dropped as a duplicate."""
    return ActionRefused(f"hold {hold_id} was released by someone else at the same moment.")
