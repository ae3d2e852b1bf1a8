"""CLI of operator control: `grace hold`, `grace approve`, `grace deny`, `grace approvals`."""

from __future__ import annotations

import click

from control.approval_cli import approvals, approve, deny
from control.hold_cli import hold_group


def register(group: click.Group) -> None:
    for cmd in (hold_group, approve, deny, approvals):
        group.add_command(cmd)
