"""The supervisor's record of live kernel instances, shared by actuator and producers.

The actuator writes `<data_dir>/actuator/<host>-kernels.json` on every change
(spawn, exit, suspend, resume); health_signal and resource_pressure read it to
learn the pids of kernels that send no heartbeat, and which stopped processes
Grace itself suspended (shed_load) as opposed to ones that hang. Stages never
import each other: this module is the contract between them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from grace.config import Config

log = logging.getLogger(__name__)

# in the environment of every kernel the supervisor starts: its state file, so a process
# tells which Grace (data dir) started it when several on a machine share a host name
STATE_ENV = "GRACE_KERNEL_STATE"


def state_path(cfg: Config) -> Path:
    """Where the actuator of `cfg`'s host records its kernel instances."""
    return cfg.data_path / "actuator" / f"{cfg.host}-kernels.json"


@dataclass(frozen=True)
class Recorded:
    """One instance as recorded: `state` is running, suspended (by Grace), stopping, backoff or
    held (exited and left stopped while an operator's hold covers it)."""

    kernel: str
    index: int
    pid: int
    create_time: float  # the process's start time (epoch seconds): tells a reused pid apart
    state: str = "running"
    suspended_at: float | None = None  # epoch seconds when shed_load suspended it


def write(path: Path, rows: list[Recorded]) -> None:
    """Write the instances atomically (tmp + rename)."""
    data = [{"kernel": r.kernel, "index": r.index, "pid": r.pid, "create_time": r.create_time,
             "state": r.state, "suspended_at": r.suspended_at} for r in rows if r.pid]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read(path: Path) -> list[Recorded] | None:
    """The recorded instances; None when there is no record (no actuator on this host)."""
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("kernel state file %s unreadable; ignoring it until it is rewritten", path)
        return None
    out = []
    for r in rows if isinstance(rows, list) else []:
        try:
            at = r.get("suspended_at")
            out.append(Recorded(kernel=str(r["kernel"]), index=int(r["index"]), pid=int(r["pid"]),
                                create_time=float(r["create_time"]), state=str(r.get("state") or "running"),
                                suspended_at=float(at) if at is not None else None))
        except (KeyError, TypeError, ValueError):
            continue
    return out
