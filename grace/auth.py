"""NATS users and permissions, one user per component (`grace auth init`).

Each component may publish only its own subjects, as topology.EVENT_PUBLISHERS says: producers
write findings and checks, the processor decisions and commands, the actuator results, kernel,
snapshot and task events, the operator role (`grace hold`, `grace approve`, `grace deny`) operator
events; the projector and viewers write nothing to the log; kernels (the supervised
services) publish only their heartbeats and subscribe only to inboxes. Only the admin user (grace up, the
CLI's publish) may create streams. The embedded server loads the generated block when
`nats.auth: true`. A component name without a role is an error, never admin.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from grace import tokens, topology
from grace.errors import ConfigError

JS_READ = ["$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
           "$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>", "$JS.API.CONSUMER.INFO.>",
           "$JS.API.CONSUMER.MSG.NEXT.>", "$JS.API.CONSUMER.DELETE.>", "$JS.API.STREAM.MSG.GET.>",
           "$JS.API.DIRECT.GET.>"]
COMMON = [topology.HEARTBEATS_ALL, topology.REJECTED_ALL, "$JS.ACK.>", *JS_READ]

# Roles outside topology's publishers table, with fixed allow lists. A role for kernels
# (publishing only their heartbeats, topology.HEARTBEATS_ALL) belongs here.
FIXED_ROLES: dict[str, list[str]] = {
    "viewer": ["$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.CONSUMER.CREATE.>",
               "$JS.API.CONSUMER.MSG.NEXT.>", "$JS.API.CONSUMER.INFO.>"],
    "admin": [">"],
    # kernels (the services Grace supervises) send heartbeats only; one user for every host
    "kernel": [topology.heartbeat_publish("*")],
}
# roles that subscribe to other than SUBSCRIBE
SUBSCRIBE_OF: dict[str, list[str]] = {"admin": [">"], "kernel": ["_INBOX.>"]}

# role -> subjects it may publish to; every role may subscribe to inboxes and heartbeats
ROLES: dict[str, list[str]] = {
    **{role: [*topology.publish_subjects(role), *COMMON] for role in topology.PIPELINE_ROLES},
    **FIXED_ROLES,
}
SUBSCRIBE = ["_INBOX.>", topology.HEARTBEATS_ALL]

# which role a component (the name it connects with: Context.bus(component)) uses
COMPONENT_ROLE = {"produce": "producer", "process": "processor", "processor": "processor",
                  "act": "actuator", "actuator": "actuator", "project": "projector",
                  "projector": "projector", "tail": "viewer", "dashboard": "viewer", "ping": "viewer",
                  "playbooks-test": "viewer", "replay": "viewer",
                  "operator": "operator", "kernel": "kernel",
                  # the HTTP intake: alerts are findings (producer); POST /events takes any
                  # known type, as `grace events publish` does (admin)
                  "intake": "producer", "ingest": "admin",
                  "console": "operator",  # the web console's approve/deny/hold actions
                  # grace up, grace events publish and snapshot commands, grace demo
                  "up": "admin", "cli": "admin", "demo": "admin",
                  # grace agent records its stages' restarts, as grace up does
                  "agent": "admin"}


def role_of(component: str) -> str:
    """The role `component` connects as; an unknown name is an error, never admin."""
    try:
        return COMPONENT_ROLE[component]
    except KeyError:
        raise ConfigError(
            f"nats.auth is on but component {component!r} has no NATS role (grace.auth."
            f"COMPONENT_ROLE knows {', '.join(sorted(COMPONENT_ROLE))}): connect with one of those "
            "names, or add the component to COMPONENT_ROLE with the least role it needs") from None


def auth_dir(data_dir: Path) -> Path:
    return data_dir / "auth"


def server_block(users: dict[str, str]) -> str:
    """The nats-server `authorization` block for these users."""
    entries = []
    for role, password in users.items():
        allow_pub = json.dumps(ROLES[role])
        allow_sub = json.dumps(SUBSCRIBE_OF.get(role, SUBSCRIBE))
        entries.append(f'    {{user: "{role}", password: "{password}", permissions: '
                       f"{{publish: {{allow: {allow_pub}}}, subscribe: {{allow: {allow_sub}}}}}}}")
    return "authorization {\n  users: [\n" + ",\n".join(entries) + "\n  ]\n}\n"


def init(data_dir: Path, force: bool = False) -> Path:
    """Write users.json, server.conf and the operator token (0600) under <data_dir>/auth."""
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
    tokens.write_token(data_dir)
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
    if role not in users:
        raise ConfigError(f"{users_file} has no user for role {role!r} (written before that role "
                          "existed): run `grace auth init --force` and restart Grace")
    return role, users[role]


def server_conf(data_dir: Path) -> str:
    """The authorization block for the embedded server."""
    path = auth_dir(data_dir) / "server.conf"
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"nats.auth is on but {path} does not exist: run `grace auth init`") from None
