"""NATS users and permissions, one user per component (`grace auth init`).

Each component may publish only its own subjects: producers write findings and
checks, the processor writes decisions and commands, the actuator writes results,
kernel, snapshot and task events, the operator role (holds, approvals, denials: the
`grace hold`, `grace approve` and `grace deny` commands) writes operator events, the
projector and viewers write nothing to the log. Only the admin user (grace up, the CLI's publish) may create streams.
The embedded server loads the generated block when `nats.auth: true`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import click

from grace import topology
from grace.errors import ConfigError

JS_READ = ["$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
           "$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>", "$JS.API.CONSUMER.INFO.>",
           "$JS.API.CONSUMER.MSG.NEXT.>", "$JS.API.CONSUMER.DELETE.>", "$JS.API.STREAM.MSG.GET.>",
           "$JS.API.DIRECT.GET.>"]
COMMON = ["grace.heartbeat.>", "grace.rejected.>", "$JS.ACK.>", *JS_READ]


def _events(*categories: str) -> list[str]:
    return [topology.event_filter(c, "*", "*") for c in categories]


# role -> subjects it may publish to; every role may subscribe to inboxes and heartbeats
ROLES: dict[str, list[str]] = {
    # snapshot_due: the producers' schedule of snapshots.every (the actuator takes the copies)
    "producer": [*_events("trigger", "check", "stage", "boot"),  # boot: phase 3
                 topology.event_filter("snapshot", "snapshot_due", "*"),
                 f"$KV.{topology.STATE_BUCKET}.>", *COMMON],
    # the processor records a hold's expiry (hold_released, via expiry)
    "processor": [*_events("decision"), topology.event_filter("operator", "hold_released", "*"),
                  topology.COMMANDS_ALL, *COMMON],
    "actuator": [*_events("result", "kernel", "snapshot", "task", "stage", "boot"), topology.TASKS_ALL,
                 f"$KV.{topology.INTENTS_BUCKET}.>", *COMMON],
    "operator": [*_events("operator"), *COMMON],  # holds, approvals, denials: people only
    "projector": COMMON,
    "viewer": ["$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.CONSUMER.CREATE.>",
               "$JS.API.CONSUMER.MSG.NEXT.>", "$JS.API.CONSUMER.INFO.>"],
    "admin": [">"],
}
SUBSCRIBE = ["_INBOX.>", "grace.heartbeat.>"]

# which role a component (the name a stage connects with) uses
COMPONENT_ROLE = {"produce": "producer", "process": "processor", "processor": "processor",
                  "act": "actuator", "actuator": "actuator", "project": "projector",
                  "projector": "projector", "tail": "viewer", "dashboard": "viewer", "ping": "viewer",
                  "playbooks-test": "viewer", "replay": "viewer",
                  "operator": "operator"}


def role_of(component: str) -> str:
    return COMPONENT_ROLE.get(component, "admin")


def auth_dir(data_dir: Path) -> Path:
    return data_dir / "auth"


def server_block(users: dict[str, str]) -> str:
    """The nats-server `authorization` block for these users."""
    entries = []
    for role, password in users.items():
        allow_pub = json.dumps(ROLES[role])
        allow_sub = json.dumps([">"] if role == "admin" else SUBSCRIBE)
        entries.append(f'    {{user: "{role}", password: "{password}", permissions: '
                       f"{{publish: {{allow: {allow_pub}}}, subscribe: {{allow: {allow_sub}}}}}}}")
    return "authorization {\n  users: [\n" + ",\n".join(entries) + "\n  ]\n}\n"


def init(data_dir: Path, force: bool = False) -> Path:
    """Write users.json (0600) and server.conf under <data_dir>/auth; return the folder."""
    folder = auth_dir(data_dir)
    users_file = folder / "users.json"
    if users_file.exists() and not force:
        raise ConfigError(f"{users_file} exists; pass --force to replace every password")
    folder.mkdir(parents=True, exist_ok=True)
    users = {role: secrets.token_urlsafe(24) for role in ROLES}
    fd = os.open(users_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(users, f, indent=2)
    conf = folder / "server.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(server_block(users))
    return folder


def credentials(data_dir: Path, component: str) -> tuple[str, str]:
    """(user, password) for a component; a clear error when `grace auth init` was not run."""
    users_file = auth_dir(data_dir) / "users.json"
    try:
        users = json.loads(users_file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"nats.auth is on but {users_file} does not exist: run `grace auth init`"
                          ) from None
    role = role_of(component)
    return role, users[role]


def server_conf(data_dir: Path) -> str:
    """The authorization block for the embedded server."""
    path = auth_dir(data_dir) / "server.conf"
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"nats.auth is on but {path} does not exist: run `grace auth init`") from None


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
    from grace.cliutil import fail, load_context

    try:
        ctx = load_context(config_path, None, data_dir)
        folder = init(ctx.data_dir, force)
    except ConfigError as exc:
        fail(str(exc))
        return
    click.echo(f"wrote {folder / 'server.conf'} and {folder / 'users.json'} (mode 0600): users "
               f"{', '.join(ROLES)}. Set nats.auth: true; an external server must include server.conf.")


def register(group: click.Group) -> None:
    group.add_command(auth)
