"""The data-dir lock: one run of Grace per data dir, held as long as any process of it lives.

`grace up` takes an exclusive flock on `<data_dir>/run.lock` and hands the open
file to every child it starts (nats-server, the stages) and the actuator hands it
on to its kernels: a flock belongs to the open file, so the lock stays held until
the last process of the run has ended, even if `grace up` itself was killed. A
second `grace up` on the same data dir is refused with the pids that hold it.
The actuator also holds `<data_dir>/act.<host>.lock` itself, so two actuators
never supervise the same host's kernels.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from grace.errors import ExitCode, GraceError

RUN_LOCK = "run.lock"
FD_ENV = "GRACE_RUN_LOCK_FD"  # the inherited run.lock descriptor, for the next child down


class DataDirInUse(GraceError):
    """Another process of a Grace run holds this data dir's lock."""

    exit_code = ExitCode.ERROR


def holders(path: Path) -> list[int]:
    """Pids with `path` open (read from /proc); empty where /proc cannot tell."""
    target = str(path.resolve())
    found: list[int] = []
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    found.append(pid)
                    break
            except OSError:
                continue
    return sorted(found)


def _in_use(path: Path, recorded: str) -> str:
    """The refusal: who took the lock, and which live processes hold it now."""
    pids = holders(path)
    owner = recorded or "a process that recorded nothing"
    first = recorded.split()[1] if recorded.startswith("pid ") and len(recorded.split()) > 1 else ""
    if pids and first.isdigit() and int(first) in pids:
        others = len(pids) - 1
        held = f"held by pid {first}" + (f" and {others} more process(es) of its run" if others else "")
    elif pids:
        held = (f"its owner is gone but {len(pids)} process(es) of that run still hold it: pid "
                f"{', '.join(map(str, pids[:8]))}{' ...' if len(pids) > 8 else ''}")
    else:
        held = "held"
    return (f"data dir {path.parent} is in use: {path.name} was taken by {owner} and is {held}. "
            "Stop that run first (SIGTERM the pid), or use another --data-dir.")


class FileLock:
    """An exclusive, non-blocking flock on one file that records its holder's pid and role."""

    def __init__(self, path: Path, role: str) -> None:
        self.path, self.role = path, role
        self.fd: int | None = None

    def acquire(self) -> FileLock:
        """Take the lock or raise DataDirInUse naming the pids that hold it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            recorded = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirInUse(_in_use(self.path, recorded)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({self.role})\n".encode(), 0)
        self.fd = fd
        return self

    def inheritable(self) -> int:
        """The descriptor, marked to survive exec: pass it in Popen's pass_fds."""
        assert self.fd is not None, "acquire() first"
        os.set_inheritable(self.fd, True)
        return self.fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # children that inherited it keep the lock until they end
            self.fd = None


def run_lock(data_dir: Path, role: str = "grace up") -> FileLock:
    """The data dir's run lock, taken by `grace up` or `grace agent` (`role` names the holder)."""
    return FileLock(data_dir / RUN_LOCK, role)


def actuator_lock(data_dir: Path, host: str) -> FileLock:
    return FileLock(data_dir / f"act.{host}.lock", f"grace act, host {host}")


def inherited_fd() -> int | None:
    """The run.lock descriptor this process inherited from `grace up`, if it is still open."""
    raw = os.environ.get(FD_ENV, "")
    if not raw.isdigit():
        return None
    fd = int(raw)
    try:
        os.fstat(fd)
    except OSError:
        return None
    return fd
