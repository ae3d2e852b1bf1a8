"""Children that die with their parent: Linux's parent-death signal, and a parent watch.

`grace up` starts nats-server and the four stages with `preexec(signal)`, so the
kernel signals them when `grace up` ends, however it ends (SIGKILL and the OOM
killer included). A Python child also runs `watch_parent`, which notices a
changed parent pid (reparented to init or a subreaper) and stops the process
cleanly: the fallback where prctl is unavailable or was reset.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PARENT_ENV = "GRACE_PARENT_PID"  # set for a child that should stop when this pid is no longer its parent
WATCH_INTERVAL_S = 0.5


def set_pdeathsig(sig: int) -> bool:
    """Ask Linux to send `sig` to this process when its parent thread exits; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def preexec(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A Popen preexec_fn: the child gets `sig` when the parent dies, and ends at once if the
    parent already died between fork and prctl (it would otherwise never get the signal)."""
    parent = os.getpid()

    def child() -> None:
        set_pdeathsig(sig)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
    return child


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this environment) plus the mark `watch_parent` reads in the child."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def expected_parent() -> int | None:
    """The parent pid this process must die with, taken once from the environment (and removed,
    so this process's own children do not inherit a mark that names their grandparent)."""
    raw = os.environ.pop(PARENT_ENV, "")
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


async def watch_parent(parent: int, on_death: Callable[[], None],
                       interval: float = WATCH_INTERVAL_S) -> None:
    """Call `on_death` once when this process's parent is no longer `parent`."""
    while os.getppid() == parent:
        await asyncio.sleep(interval)
    log.error("parent process %d ended: stopping (a process of a `grace up` run never outlives it)",
              parent)
    on_death()
