"""Children that die with their parent: Linux's parent-death signal, and a parent watch.

`grace up` starts nats-server and the four stages with `preexec(signal)`, so the
kernel signals them when `grace up` ends, however it ends (SIGKILL and the OOM
killer included). A Python child also runs `watch_parent`, which notices a
changed parent pid (reparented to init or a subreaper) and stops the process
cleanly: the fallback where prctl is unavailable or was reset. A clean stop that
does not end within PARENT_GONE_EXIT_S (NATS died with the parent, and closing a
connection to it can wait) is cut short: the last rites run (the actuator kills
its kernels' process groups) and the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PARENT_ENV = "GRACE_PARENT_PID"  # set for a child that should stop when this pid is no longer its parent
WATCH_INTERVAL_S = 0.5
PARENT_GONE_EXIT_S = 2.0  # how long a clean stop may take once the parent is gone
_RITES: list[Callable[[], None]] = []


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved in the parent: a forked child must not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return fn


def set_pdeathsig(sig: int) -> bool:
    """Ask Linux to send `sig` to this process when its parent thread exits; False elsewhere."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0


def preexec(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A Popen preexec_fn: the child gets `sig` when the parent dies, and ends at once if the
    parent already died between fork and prctl (it would otherwise never get the signal).
    The parent thread must live as long as the child (Linux signals on the thread's exit):
    `grace up` starts its children from its main thread."""
    parent = os.getpid()
    prctl = _prctl()

    def child() -> None:  # between fork and exec: no imports, no locks, no allocation to speak of
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
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


def add_last_rite(rite: Callable[[], None]) -> None:
    """Run `rite` (quick, synchronous) before this process exits because its parent is gone
    and a clean stop did not finish in PARENT_GONE_EXIT_S: the supervisor kills its kernels."""
    _RITES.append(rite)


def remove_last_rite(rite: Callable[[], None]) -> None:
    with contextlib.suppress(ValueError):
        _RITES.remove(rite)


def watch_parent(parent: int, on_death: Callable[[], None], loop: asyncio.AbstractEventLoop,
                 interval: float = WATCH_INTERVAL_S, grace_s: float = PARENT_GONE_EXIT_S
                 ) -> threading.Thread:
    """A daemon thread: when this process's parent is no longer `parent`, call `on_death` in
    `loop` (a clean stop); if the process still runs `grace_s` later (a stop stuck on a dead
    NATS, a blocked loop), run the last rites and exit with code 1."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.error("parent process %d ended: stopping (a process of a `grace up` run never "
                  "outlives it)", parent)
        with contextlib.suppress(RuntimeError):  # the loop already closed: we are exiting
            loop.call_soon_threadsafe(on_death)
        time.sleep(grace_s)
        log.error("still running %.0fs after the parent ended: exiting now", grace_s)
        for rite in _RITES.copy():  # a copy: the loop thread may remove one meanwhile
            try:
                rite()
            except Exception:
                log.exception("last rite %r failed", rite)
        logging.shutdown()
        os._exit(1)

    t = threading.Thread(target=watch, name="parent-watch", daemon=True)
    t.start()
    return t
