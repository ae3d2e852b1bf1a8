"""What the fleet tests did to the world, and the audit of the log against it.

A fault overwrites one protected file of one host (its model, or one of its two configs); it is
healed when the file's sha256 is the original again and that host's actuator reported the
restore. The audit reads the whole log: every event id once, every issued command with exactly
one result, and per damaged file exactly as many restores as faults.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats.errors
import psutil

from bench.fleet_net import Fleet, FleetError, Host
from grace import bus as bus_mod
from grace import kernelstate, topology
from grace.errors import BusError
from tests.reliability.pipeline import data_of, read_log
from tests.support import wait_for

TARGETS = ("models/model.pkl", "config/app.yaml", "config/features.json")
COOLDOWN_S = 61.0  # the shipped playbooks' cooldown per file (1m), plus a margin
RESULTS = ("command_succeeded", "command_failed", "command_skipped")
HEAL_TIMEOUT_S = 180.0
T = TypeVar("T")


async def patient(read: Callable[[], Awaitable[T]], what: str, timeout: float = 90.0) -> T:
    """A read of the cluster from the test's own client, retried while a leader is elected or
    the client moves to another node (`nats: timeout` on a loaded machine is no finding)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await read()
        except (TimeoutError, nats.errors.Error, BusError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: the cluster did not answer within {timeout:.0f}s "
                                     f"(last: {exc!r})") from exc
            await asyncio.sleep(1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Fault:
    host: Host
    path: Path
    original: str  # sha256 before the fault


@dataclass
class Ledger:
    fleet: Fleet
    faults: list[Fault] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)  # (command id, host) we published
    survived: int = 0  # network partitions and node/processor losses the pipeline got through
    details: dict[str, list[str]] = field(default_factory=dict)  # the audit's findings by name
    _last: dict[Path, float] = field(default_factory=dict)

    async def corrupt(self, host: Host) -> Fault:
        """Overwrite the host's least recently damaged protected file (after the shipped cooldown)."""
        path = min((host.system / t for t in TARGETS), key=lambda p: self._last.get(p, 0.0))
        wait = self._last.get(path, -COOLDOWN_S) + COOLDOWN_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)  # a second fault inside the cooldown is suppressed by design
        fault = Fault(host, path, sha256(path))
        path.write_bytes(os.urandom(256) if path.suffix == ".pkl" else b"tampered: [at 3 a.m.\n")
        self._last[path] = time.monotonic()
        self.faults.append(fault)
        return fault

    def healed(self, fault: Fault) -> bool:
        try:
            return sha256(fault.path) == fault.original
        except OSError:
            return False

    async def wait_healed(self, *faults: Fault, timeout: float = HEAL_TIMEOUT_S) -> None:
        def done() -> bool:
            dead = self.fleet.dead()
            if dead:
                raise FleetError("a fleet process exited:\n" + "\n".join(dead))
            return all(self.healed(f) for f in faults)

        try:
            await wait_for(done, timeout=timeout, interval=0.2)
        except AssertionError as exc:
            left = [f"{f.host.name}:{f.path.name}" for f in faults if not self.healed(f)]
            raise AssertionError(f"not healed within {timeout:.0f}s: {left}; logs in "
                                 f"{self.fleet.root / 'logs'}") from exc

    async def audit(self, b: bus_mod.Bus) -> dict[str, int]:
        """Wait until every issued command has a result, then count losses and duplicates."""

        async def settled() -> list[Any] | None:
            log = await patient(lambda: read_log(b), "reading the log")
            issued = {data_of(e)["command_id"] for e in log if e.type == "command_issued"}
            issued |= {c for c, _ in self.commands}
            done = {data_of(e)["command_id"] for e in log if e.type in RESULTS}
            return log if issued <= done else None

        try:
            log = await wait_for(settled, timeout=HEAL_TIMEOUT_S, interval=1.0)
        except AssertionError:
            log = await patient(lambda: read_log(b), "reading the log")
        ids = Counter(e.id for e in log)
        issued = Counter(data_of(e)["command_id"] for e in log if e.type == "command_issued")
        results = Counter(data_of(e)["command_id"] for e in log if e.type in RESULTS)
        wanted = set(issued) | {c for c, _ in self.commands}
        restores: Counter[tuple[str, str]] = Counter()
        for e in log:
            if e.type == "command_succeeded":
                d = data_of(e)
                if d["action"] in ("restore_model_weights", "restore_from_snapshot"):
                    restores[(e.host, Path(str(d.get("target", ""))).name)] += 1
        per_file = Counter((f.host.name, f.path.name) for f in self.faults)
        started = {(e.host, data_of(e)["kernel"], data_of(e).get("instance", 0), data_of(e)["pid"])
                   for e in log if e.type in ("kernel_started", "kernel_restarted")}
        running = Counter((h, k, i) for h, k, i, _ in self.kernel_processes())
        dup_ids = sorted(i for i, n in ids.items() if n > 1)
        self.details = {  # what the counts below are made of, for a failure's message
            "duplicate_event_ids": [f"{i} x{ids[i]}" for i in dup_ids][:10],
            "duplicate_commands": [c for c, n in issued.items() if n > 1][:10],
            "commands_without_result": [c for c in wanted if results[c] == 0][:10],
            "duplicate_results": [c for c in wanted if results[c] > 1][:10],
            "restores": [f"{k}: {restores[k]} restore(s) for {n} fault(s)" for k, n in per_file.items()
                         if restores[k] != n],
            "kernel_instances_twice": [str(k) for k, n in running.items() if n > 1],
            "kernel_processes_not_in_log": [str(k) for k in sorted(set(self.kernel_processes()) - started)],
        }
        return {
            "events": len(log),
            "duplicate_event_ids": sum(n - 1 for n in ids.values() if n > 1),
            "duplicate_commands": sum(n - 1 for n in issued.values() if n > 1),
            "commands_without_result": sum(1 for c in wanted if results[c] == 0),
            "duplicate_results": sum(results[c] - 1 for c in wanted if results[c] > 1),
            "files_not_restored": sum(1 for f in self.faults if not self.healed(f)),
            "restores_missing": sum(max(0, n - restores[k]) for k, n in per_file.items()),
            "restores_extra": sum(max(0, restores[k] - n) for k, n in per_file.items()),
            # the world: one process per kernel instance, each started as the log says
            "kernel_instances_twice": sum(n - 1 for n in running.values() if n > 1),
            "kernel_processes_not_in_log": len(set(self.kernel_processes()) - started),
        }

    def kernel_processes(self) -> list[tuple[str, str, int, int]]:
        """(host, kernel, instance, pid) of every kernel process the fleet's agents started."""
        root = str(self.fleet.root)
        found = []
        for p in psutil.process_iter(["pid"]):
            try:
                env = p.environ()
            except (psutil.Error, OSError):
                continue
            if env.get("GRACE_KERNEL") and env.get(kernelstate.STATE_ENV, "").startswith(root):
                found.append((env.get("GRACE_HOST", ""), env["GRACE_KERNEL"],
                              int(env.get("GRACE_INSTANCE", "0")), p.pid))
        return found


async def stream_leader(b: bus_mod.Bus) -> str:
    """The server name (= host name) leading GRACE_EVENTS, read through the JetStream API."""
    info = await patient(lambda: b.js.stream_info(topology.EVENTS), "GRACE_EVENTS' info")
    assert info.cluster is not None and info.cluster.leader, "GRACE_EVENTS has no leader"
    return str(info.cluster.leader)
