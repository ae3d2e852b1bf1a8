"""One kernel process as the supervisor tracks it, the state file that lets a restarted
actuator adopt its kernels, and signal helpers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from grace import kernelstate

log = logging.getLogger(__name__)

# held: exited (or never started) and left stopped while an operator's hold covers it
State = Literal["running", "suspended", "stopping", "backoff", "held"]


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
    suspended_at: float | None = None  # wall time shed_load suspended it (shed.max_s runs from it)
    hold_id: str = ""  # while held: the hold that keeps it stopped

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
    """Write the live instances atomically (the format is grace.kernelstate's)."""
    kernelstate.write(path, [kernelstate.Recorded(
        kernel=i.kernel, index=i.index, pid=i.pid, create_time=i.create_time, state=i.state,
        suspended_at=i.suspended_at if i.state == "suspended" else None) for i in instances])


def load_state(path: Path) -> list[Instance]:
    """The instances a previous actuator recorded (not checked for liveness here)."""
    rows = kernelstate.read(path) or []
    out = []
    for r in rows:
        suspended = r.state == "suspended"
        state: State = "suspended" if suspended else "held" if r.state == "held" else "running"
        out.append(Instance(kernel=r.kernel, index=r.index, pid=r.pid, create_time=r.create_time,
                            state=state,
                            suspended_at=(r.suspended_at or time.time()) if suspended else None))
    return out


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


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
