"""How many processes a kernel's pool runs now, counted in the world (psutil).

The supervisor starts every kernel instance with GRACE_HOST and GRACE_KERNEL in
its environment (and GRACE_KERNEL_STATE, its state file under the data dir), so
the processes themselves say which pool they belong to, whether or not they
send heartbeats. A process whose state file lies under another data dir belongs
to another Grace using the same host name on this machine (a test run, a second
copy) and is not counted. Processes Grace may not read are skipped.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from grace.kernelstate import STATE_ENV


def pool_sizes(host: str, data_dir: Path, kernels: set[str]) -> dict[str, int]:
    """kernel -> live processes of that pool on `host` (zombies excluded), for `kernels`."""
    sizes = dict.fromkeys(kernels, 0)
    me = psutil.Process().uids().real
    ours = str(data_dir.resolve()) + "/"
    for p in psutil.process_iter(["uids"]):
        try:
            if p.info["uids"] is None or p.info["uids"].real != me:
                continue  # another user's process: not ours to read, not one we started
            env = p.environ()
            name = env.get("GRACE_KERNEL")
            if name not in sizes or env.get("GRACE_HOST") != host:
                continue
            mark = env.get(STATE_ENV)
            if mark and not mark.startswith(ours):
                continue
            if p.status() != psutil.STATUS_ZOMBIE:
                sizes[name] += 1
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
    return sizes
