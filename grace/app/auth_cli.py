"""`grace auth`: write the NATS users and permissions of every component (grace.auth)."""

from __future__ import annotations

import click

from grace import auth as auth_mod
from grace.cliutil import fail, load_context
from grace.errors import ConfigError


@click.group()
def auth() -> None:
    """NATS users and permissions per component."""


@auth.command("init")
@click.option("--data-dir", "data_dir", type=click.Path(file_okay=False), envvar="GRACE_DATA_DIR",
              show_envvar=True, help="Data folder (default: the config's data_dir).")
@click.option("-c", "--config", "config_path", envvar="GRACE_CONFIG", show_envvar=True)
@click.option("--force", is_flag=True, help="Replace existing passwords.")
def auth_init(data_dir: str | None, config_path: str | None, force: bool) -> None:
    """Write a server config and one user per component; turn on with `nats.auth: true`."""
    try:
        ctx = load_context(config_path, None, data_dir)
        folder = auth_mod.init(ctx.data_dir, force)
    except ConfigError as exc:
        fail(str(exc))
    click.echo(f"wrote {folder / 'server.conf'}, {folder / 'users.json'} and the operator token "
               f"{folder / 'operator.token'} (mode 0600): users "
               f"{', '.join(auth_mod.ROLES)}. Set nats.auth: true; an external server must include "
               "server.conf.")


def register(group: click.Group) -> None:
    group.add_command(auth)
