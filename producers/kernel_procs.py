"""The instances of each configured kernel: index, pid, and whether Grace suspended it.

Two sources: the supervisor's record (grace.kernelstate; every instance Grace
started, heartbeats or not, and which ones shed_load suspended) and the kernels'
heartbeats (pid and instance of services that announce themselves). The record
names the instances when there is one; heartbeats fill in where there is none
(a producer on a host without Grace's actuator).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import psutil

from grace import kernelstate
from grace.config import Config, Kernel
from producers.heartbeats import HeartbeatTracker

Signal = Literal["heartbeat", "health_url", "process"]  # how a kernel's liveness is judged


@dataclass(frozen=True)
class Proc:
    kernel: str
    index: int
    pid: int  # 0: unknown
    create_time: float = 0.0  # epoch seconds; 0: unknown
    suspended_by_grace: bool = False
    supervisor_state: str = "running"


def instances(cfg: Config, tracker: HeartbeatTracker) -> dict[str, list[Proc]]:
    """kernel name -> its known instances (sorted by index); kernels with none map to []."""
    recorded = kernelstate.read(kernelstate.state_path(cfg))
    out: dict[str, list[Proc]] = {k.name: [] for k in cfg.kernels}
    if recorded is not None:
        for r in recorded:
            if r.kernel in out:
                out[r.kernel].append(Proc(r.kernel, r.index, r.pid, r.create_time,
                                          r.state == "suspended", r.state))
    for k in cfg.kernels:
        have = {p.index for p in out[k.name]}
        if recorded is not None and any(x.kernel == k.name for x in recorded):
            continue  # the supervisor's record is complete for the kernels it runs
        for index, seen in sorted(tracker.of(k.name).items()):
            if index not in have and seen.pid > 0:
                out[k.name].append(Proc(k.name, index, seen.pid))
        out[k.name].sort(key=lambda p: p.index)
    return out


def status(pid: int, create_time: float = 0.0) -> str:
    """psutil status of `pid`; "gone" when it no longer exists, is a zombie, or is another process."""
    try:
        p = psutil.Process(pid)
        if create_time and abs(p.create_time() - create_time) > 0.01:
            return "gone"  # the pid was reused by another process
        st = str(p.status())
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        return "unknown"
    return "gone" if st == psutil.STATUS_ZOMBIE else st


def age_s(create_time: float) -> float | None:
    """Seconds since the process started (wall clock), or None when unknown."""
    return max(0.0, time.time() - create_time) if create_time else None


def judged_by(k: Kernel, tracker: HeartbeatTracker) -> Signal:
    """The liveness signal of kernel `k`: heartbeat, health_url, or process alone."""
    if not k.heartbeat_timeout:
        return "process"
    if tracker.sends(k.name):
        return "heartbeat"
    return "health_url" if k.health_url else "heartbeat"
