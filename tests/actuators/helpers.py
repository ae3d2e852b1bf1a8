"""Builders for actuator tests: a config folder with real files and real kernel scripts."""

from __future__ import annotations

import pickle
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import yaml

from grace import config as config_mod
from grace import events, topology
from grace.bus import Bus
from grace.config import Config
from grace.consume import Delivery, read_range

KERNEL_SCRIPT = """\
import json, os, signal, sys, time
if "--ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "--env-file" in sys.argv:
    keys = ["GRACE_NATS_URL", "GRACE_HOST", "GRACE_KERNEL", "GRACE_INSTANCE"]
    out = sys.argv[sys.argv.index("--env-file") + 1] + "." + os.environ["GRACE_INSTANCE"]
    with open(out, "w") as f:
        json.dump({k: os.environ.get(k) for k in keys}, f)
open(os.path.join(sys.argv[1], f"ready-{os.getpid()}"), "w").close()
while True:
    time.sleep(0.2)
"""


def ready(root: Path, pid: int) -> bool:
    """The kernel script has set itself up (signal handlers installed)."""
    return (root / f"ready-{pid}").exists()


def kernel_processes(root: Path) -> list[psutil.Process]:
    """Live processes running this test folder's kernel script (children or adopted)."""
    marker = str(root / "kernel.py")
    return [p for p in psutil.process_iter(["cmdline", "status"])
            if marker in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]


def unique_host(prefix: str = "act") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def kernel(name: str, root: Path, *args: str, **extra: Any) -> dict[str, Any]:
    """A kernel running the sleeper script (marked with the test folder, for process counts)."""
    return {"name": name, "command": [sys.executable, str(root / "kernel.py"), str(root), *args],
            "stop_timeout": "2s", **extra}


def make_config(root: Path, *, host: str | None = None, kernels: list[dict[str, Any]] | None = None,
                **extra: Any) -> Config:
    """grace.yaml in `root` with a model, a config file and optional kernels."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "kernel.py").write_text(KERNEL_SCRIPT)
    (root / "models").mkdir(exist_ok=True)
    (root / "config").mkdir(exist_ok=True)
    (root / "models" / "m.pkl").write_bytes(pickle.dumps({"weights": list(range(100))}))
    (root / "config" / "app.yaml").write_text("threads: 4\nmode: fast\n")
    doc: dict[str, Any] = {
        "host": host or unique_host(), "data_dir": str(root / ".grace"),
        "protect": {"models": ["models/*.pkl"], "configs": ["config/*.yaml"]},
        "snapshots": {"dir": ".grace_snapshots", "max_age": "24h", "keep": 3},
        "kernels": kernels or [], **extra,
    }
    (root / "grace.yaml").write_text(yaml.safe_dump(doc))
    return config_mod.load(root / "grace.yaml")


def command_event(bus: Bus, cfg: Config, payload: events.Payload) -> events.Event:
    return bus.event(payload, host=cfg.host)


async def results_for(bus: Bus, host: str, command_id: str | None = None) -> list[events.Event]:
    """Result events of `host` in the log (optionally of one command)."""
    found: list[events.Event] = []

    async def keep(items: list[Delivery[events.Event]]) -> None:
        for d in items:
            data = d.item.data
            if isinstance(data, events.Result) and (command_id is None or data.command_id == command_id):
                found.append(d.item)

    await read_range(bus, 1, keep, filter_subject=topology.event_filter("result", "*", host),
                     stage="test-results")
    return found


async def events_of(bus: Bus, host: str, category: str = "*", type_: str = "*") -> list[events.Event]:
    found: list[events.Event] = []

    async def keep(items: list[Delivery[events.Event]]) -> None:
        found.extend(d.item for d in items)

    await read_range(bus, 1, keep, filter_subject=topology.event_filter(category, type_, host),
                     stage="test-events")
    return found
