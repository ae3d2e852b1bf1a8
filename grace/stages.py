"""Grace's own watchdog: the four stages as child processes, restarted when they
crash or stop heartbeating. One stage crashing never takes the others down.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import nats.errors

from grace import events, parentdeath, runlock, topology
from grace.bus import STAGE_BEAT_ENV, Bus
from grace.errors import GraceError

log = logging.getLogger(__name__)

# Start order: the projection first (it sees everything), then the actuator (it
# starts the kernels), the processor, and the producers last. Stop in reverse.
STAGES = ("project", "act", "process", "produce")
HEARTBEAT_TIMEOUT_S = 20.0
MAX_BACKOFF_S = 30.0
# A stage restarted this often within the window is crash-looping: `grace up` stops
CRASH_LOOP_RESTARTS = 5
CRASH_LOOP_WINDOW_S = 120.0

Publish = Callable[[events.Payload], Awaitable[None]]


@dataclass
class StageProcess:
    """One stage as a child process (`grace <name> ...`), with its log file."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    expected_exit: bool = False
    env: dict[str, str] = field(default_factory=dict)

    @property
    def beat_path(self) -> Path:
        """Touched by the stage on each heartbeat (grace.bus.STAGE_BEAT_ENV)."""
        return self.log_path.with_suffix(".beat")

    def beat_age(self) -> float | None:
        """Seconds since the stage last touched its beat file; None before its first beat."""
        try:
            return max(0.0, time.time() - self.beat_path.stat().st_mtime)
        except OSError:
            return None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.beat_path.unlink()  # a beat of the previous run is no sign of this one
        lock_fd = runlock.inherited_fd()
        # the child keeps its own descriptor of the log; ours closes once it is started
        with open(self.log_path, "ab") as out:
            # SIGTERM when `grace up` dies, however it dies: the stage stops cleanly (the
            # actuator stops its kernels); the stage's parent watch is the fallback
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=parentdeath.child_env({**os.environ, **self.env,
                                           STAGE_BEAT_ENV: str(self.beat_path)}),
                start_new_session=True,
                preexec_fn=parentdeath.preexec(signal.SIGTERM),  # noqa: PLW1509 - prctl runs between fork and exec
                pass_fds=() if lock_fd is None else (lock_fd,))
        self.started_at = time.monotonic()
        self.expected_exit = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exited(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        self.expected_exit = True
        if self.proc is None or self.proc.poll() is not None:
            return self.exited()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("stage %s did not stop within %.0fs: killing it", self.name, timeout)
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def last_error(self, limit: int = 300) -> str:
        """The last non-empty line of the stage's log (the exception, for a crash)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        line = next((x.strip() for x in reversed(lines) if x.strip()), "")
        return line[:limit]


class StageCrashLoop(GraceError):
    """A stage kept crashing: `grace up` stops rather than restart it for ever."""


def stage_argv(stage: str, config_path: str | None, nats_url: str, data_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "grace.app", stage, "--nats", nats_url, "--data-dir", str(data_dir)]
    if config_path:
        argv += ["-c", config_path]
    return argv


async def stop_stages(stages: list[StageProcess]) -> list[tuple[str, int | None]]:
    """Stop the started stages in reverse start order; (name, exit code) of each."""
    return [(st.name, await asyncio.to_thread(st.stop))
            for st in reversed([s for s in stages if s.pid is not None])]


class Watchdog:
    """Restarts crashed or silent stages with backoff and records it in the log."""

    def __init__(self, bus: Bus, stages: list[StageProcess], publish: Publish,
                 heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S) -> None:
        self.bus, self.stages, self.publish = bus, {s.name: s for s in stages}, publish
        self.heartbeat_timeout = heartbeat_timeout
        self.last_beat: dict[str, float] = {}
        self._due: dict[str, float] = {}  # stage -> when to restart it
        self._gap_reported: set[str] = set()
        self._restarted_at: dict[str, list[float]] = {}  # stage -> restart times in the window
        self.failure: StageCrashLoop | None = None  # set (and run ends) when a stage crash-loops
        # heartbeats cannot arrive while our own NATS connection is down: silence is judged only
        # from the time the link was last seen down (a host cut off is not a silent stage)
        self.link_down_at = 0.0
        self._link_silence: set[str] = set()  # stages heard only locally (their warning is out)

    def _on_heartbeat(self, subject: bytes, _reply: bytes, data: bytes, _headers: bytes | None) -> None:
        try:
            hb = msgspec.json.decode(data, type=events.Heartbeat)
        except msgspec.DecodeError:
            return
        if hb.kind == "stage" and hb.name in self.stages:
            self.last_beat[hb.name] = time.monotonic()
            self._gap_reported.discard(hb.name)
            self._link_silence.discard(hb.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set or a stage crash-loops (then `failure` says which)."""
        await self.bus.subscribe_raw(topology.heartbeat_filter(self.bus.host), self._on_heartbeat)
        await self._record(events.WatchdogStarted(name="stage-watchdog", tier=3, interval_s=0.5))
        while not stop.is_set() and self.failure is None:
            await self._check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        await self._record(events.WatchdogStopped(name="stage-watchdog", tier=3))

    async def _record(self, payload: events.Payload) -> None:
        """Publish to the log; with NATS out of reach the watchdog goes on (its log says what)."""
        try:
            await self.publish(payload)
        except (GraceError, nats.errors.Error, OSError) as exc:
            log.error("could not record %s in the log (NATS out of reach: %s); the stage watchdog "
                      "goes on", payload.TYPE, exc)

    async def _check(self) -> None:
        now = time.monotonic()
        if not self.bus.nc.is_connected:
            self.link_down_at = now
        for name, st in self.stages.items():
            if st.expected_exit or st.proc is None:  # stopped on purpose, or not started yet
                continue
            code = st.exited()
            if code is None:
                await self._check_heartbeat(name, st, now)
                continue
            if name not in self._due:
                recent = [t for t in self._restarted_at.get(name, []) if now - t <= CRASH_LOOP_WINDOW_S]
                self._restarted_at[name] = recent
                if len(recent) >= CRASH_LOOP_RESTARTS:
                    self.failure = StageCrashLoop(
                        f"stage {name} crashed {len(recent) + 1} times within "
                        f"{CRASH_LOOP_WINDOW_S:.0f}s (exit code {code}); its last error: "
                        f"{st.last_error() or '(empty log)'}. See {st.log_path}, fix the cause, "
                        "and run `grace up` again")
                    log.error("%s", self.failure)
                    return
                backoff = min(2.0 ** st.restarts * 0.5, MAX_BACKOFF_S)
                if now - st.started_at > 60:
                    backoff = 0.5  # it ran a good while: restart quickly
                log.error("stage %s exited with code %s; restarting in %.1fs (see %s)",
                          name, code, backoff, st.log_path)
                self._due[name] = now + backoff
            elif now >= self._due[name]:
                del self._due[name]
                st.restarts += 1
                last_error = st.last_error()
                st.start()
                self.last_beat.pop(name, None)
                self._restarted_at.setdefault(name, []).append(now)
                await self._record(events.StageRestarted(
                    stage=name, exit_code=code, attempt=st.restarts, last_error=last_error,
                    recent=len(self._restarted_at[name])))

    async def _check_heartbeat(self, name: str, st: StageProcess, now: float) -> None:
        seen = max(self.last_beat.get(name, st.started_at), st.started_at, self.link_down_at)
        if now - seen <= self.heartbeat_timeout or name in self._gap_reported:
            return
        # silent over NATS but beating locally: the stage's own link is down or on another
        # node that is cut off (a fleet host); killing it would not bring the link back
        age = st.beat_age()
        if age is not None and age <= self.heartbeat_timeout:
            if name not in self._link_silence:
                self._link_silence.add(name)
                log.warning("stage %s: no heartbeat through NATS for %.0fs, but it beats locally "
                            "(%.0fs ago): its link to NATS is down, not the stage; not restarting "
                            "it", name, now - seen, age)
            return
        self._link_silence.discard(name)
        self._gap_reported.add(name)
        last = None
        if name in self.last_beat:
            last = events.now().fromtimestamp(time.time() - (now - self.last_beat[name]), events.now().tzinfo)
        await self._record(events.StageHeartbeatGap(stage=name, last_seen=last,
                                                    timeout_s=self.heartbeat_timeout))
        log.error("stage %s sent no heartbeat for %.0fs: killing it so it restarts", name,
                  self.heartbeat_timeout)
        st.kill()
