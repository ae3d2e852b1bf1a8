"""compose.yaml: NATS with JetStream on a volume and the four stages, each a real grace command.

No Docker engine runs here, so the file is checked statically against the real CLI.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from grace.app.cli import main

REPO = Path(__file__).resolve().parent.parent
STAGES = {"produce", "process", "act", "project"}


def load() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def is_real_grace_command(argv: list[str]) -> bool:
    """argv starts with `grace` and names a command the CLI really has, with options it accepts."""
    if not argv or argv[0] != "grace":
        return False
    ctx = click.Context(main)
    cmd: click.Command = main
    args = argv[1:]
    while isinstance(cmd, click.Group) and args:
        sub = cmd.get_command(ctx, args[0])
        if sub is None:
            return False
        cmd, args = sub, args[1:]
    try:
        cmd.make_context(cmd.name or "", list(args), resilient_parsing=False)
    except click.UsageError:
        return False
    return not isinstance(cmd, click.Group)


def test_nats_service_runs_jetstream_on_a_volume_with_a_health_check() -> None:
    nats = load()["services"]["nats"]
    assert "-js" in nats["command"]
    store = nats["command"][nats["command"].index("-sd") + 1]
    assert any(v.split(":")[1] in store for v in nats["volumes"])
    assert "healthz" in " ".join(nats["healthcheck"]["test"])
    assert nats["volumes"][0].split(":")[0] in load()["volumes"]


def test_each_stage_is_a_service_running_a_real_grace_command_with_a_health_check() -> None:
    services = load()["services"]
    assert services.keys() >= STAGES
    for name in STAGES:
        svc = services[name]
        assert svc["command"] == ["grace", name], name
        assert is_real_grace_command(svc["command"]), name
        check = svc["healthcheck"]["test"]
        assert check[0] == "CMD" and is_real_grace_command(check[1:]), name
        env = svc["environment"]
        assert env["GRACE_NATS_URL"].startswith("nats://nats:")
        assert svc["depends_on"]["nats"]["condition"] == "service_healthy"


def test_the_check_rejects_a_command_grace_does_not_have() -> None:
    assert not is_real_grace_command(["grace", "no-such-stage"])
    assert not is_real_grace_command(["grace", "ping"])  # NAME is required
    assert not is_real_grace_command(["sh", "-c", "grace produce"])
