"""A config folder for operator commands (kernels, protected files, the shipped playbooks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grace import events
from grace.bus import Bus
from grace.config import Config
from tests.actuators.helpers import events_of, kernel, make_config, unique_host
from tests.conftest import REPO
from tests.support import grace_cmd


def operator_config(root: Path, **extra: Any) -> Config:
    """grace.yaml in `root`: kernels api (pool max 3) and reporter, models/m.pkl and
    config/app.yaml protected, the shipped playbooks, the shipped holds.max; a fresh host."""
    kernels = [kernel("api", root, pool={"min": 1, "max": 3}), kernel("reporter", root)]
    return make_config(root, host=unique_host("ctl"), kernels=kernels,
                       playbooks=[str(REPO / "playbooks")], **extra)


def cli(root: Path, nats_url: str, *args: str, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> Any:
    """Run `grace ARGS -c root/grace.yaml --nats URL`."""
    return grace_cmd(*args, "-c", str(root / "grace.yaml"), "--nats", nats_url, cwd=cwd,
                     env={"GRACE_OPERATOR": "", **(env or {})})


async def operator_events(bus: Bus, host: str) -> list[events.Event]:
    return await events_of(bus, host, "operator")


def said(res: Any) -> str:
    return f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
