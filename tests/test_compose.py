"""compose.yaml: a 3-node NATS cluster, one agent per host, processor partitions, the projection.

No Docker engine runs here, so the file is checked statically against the real CLI and config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from grace import config
from grace.app.cli import main
from grace.cliutil import ENV_SETTINGS, load_context
from processors import partition

REPO = Path(__file__).resolve().parent.parent
IMAGE_ROOT = "/app/"  # the Dockerfile's WORKDIR: the repository's files are here in the image


def load() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def services(role: str) -> dict[str, dict[str, Any]]:
    """Services whose command is `grace <role>` (or, for nats, the NATS image)."""
    out = {}
    for name, svc in load()["services"].items():
        is_nats = str(svc.get("image", "")).startswith("nats:")
        if (role == "nats" and is_nats) or (not is_nats and svc["command"][:2] == ["grace", role]):
            out[name] = svc
    return out


def walk(cmd: click.Command, ctx: click.Context) -> list[click.Command]:
    found = [cmd]
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None:
                found += walk(sub, ctx)
    return found


def known_env() -> set[str]:
    """GRACE_* variables the CLI reads: every option's envvar, and the environment-only settings."""
    names = set(ENV_SETTINGS)
    for cmd in walk(main, click.Context(main)):
        for p in cmd.params:
            if isinstance(p, click.Option) and p.envvar:
                names.update([p.envvar] if isinstance(p.envvar, str) else p.envvar)
    return names


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


def arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_nats_is_a_three_node_jetstream_cluster_each_node_on_its_volume_and_health_checked() -> None:
    nodes = services("nats")
    assert len(nodes) == 3
    names = set(nodes)
    for name, svc in nodes.items():
        cmd = svc["command"]
        assert "-js" in cmd and arg(cmd, "--cluster_name") == "grace"
        store = arg(cmd, "-sd")
        assert any(store.startswith(v.split(":")[1]) for v in svc["volumes"]), name
        assert svc["volumes"][0].split(":")[0] in load()["volumes"]
        routes = {r.split("//")[1].split(":")[0] for r in arg(cmd, "--routes").split(",")}
        assert routes == names - {name}, name  # each node routes to the two others
        assert "healthz" in " ".join(svc["healthcheck"]["test"])
    assert len({svc["volumes"][0] for svc in nodes.values()}) == 3  # a store of its own each


def test_every_grace_service_runs_a_real_command_with_known_settings_and_a_health_check() -> None:
    env_names = known_env()
    nats = set(services("nats"))
    grace_services = {n: s for n, s in load()["services"].items() if n not in nats}
    assert {s["command"][1] for s in grace_services.values()} == {"agent", "process", "project"}
    for name, svc in grace_services.items():
        assert is_real_grace_command(svc["command"]), name
        check = svc["healthcheck"]["test"]
        assert check[0] == "CMD" and is_real_grace_command(check[1:]), name
        assert check[1:3] == ["grace", "ping"] and check[3] == svc["command"][1], name
        env = svc["environment"]
        assert set(env) <= env_names, (name, set(env) - env_names)
        # every node of the cluster, so a client fails over when one is gone
        assert {u.split("//")[1].split(":")[0] for u in env["GRACE_NATS_URL"].split(",")} == nats
        assert all(svc["depends_on"][n]["condition"] == "service_healthy" for n in nats), name
        assert env["GRACE_CONFIG"].startswith(IMAGE_ROOT)
        assert (REPO / env["GRACE_CONFIG"][len(IMAGE_ROOT):]).is_file(), name


def test_streams_and_buckets_get_three_replicas_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, svc in load()["services"].items():
        if name in services("nats"):
            continue
        env = svc["environment"]
        assert env["GRACE_NATS_REPLICAS"] == "3", name
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        cfg_file = REPO / env["GRACE_CONFIG"][len(IMAGE_ROOT):]
        ctx = load_context(str(cfg_file), None, None)
        assert ctx.cfg.nats.replicas == 3 and ctx.cfg.host == env["GRACE_HOST"], name


def test_each_agent_is_one_host_with_a_volume_of_its_own_holding_its_system_and_data() -> None:
    agents = services("agent")
    assert len(agents) >= 2
    hosts, volumes = set(), set()
    for name, svc in agents.items():
        env = svc["environment"]
        (mount,) = svc["volumes"]
        volume, target = mount.split(":")
        assert volume in load()["volumes"]
        # the config (kernels, protected files) and the data dir are in the host's volume
        config_dir = str(Path(env["GRACE_CONFIG"]).parent)
        assert config_dir == target and env["GRACE_DATA_DIR"].startswith(target + "/"), name
        cfg = config.load(REPO / env["GRACE_CONFIG"][len(IMAGE_ROOT):])
        assert cfg.kernels and cfg.protect.models, "an agent's host has kernels and protected files"
        hosts.add(env["GRACE_HOST"])
        volumes.add(volume)
    assert len(hosts) == len(agents) == len(volumes)  # one host, one volume, one agent


def test_processor_partitions_cover_every_index_once_with_one_host_for_the_timer_lease() -> None:
    procs = services("process")
    parts = [partition.parse(s["environment"]["GRACE_PARTITION"]) for s in procs.values()]
    assert all(p is not None for p in parts)
    counts = {p.count for p in parts if p}
    assert len(counts) == 1 and sorted(p.index for p in parts if p) == list(range(counts.pop()))
    assert len({s["environment"]["GRACE_HOST"] for s in procs.values()}) == 1


def test_the_check_rejects_a_command_grace_does_not_have() -> None:
    assert not is_real_grace_command(["grace", "no-such-stage"])
    assert not is_real_grace_command(["grace", "ping"])  # NAME is required
    assert not is_real_grace_command(["sh", "-c", "grace produce"])
    assert "GRACE_NO_SUCH_SETTING" not in known_env()


def test_a_replica_count_jetstream_cannot_use_is_refused_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from grace.errors import ConfigError

    monkeypatch.setenv("GRACE_NATS_REPLICAS", "2")
    with pytest.raises(ConfigError, match="GRACE_NATS_REPLICAS='2': must be 1, 3 or 5"):
        load_context(str(REPO / "examples" / "grace.yaml"))
