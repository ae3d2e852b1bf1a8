"""Read the published dashboard file (read-only) and show it in a terminal."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from grace.errors import GraceError
from projections import queries
from projections.store import utcnow


class DashboardError(GraceError):
    """The dashboard file cannot be read."""


def read_dashboard(path: Path, *, window_s: float, now: datetime | None = None,
                   interval_s: float = 30.0) -> dict[str, Any]:
    """The dashboard JSON computed from a projection file opened read-only, as of `now`
    (naive UTC; default the wall clock): staleness is judged at read time."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise DashboardError(f"cannot open dashboard file {path} read-only: {exc}. Pass the "
                             "dashboard.duckdb that `grace project` publishes, or a file built by "
                             "`grace replay --into`.") from None
    try:
        return queries.dashboard(con, now=now or utcnow(), window_s=window_s,
                                 interval_s=interval_s)
    except duckdb.Error as exc:
        raise DashboardError(f"{path} is not a Grace projection ({exc}); pass the "
                             "dashboard.duckdb that `grace project` publishes.") from None
    finally:
        con.close()


def _style(value: Any) -> str:
    if isinstance(value, bool):
        return "[green]yes[/]" if value else "no"
    good = {"healthy", "running", "complete"}
    bad = {"critical", "failed", "stopped", "unknown"}
    if value in good:
        return f"[green]{value}[/]"
    if value in bad or (isinstance(value, str) and value.startswith("failed")):
        return f"[red]{value}[/]"
    if value in {"degraded", "booting"}:
        return f"[yellow]{value}[/]"
    return str(value)


def render(body: dict[str, Any], path: Path) -> None:
    """A readable rich layout of the dashboard JSON."""
    from rich.columns import Columns
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    console = Console()
    console.print(f"[bold]Grace[/] {_style(body['system_state'])}  health {_style(body['health'])}"
                  f"  boot {_style(body['boot_phase'])}  at {body['timestamp']}  ({path})")
    boot = body["boot"]
    if boot["failed_phase"] is not None:
        console.print(f"[red]boot phase {boot['failed_phase']} ({boot['failed_name']}) failed[/]"
                      f": {boot['failed_detail'] or 'no detail'}")
    if body["stale"]:
        console.print(f"[red]STALE[/]: the newest event in this file is from {body['as_of']}, more "
                      f"than {body['stale_after_s']}s (3 monitor intervals) before {body['timestamp']}"
                      "; Grace (its monitor or its projection) is not running. "
                      "The figures below are as of then.")
    else:
        console.print(f"as of {body['as_of']}")
    panels = []
    for section in ("kernels", "security", "triggers", "snapshots", "watchdogs", "fix_tasks"):
        table = Table.grid(padding=(0, 2))
        for key, value in body[section].items():
            if key == "issue_counts":
                continue
            table.add_row(key.replace("_", " "), _style(value) if value is not None else "-")
        panels.append(Panel(table, title=section.replace("_", " "), expand=True))
    console.print(Columns(panels))
    render_operator(console, body)
    counts = body["triggers"]["issue_counts"]
    if counts:
        t = Table(title="issues by trigger")
        t.add_column("trigger")
        t.add_column("count", justify="right")
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            t.add_row(name, str(n))
        console.print(t)


def render_operator(console: Any, body: dict[str, Any]) -> None:
    """Active holds and pending approvals, one line each (ids stay whole, lines wrap)."""
    from rich.markup import escape

    holds, approvals = body["holds"], body["approvals"]
    if not holds["items"]:
        console.print("holds: none active")
    else:
        console.print(f"[bold]active holds ({holds['active']})[/]: grace hold release ID")
        for h in holds["items"]:
            console.print(escape(
                f"  {h['hold_id']}  {h['target']} on {h['host']} until {h['until']} "
                f"({_left(h['left_s'])} left), by {h['by']} ({h['via']}): {h['reason']}"))
    if not approvals["items"]:
        console.print("approvals: none pending")
    else:
        console.print(f"[bold yellow]pending approvals ({approvals['pending']})[/]: grace approve "
                      "ID | grace deny ID --reason TEXT")
        for a in approvals["items"]:
            console.print(escape(
                f"  {a['command_id']}  {a['action']} {a['target']} on {a['host']} (playbook "
                f"{a['playbook']}), expires in {_left(a['expires_in_s'])}: {a['reason']}"))


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
