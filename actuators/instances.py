"""One kernel process as the supervisor tracks it, the state file that lets a restarted
actuator adopt its kernels, and signal helpers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

log = logging.getLogger(__name__)

State = Literal["running", "suspended", "stopping", "backoff"]


@dataclass
class Instance:
    """One process of a kernel (index 0..n-1 within its pool)."""

    kernel: str
    index: int
    pid: int = 0
    create_time: float = 0.0
    popen: subprocess.Popen[bytes] | None = None  # None: adopted from a previous actuator
    state: State = "running"
    started: float = field(default_factory=time.monotonic)
    attempt: int = 0
    restart_at: float = 0.0

    def exit_code(self) -> tuple[bool, int | None]:
        """(exited, code); code is None for an adopted process (not our child)."""
        if self.popen is not None:
            code = self.popen.poll()
            return code is not None, code
        try:
            p = psutil.Process(self.pid)
            gone = p.create_time() != self.create_time or p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            gone = True
        return gone, None


def save_state(path: Path, instances: list[Instance]) -> None:
    """Write the live instances atomically (tmp + rename)."""
    rows = [{"kernel": i.kernel, "index": i.index, "pid": i.pid, "create_time": i.create_time,
             "state": i.state} for i in instances if i.pid]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows))
    os.replace(tmp, path)


def load_state(path: Path) -> list[Instance]:
    """The instances a previous actuator recorded (not checked for liveness here)."""
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        log.warning("kernel state file %s unreadable; starting kernels afresh", path)
        return []
    return [Instance(kernel=r["kernel"], index=int(r["index"]), pid=int(r["pid"]),
                     create_time=float(r["create_time"]),
                     state="suspended" if r.get("state") == "suspended" else "running")
            for r in rows]


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


async def settle(procs: list[psutil.Process], stopped: bool, timeout: float = 2.0) -> None:
    """Wait until the kernel really is (or is no longer) stopped: signals land asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all((p.status() == psutil.STATUS_STOPPED) == stopped for p in procs):
                return
        except psutil.NoSuchProcess:
            return
        await asyncio.sleep(0.01)
