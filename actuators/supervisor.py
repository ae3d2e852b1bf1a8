"""The kernel supervisor: config's kernels as real child processes.

Start, stop (SIGTERM, SIGKILL after stop_timeout), restart with backoff on an
unexpected exit, suspend/resume (SIGSTOP/SIGCONT via psutil) and worker pools
scaled within min/max. Each kernel runs in its own session so a signal reaches
its children too. Live instances are written to a state file, so an actuator
killed and restarted adopts its kernels instead of starting a second set (and
the producers learn pids and which stopped processes Grace suspended).

A suspended (shed) instance is resumed by the watch loop once it has been
suspended for `shed.max_s`, whether or not the pressure's clear event came:
shedding is a pause, never a way to leave a kernel stopped.

An operator's hold (`grace hold add kernel:api --for 30m`) covering an instance stops
the supervisor's own restarts of it: an instance that exits while held is left stopped
(state `held`, a `kernel_held` event after its `kernel_exited`), one held at start is not
started, and either starts as soon as the hold ends (released or expired). Grace's
intentional actions (scale, restart on command, stop) complete regardless: a hold says
"do not bring it back by yourself", not "keep it as it is".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import psutil

from actuators.instances import Instance, load_state, save_state, settle, signal_group
from grace import events, heartbeat, kernelstate, parentdeath, runlock
from grace.config import Config, Kernel
from grace.errors import ActionError
from grace.holds import Hold

log = logging.getLogger(__name__)

Emit = Callable[[events.Payload], None]
HeldBy = Callable[[str, int], Hold | None]  # (kernel, instance) -> the hold covering it, if any
STABLE_S = 30.0  # a kernel that ran this long before dying starts its backoff afresh


class Supervisor:
    """Runs the kernels of `cfg`; lifecycle events go to `emit`."""

    def __init__(self, cfg: Config, emit: Emit, *, nats_url: str = "", state_file: Path | None = None,
                 poll_interval: float = 0.2, backoff_base: float = 0.5, backoff_max: float = 30.0,
                 log_dir: Path | None = None, clock: Callable[[], float] = time.time,
                 held_by: HeldBy | None = None) -> None:
        self.cfg, self.emit, self.nats_url, self.state_file = cfg, emit, nats_url, state_file
        self.held_by: HeldBy = held_by or (lambda _kernel, _index: None)
        self.clock = clock  # wall time of suspensions (shed.max_s); injectable for tests
        self.poll_interval, self.backoff_base, self.backoff_max = poll_interval, backoff_base, backoff_max
        self.log_dir = log_dir or cfg.data_path / "kernels"
        self.instances: dict[str, list[Instance]] = {k.name: [] for k in cfg.kernels}
        # credentials and TLS files the kernels' heartbeats connect with; read once, so a
        # missing `grace auth init` fails the actuator's start, not every kernel's heartbeat
        self.nats_env = heartbeat.kernel_env(cfg) if nats_url else {}
        self.lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- queries

    def kernel(self, name: str) -> Kernel:
        k = self.cfg.kernel(name)
        if k is None:
            known = ", ".join(self.instances) or "none"
            raise ActionError(f"kernel {name!r} is not in the config (kernels: {known}); "
                              "Grace only manages kernels its config names")
        return k

    def pids(self, name: str) -> list[int]:
        return [i.pid for i in self.instances.get(name, []) if i.pid and i.state != "held"]

    def held(self, name: str) -> list[int]:
        """The instances of `name` a hold keeps stopped."""
        return [i.index for i in self.instances.get(name, []) if i.state == "held"]

    def count(self, name: str) -> int:
        return len(self.instances.get(name, []))

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Adopt live kernels of a previous run, start the rest, watch them."""
        parentdeath.add_last_rite(self.kill_groups)  # `grace up` gone and no clean stop: no orphan
        self.emit(events.WatchdogStarted(name="kernel-supervisor", tier=2,
                                         interval_s=self.poll_interval))
        async with self.lock:
            self._adopt()
            for k in self.cfg.kernels:
                want = k.pool.min if k.pool else 1
                for index in self._free_indices(k.name, want - self.count(k.name)):
                    hold = self.held_by(k.name, index)
                    if hold is None:
                        self._spawn(k, index)
                    else:
                        self._hold(Instance(kernel=k.name, index=index), hold, "is held at start")
            self._save()
        self._task = asyncio.create_task(self._watch())

    async def stop(self, reason: str = "shutdown") -> None:
        """Stop every kernel gracefully and the watch loop."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self.lock:
            await asyncio.gather(*(self._stop_instance(i) for insts in self.instances.values()
                                   for i in insts))
            for insts in self.instances.values():
                insts.clear()
            self._save()
        parentdeath.remove_last_rite(self.kill_groups)
        self.emit(events.WatchdogStopped(name="kernel-supervisor", tier=2, reason=reason))

    def kill_groups(self, grace_s: float = 0.5) -> None:
        """End every kernel's process group now: SIGTERM, SIGKILL after `grace_s` (the last
        rite of an actuator whose `grace up` died; synchronous, no event is sent)."""
        pids = [i.pid for insts in self.instances.values() for i in insts if i.pid]
        for pid in pids:
            signal_group(pid, signal.SIGTERM)
            signal_group(pid, signal.SIGCONT)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.02)
        for pid in pids:
            if _alive(pid):
                signal_group(pid, signal.SIGKILL)

    async def scale(self, name: str, target: int) -> tuple[int, int]:
        """Run exactly `target` instances of a pool kernel (clamped to min/max)."""
        k = self.kernel(name)
        lo, hi = (k.pool.min, k.pool.max) if k.pool else (1, 1)
        target = max(lo, min(hi, target))
        async with self.lock:
            insts = self.instances[name]
            before = len(insts)
            for index in self._free_indices(name, target - before):
                self._spawn(k, index)
            extra = insts[target:]
            self._stopping(extra)
            del insts[target:]
            await asyncio.gather(*(self._stop_instance(i) for i in extra))
            self._save()
        if before != target:
            self.emit(events.KernelScaled(kernel=name, from_count=before, to_count=target))
        return before, target

    async def suspend(self, name: str) -> list[int]:
        """SIGSTOP every instance of a kernel (and its children); returns the pids stopped."""
        self.kernel(name)
        return await self._set_suspended(name, True)

    async def resume(self, name: str, reason: str = "") -> list[int]:
        self.kernel(name)
        return await self._set_suspended(name, False, reason)

    def expire_suspensions(self) -> list[int]:
        """Resume every instance suspended for `shed.max_s` or longer; the pids resumed.

        Called by the watch loop (under the lock), so the limit holds even when no
        condition_cleared ever comes."""
        limit = float(self.cfg.shed.max_s)
        now = self.clock()
        done: list[Instance] = []
        for insts in self.instances.values():
            for inst in insts:
                if inst.state != "suspended" or inst.suspended_at is None:
                    continue
                if now - inst.suspended_at < limit:
                    continue
                try:
                    procs = [psutil.Process(inst.pid)]
                    procs += procs[0].children(recursive=True)
                    for p in procs:
                        p.resume()
                except psutil.NoSuchProcess:
                    pass  # gone: the watch loop restarts it
                inst.state, inst.suspended_at = "running", None
                done.append(inst)
        for inst in done:  # one event per instance: the projection keeps a row per instance
            log.warning("kernel %s[%d]: resumed pid %d after shed.max_s=%gs", inst.kernel,
                        inst.index, inst.pid, limit)
            self.emit(events.KernelResumed(kernel=inst.kernel, instance=inst.index, pids=[inst.pid],
                                           reason=f"shed.max_s={limit:g}s reached"))
        if done:
            self._save()
        return [inst.pid for inst in done]

    def suspended(self, name: str) -> bool:
        insts = self.instances.get(name, [])
        return bool(insts) and all(i.state == "suspended" for i in insts)

    async def restart(self, name: str, index: int) -> Instance:
        """Stop one instance and start it again (a new pid)."""
        k = self.kernel(name)
        async with self.lock:
            old = next((i for i in self.instances[name] if i.index == index), None)
            if old is None:
                raise ActionError(f"kernel {name!r} has no instance {index}")
            self._stopping([old])
            await self._stop_instance(old)
            self.instances[name].remove(old)
            new = self._spawn(k, index, attempt=1)
            self._save()
        return new

    # ---------------------------------------------------------------- internals

    def _env(self, k: Kernel, index: int) -> dict[str, str]:
        env = {**os.environ, **k.env, "GRACE_HOST": self.cfg.host, "GRACE_KERNEL": k.name,
               "GRACE_INSTANCE": str(index)}
        if self.nats_url:
            env["GRACE_NATS_URL"] = self.nats_url
            env.update(self.nats_env)
        if self.state_file is not None:
            env[kernelstate.STATE_ENV] = str(self.state_file)  # lets a restarted actuator find it (_orphans)
        return env

    def _spawn(self, k: Kernel, index: int, attempt: int = 0) -> Instance:
        inst = Instance(kernel=k.name, index=index, attempt=attempt)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # the child keeps its own copy of the log's descriptor; ours closes once it is started
        with open(self.log_dir / f"{k.name}-{index}.log", "ab") as out:
            try:
                # an argument list, never a shell; own session so signals reach the kernel's children;
                # the run lock of `grace up` (when it started us) stays held while a kernel lives
                lock_fd = runlock.inherited_fd()
                inst.popen = subprocess.Popen(
                    _argv(k.command), cwd=str(self.cfg.path(k.cwd or ".")), env=self._env(k, index),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, pass_fds=() if lock_fd is None else (lock_fd,))
                inst.pid = inst.popen.pid
                inst.create_time = psutil.Process(inst.pid).create_time()
            except (OSError, psutil.NoSuchProcess) as exc:
                log.error("kernel %s[%d]: cannot start %s: %s", k.name, index, k.command, exc)
                inst.state, inst.restart_at = "backoff", time.monotonic() + self._delay(attempt + 1)
                self.emit(events.KernelExited(kernel=k.name, instance=index, pid=0, code=127))
        self.instances[k.name].append(inst)
        self.instances[k.name].sort(key=lambda i: i.index)
        if inst.pid:
            if attempt:
                self.emit(events.KernelRestarted(kernel=k.name, instance=index, pid=inst.pid,
                                                 attempt=attempt))
            else:
                self.emit(events.KernelStarted(kernel=k.name, instance=index, pid=inst.pid,
                                               critical=k.critical))
        return inst

    def _free_indices(self, name: str, n: int) -> list[int]:
        used = {i.index for i in self.instances[name]}
        out: list[int] = []
        index = 0
        while len(out) < n:
            if index not in used:
                out.append(index)
            index += 1
        return out

    def _delay(self, attempt: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** max(0, attempt - 1)))

    def _stopping(self, insts: list[Instance]) -> None:
        """Record that Grace stops these on purpose before signalling them, so a trigger that
        reads the record in between never takes the exit for a death."""
        for inst in insts:
            if inst.pid and inst.state not in ("backoff", "held"):
                inst.state = "stopping"
        self._save()

    async def _stop_instance(self, inst: Instance) -> None:
        if not inst.pid or inst.state in ("backoff", "held"):
            return
        k = self.cfg.kernel(inst.kernel)
        timeout = float(k.stop_timeout) if k else 5.0
        inst.state = "stopping"
        signal_group(inst.pid, signal.SIGTERM)
        signal_group(inst.pid, signal.SIGCONT)  # a suspended kernel must run to handle SIGTERM
        deadline = time.monotonic() + timeout
        exited, code = inst.exit_code()
        while not exited and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            exited, code = inst.exit_code()
        if not exited:
            log.warning("kernel %s[%d] pid %d ignored SIGTERM for %.1fs: SIGKILL", inst.kernel,
                        inst.index, inst.pid, timeout)
            signal_group(inst.pid, signal.SIGKILL)
            while not exited:
                await asyncio.sleep(0.02)
                exited, code = inst.exit_code()
        self.emit(events.KernelExited(kernel=inst.kernel, instance=inst.index, pid=inst.pid,
                                      code=code, expected=True))

    async def _set_suspended(self, name: str, suspend: bool, reason: str = "") -> list[int]:
        done: list[int] = []
        changed: list[Instance] = []
        async with self.lock:
            for inst in self.instances[name]:
                if inst.state not in ("running", "suspended") or not inst.pid:
                    continue
                if (inst.state == "suspended") == suspend:
                    continue
                try:
                    procs = [psutil.Process(inst.pid)]
                    procs += procs[0].children(recursive=True)
                    for p in procs:
                        p.suspend() if suspend else p.resume()
                except psutil.NoSuchProcess:
                    continue  # gone: the watch loop restarts it
                inst.state = "suspended" if suspend else "running"
                inst.suspended_at = self.clock() if suspend else None
                done.append(inst.pid)
                changed.append(inst)
                await settle(procs, suspend)
            self._save()
        for inst in changed:  # one event per instance: the projection keeps a row per instance
            self.emit(events.KernelSuspended(kernel=name, instance=inst.index, pids=[inst.pid])
                      if suspend else events.KernelResumed(kernel=name, instance=inst.index,
                                                           pids=[inst.pid], reason=reason))
        return done

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                async with self.lock:
                    self._check_once()
                    self.expire_suspensions()
            except Exception:  # the watchdog must keep watching
                log.exception("kernel supervisor: watch cycle failed")

    def _check_once(self) -> None:
        now = time.monotonic()
        changed = False
        for name, insts in self.instances.items():
            k = self.cfg.kernel(name)
            assert k is not None
            for inst in list(insts):
                if inst.state == "held":
                    changed |= self._check_held(k, inst)
                    continue
                if inst.state == "backoff":
                    if now >= inst.restart_at:
                        hold = self.held_by(name, inst.index)
                        if hold is not None:
                            self._hold(inst, hold, "exited")
                        else:
                            insts.remove(inst)
                            self._spawn(k, inst.index, attempt=inst.attempt + 1)
                        changed = True
                    continue
                if inst.state == "stopping":
                    continue
                exited, code = inst.exit_code()
                if not exited:
                    continue
                attempt = 0 if now - inst.started >= STABLE_S else inst.attempt
                self.emit(events.KernelExited(kernel=name, instance=inst.index, pid=inst.pid,
                                              code=code, expected=False))
                changed = True
                hold = self.held_by(name, inst.index)
                if hold is not None:
                    self._hold(inst, hold, f"exited (pid {inst.pid}, code {code})")
                    continue
                log.warning("kernel %s[%d] pid %d exited with code %s; restarting", name,
                            inst.index, inst.pid, code)
                inst.state, inst.attempt = "backoff", attempt
                inst.restart_at = now + self._delay(attempt + 1)
                changed = True
        if changed:
            self._save()

    def _hold(self, inst: Instance, hold: Hold, what: str) -> None:
        """Leave `inst` stopped under `hold` (said once per hold, in the log and as an event)."""
        if inst.state == "held" and inst.hold_id == hold.hold_id:
            return
        if not any(i is inst for i in self.instances[inst.kernel]):  # a slot held at start
            self.instances[inst.kernel].append(inst)
            self.instances[inst.kernel].sort(key=lambda i: i.index)
        until = hold.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        verb = "starting" if what == "is held at start" else "restarting"
        log.warning("kernel %s[%d] %s; hold %s (%s, by %s, until %s) covers it: not %s until "
                    "the hold ends", inst.kernel, inst.index, what, hold.hold_id, hold.target,
                    hold.by or "?", until, verb)
        inst.state, inst.hold_id = "held", hold.hold_id
        self.emit(events.KernelHeld(kernel=inst.kernel, instance=inst.index, hold_id=hold.hold_id,
                                    target=str(hold.target), until=hold.until, by=hold.by,
                                    pid=inst.pid))

    def _check_held(self, k: Kernel, inst: Instance) -> bool:
        """Start a held instance once no hold covers it; True when its state changed."""
        hold = self.held_by(k.name, inst.index)
        if hold is not None:
            if hold.hold_id == inst.hold_id:
                return False
            self._hold(inst, hold, "stays stopped")  # its hold ended, another one covers it
            return True
        log.warning("kernel %s[%d]: hold %s ended (released or expired); starting it again",
                    k.name, inst.index, inst.hold_id)
        self.instances[k.name].remove(inst)
        # a fresh start: the hold, not a crash loop, kept it down (attempt 1 is a restart)
        self._spawn(k, inst.index, attempt=1 if inst.pid else 0)
        return True

    def _save(self) -> None:
        if self.state_file is not None:
            save_state(self.state_file, [i for insts in self.instances.values() for i in insts])

    def _adopt(self) -> None:
        """Take over kernels a killed actuator left running; stop ones config no longer names."""
        if self.state_file is None:
            return
        for inst in load_state(self.state_file):
            gone, _ = inst.exit_code()
            if gone:
                # a held one's exit was recorded when it was held
                if inst.kernel in self.instances and inst.state != "held":
                    self.emit(events.KernelExited(kernel=inst.kernel, instance=inst.index,
                                                  pid=inst.pid, code=None))
                continue
            if inst.kernel not in self.instances:
                signal_group(inst.pid, signal.SIGTERM)
                continue
            log.info("adopted kernel %s[%d] pid %d", inst.kernel, inst.index, inst.pid)
            if inst.state == "held":
                inst.state = "running"  # recorded held yet alive: someone started it by hand
            self.instances[inst.kernel].append(inst)
        for inst in self._orphans():
            taken = {i.index for i in self.instances[inst.kernel]}
            if inst.index in taken:
                signal_group(inst.pid, signal.SIGTERM)  # a slot has one process, never two
                continue
            log.info("adopted kernel %s[%d] pid %d (started just before the last actuator died)",
                     inst.kernel, inst.index, inst.pid)
            self.instances[inst.kernel].append(inst)
        for insts in self.instances.values():
            insts.sort(key=lambda i: i.index)

    def _orphans(self) -> list[Instance]:
        """Live kernels of this supervisor the state file does not name.

        A kill between spawning a kernel and saving the state file leaves one: without
        this it would keep running unsupervised while a second one is started in its slot.
        """
        known = {i.pid for insts in self.instances.values() for i in insts}
        out: list[Instance] = []
        for p in psutil.process_iter(["pid", "create_time"]):
            if p.pid in known or p.pid == os.getpid():
                continue
            try:
                env = p.environ()
                if (env.get(kernelstate.STATE_ENV) != str(self.state_file)
                        or p.status() == psutil.STATUS_ZOMBIE):
                    continue
                if os.getsid(p.pid) != p.pid:
                    continue  # a kernel's own child (same env): kernels lead their own session
                name, index = env.get("GRACE_KERNEL", ""), int(env.get("GRACE_INSTANCE", "-1"))
                ours = p.ppid() == os.getpid()  # a child of this run is in `instances` already
            except (psutil.Error, OSError, ValueError):
                continue  # another user's process, gone meanwhile, or not ours
            if name in self.instances and index >= 0 and not ours:
                out.append(Instance(kernel=name, index=index, pid=p.pid,
                                    create_time=p.info["create_time"]))
        return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # our own exited child stays a zombie until reaped: it is gone
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _argv(command: list[str]) -> list[str]:
    """The kernel's argument list; a bare `python`/`python3` means Grace's own interpreter,
    so `import grace.heartbeat` works in the kernel without another install."""
    if command and command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    return list(command)
