"""Pieces every operator command shares: who is acting, the operator connection, time text."""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import click

from control.log_state import LogState, read_state
from grace import events
from grace.bus import Bus
from grace.cliutil import Context, fail
from grace.errors import ExitCode
from grace.operator_actions import ActionRefused, Actor

F = TypeVar("F", bound=Callable[..., Any])

# the NATS component name: with nats.auth on it maps to the `operator` role (grace.auth)
COMPONENT = "operator"


def default_by() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def by_option(f: F) -> F:
    return click.option("--by", "by", envvar="GRACE_OPERATOR", show_envvar=True,
                        help="Who is acting, recorded in the log (env GRACE_OPERATOR). "
                             "Default: the OS user.")(f)


def who(by: str | None) -> str:
    return (by or "").strip() or default_by()


def refuse(message: str) -> NoReturn:
    """Refuse the request (exit 2); nothing has been published."""
    end = "" if message.rstrip().endswith((".", ")")) else "."
    fail(f"{message.rstrip()}{end} Nothing was published.", ExitCode.ERROR)


@contextlib.contextmanager
def refused() -> Iterator[None]:
    """Turn a refused operator action (grace.operator_actions) into `refuse`."""
    try:
        yield
    except ActionRefused as exc:
        refuse(str(exc))


def actor(bus: Bus, by: str | None, ctx: Context) -> Actor:
    """This CLI user, acting through `bus` on the config's host."""
    return Actor(by=who(by), via="cli", host=ctx.cfg.host, source=bus.source)


async def operator_bus(ctx: Context) -> Bus:
    """Connect as the operator (the role allowed to publish holds, approvals, denials)."""
    return await ctx.bus(COMPONENT)


def iso(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def left(until: datetime, now: datetime) -> str:
    """Time from `now` to `until`, as 1h05m or 4m30s."""
    s = max(0, int((until - now).total_seconds()))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def table(rows: list[list[str]], header: list[str]) -> str:
    """Plain aligned columns (copyable, greppable; no terminal styling)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def operator_event(bus: Bus, payload: events.Payload, *, time: datetime, id: str | None = None,
                   host: str | None = None) -> events.Event:
    """The event as this operator sends it (`time`: the instant the decision was taken)."""
    return events.make_event(payload, host=host or bus.host, source=bus.source, id=id, time=time)


async def log_state(ctx: Context) -> LogState:
    """Holds and approvals as the log says now (one read, then the connection is closed)."""
    bus = await operator_bus(ctx)
    try:
        return await read_state(bus)
    finally:
        await bus.close()


def show(as_json: bool, dicts: list[dict[str, Any]], rows: list[list[str]], header: list[str],
         empty: str) -> bool:
    """Print a listing as JSON or as a table; False when there was nothing to list."""
    if as_json:
        click.echo(json.dumps(dicts, indent=2))
    elif not rows:
        click.echo(empty)
    else:
        click.echo(table(rows, header))
    return bool(rows)
