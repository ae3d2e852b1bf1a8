"""Operators' holds stop the supervisor's own restarts: real NATS, real processes.

Holds are published as the operator CLI does (hold_added / hold_released events in the
log); the actuator's HoldsFeed reads them and the supervisor honours them. Effects are
counted in the world: pids, and processes found by their environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import psutil
import pytest
import pytest_asyncio

from actuators.holds_feed import HoldsFeed
from actuators.supervisor import Supervisor
from grace import bus as bus_mod
from grace import events
from grace.bus import Bus
from grace.config import Config
from grace.embedded import EmbeddedServer
from tests.actuators.helpers import kernel, make_config, unique_host
from tests.support import wait_for

P = TypeVar("P", bound=events.Payload)
HOLD_S = 1800.0  # `--for 30m`: longer than any test


def running(root: Path, name: str) -> dict[int, int]:
    """{instance: pid} of this test's live `name` processes, found by their environment."""
    marker = str(root / "kernel.py")
    out: dict[int, int] = {}
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if marker not in (p.info["cmdline"] or []) or p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            env = p.environ()
            if env.get("GRACE_KERNEL") == name:
                out[int(env.get("GRACE_INSTANCE", "-1"))] = p.pid
        except (psutil.Error, OSError, ValueError):
            continue
    return out


async def add_hold(b: Bus, host: str, target: str, for_s: float = HOLD_S) -> str:
    hold_id = f"h-{uuid.uuid4().hex[:8]}"
    await b.publish(b.event(events.HoldAdded(
        hold_id=hold_id, target=target, until=events.now() + timedelta(seconds=for_s),
        for_s=for_s, reason="migrating", by="alice", via="cli"), host=host))
    return hold_id


async def release(b: Bus, host: str, hold_id: str, target: str) -> None:
    await b.publish(b.event(events.HoldReleased(hold_id=hold_id, target=target, by="alice",
                                                via="cli"), host=host))


async def stays_dead(root: Path, name: str, index: int, seconds: float) -> None:
    """No process of instance `index` appears for `seconds` (several restart backoffs)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert index not in running(root, name), f"{name}[{index}] was started while held"
        await asyncio.sleep(0.1)


@dataclass
class Actuator:
    """The actuator's hold-honouring part: a HoldsFeed and a Supervisor (shipped timings)."""

    cfg: Config
    bus: Bus
    feed: HoldsFeed
    supervisor: Supervisor
    seen: list[events.Payload]

    def of(self, cls: type[P]) -> list[P]:
        return [e for e in self.seen if isinstance(e, cls)]


async def start_actuator(cfg: Config, b: Bus, state_file: Path | None = None,
                         load_timeout: float = 10.0) -> Actuator:
    feed = HoldsFeed(b, cfg.host, float(cfg.holds.max))
    await feed.start(load_timeout)
    seen: list[events.Payload] = []
    sup = Supervisor(cfg, seen.append, state_file=state_file, held_by=feed.covering)
    await sup.start()
    return Actuator(cfg, b, feed, sup, seen)


async def stop_actuator(a: Actuator) -> None:
    await a.supervisor.stop()
    await a.feed.close()


@pytest_asyncio.fixture(loop_scope="session")
async def host_bus(nats_url: str) -> AsyncIterator[tuple[str, Bus]]:
    host = unique_host("hold")
    b = await bus_mod.connect_and_ensure(nats_url, host=host, source="grace/test/holds")
    yield host, b
    await b.close()


def two_kernels(root: Path, host: str) -> Config:
    return make_config(root, host=host, kernels=[kernel("api", root, critical=True),
                                                 kernel("worker", root, pool={"min": 2, "max": 4})])


async def test_a_held_kernel_that_exits_stays_stopped_until_the_hold_is_released(
        tmp_path: Path, host_bus: tuple[str, Bus], caplog: pytest.LogCaptureFixture) -> None:
    host, b = host_bus
    a = await start_actuator(two_kernels(tmp_path, host), b)
    try:
        await wait_for(lambda: 0 in running(tmp_path, "api"), timeout=10)
        hold = await add_hold(b, host, "kernel:api")
        await wait_for(lambda: a.feed.covering("api", 0) is not None, timeout=10)
        (old,) = a.supervisor.pids("api")
        with caplog.at_level(logging.WARNING, logger="actuators.supervisor"):
            os.kill(old, signal.SIGKILL)
            await wait_for(lambda: a.of(events.KernelHeld), timeout=10)
            await stays_dead(tmp_path, "api", 0, 4.0)  # the backoff alone restarts within 1 s
        assert a.supervisor.pids("api") == [] and a.supervisor.held("api") == [0]
        exited = a.of(events.KernelExited)
        assert [e.pid for e in exited] == [old] and not exited[0].expected
        (held,) = a.of(events.KernelHeld)
        assert (held.hold_id, held.target, held.by, held.pid) == (hold, "kernel:api", "alice",
                                                                  old)
        said = [r.getMessage() for r in caplog.records if "covers it" in r.getMessage()]
        assert len(said) == 1, said  # said once, not on every watch cycle
        assert said[0].startswith(f"kernel api[0] exited (pid {old}, code -9); hold {hold} "
                                  "(kernel:api, by alice, until ")
        assert said[0].endswith("covers it: not restarting until the hold ends")
        assert not a.of(events.KernelRestarted)

        await release(b, host, hold, "kernel:api")
        new = (await wait_for(lambda: running(tmp_path, "api"), timeout=10))[0]
        assert new != old and a.supervisor.pids("api") == [new]
        await wait_for(lambda: a.of(events.KernelRestarted), timeout=5)
        assert [e.pid for e in a.of(events.KernelRestarted)] == [new]
    finally:
        await stop_actuator(a)
    assert running(tmp_path, "api") == {}


async def test_a_hold_ends_at_its_until_without_a_release_event(
        tmp_path: Path, host_bus: tuple[str, Bus]) -> None:
    host, b = host_bus
    a = await start_actuator(two_kernels(tmp_path, host), b)
    try:
        await wait_for(lambda: 1 in running(tmp_path, "worker"), timeout=10)
        await add_hold(b, host, "kernel:worker/1", for_s=5.0)
        await wait_for(lambda: a.feed.covering("worker", 1) is not None, timeout=5)
        until = a.feed.covering("worker", 1).until  # type: ignore[union-attr]
        old = running(tmp_path, "worker")[1]
        os.kill(old, signal.SIGKILL)
        await wait_for(lambda: a.of(events.KernelHeld), timeout=5)
        await stays_dead(tmp_path, "worker", 1, max(0.0, (until - events.now()).total_seconds() - 0.5))
        new = (await wait_for(lambda: running(tmp_path, "worker").get(1), timeout=10))
        assert new != old and events.now() >= until
        assert a.supervisor.held("worker") == []
    finally:
        await stop_actuator(a)


async def test_holds_on_other_kernels_instances_or_hosts_do_not_stop_a_restart(
        tmp_path: Path, host_bus: tuple[str, Bus]) -> None:
    host, b = host_bus
    a = await start_actuator(two_kernels(tmp_path, host), b)
    try:
        await wait_for(lambda: len(running(tmp_path, "worker")) == 2 and running(tmp_path, "api"),
                       timeout=10)
        await add_hold(b, host, "kernel:worker/1")  # another instance
        await add_hold(b, host, "kernel:reporter")  # another kernel
        await add_hold(b, host, "host:some-other-host")  # another host
        await add_hold(b, "some-other-host", "kernel:api")  # a kernel hold added for another host
        # the feed reads the log live in pulls of a few seconds: give it a few pulls
        await wait_for(lambda: a.feed.covering("worker", 1) is not None, timeout=30)
        await wait_for(lambda: len(a.feed.book.holds) == 4, timeout=30)
        for name, index in (("worker", 0), ("api", 0)):
            old = running(tmp_path, name)[index]
            os.kill(old, signal.SIGKILL)
            await wait_for(lambda name=name, index=index, old=old:
                           running(tmp_path, name).get(index) not in (None, old), timeout=10)
        assert not a.of(events.KernelHeld)

        # a hold on this host covers every kernel on it
        await add_hold(b, host, f"host:{host}")
        await wait_for(lambda: a.feed.covering("api", 0) is not None, timeout=10)
        old = running(tmp_path, "api")[0]
        os.kill(old, signal.SIGKILL)
        await wait_for(lambda: a.supervisor.held("api") == [0], timeout=10)
        await stays_dead(tmp_path, "api", 0, 3.0)
    finally:
        await stop_actuator(a)


async def test_intentional_stops_and_restarts_complete_under_a_hold(
        tmp_path: Path, host_bus: tuple[str, Bus]) -> None:
    host, b = host_bus
    a = await start_actuator(two_kernels(tmp_path, host), b)
    try:
        await wait_for(lambda: len(running(tmp_path, "worker")) == 2 and running(tmp_path, "api"),
                       timeout=10)
        await add_hold(b, host, "kernel:worker")
        await add_hold(b, host, "kernel:api")
        await wait_for(lambda: a.feed.covering("api", 0) and a.feed.covering("worker", 1), timeout=10)
        assert await a.supervisor.scale("worker", 3) == (2, 3)  # scaling is Grace's own intent
        await wait_for(lambda: sorted(running(tmp_path, "worker")) == [0, 1, 2], timeout=10)
        assert await a.supervisor.scale("worker", 2) == (3, 2)  # scale-down completes
        await wait_for(lambda: sorted(running(tmp_path, "worker")) == [0, 1], timeout=10)
        old = running(tmp_path, "api")[0]
        new = (await a.supervisor.restart("api", 0)).pid  # a restart on command completes
        assert new != old and running(tmp_path, "api") == {0: new}
        await asyncio.sleep(1.0)  # a watch cycle or five: nothing is left held
        assert not a.of(events.KernelHeld) and a.supervisor.held("worker") == []
        assert running(tmp_path, "api") == {0: new}
    finally:
        await stop_actuator(a)


async def test_a_hold_added_before_the_actuator_starts_keeps_the_kernel_stopped(
        tmp_path: Path, host_bus: tuple[str, Bus]) -> None:
    """A restart of the actuator (or of all of Grace): the hold is read back from the log."""
    host, b = host_bus
    cfg = two_kernels(tmp_path, host)
    state = tmp_path / "kernels.json"
    first = await start_actuator(cfg, b, state)
    await wait_for(lambda: running(tmp_path, "api"), timeout=10)
    hold = await add_hold(b, host, "kernel:api")
    await wait_for(lambda: first.feed.covering("api", 0) is not None, timeout=10)
    os.kill(first.supervisor.pids("api")[0], signal.SIGKILL)
    await wait_for(lambda: first.supervisor.held("api") == [0], timeout=10)
    await stop_actuator(first)  # all of Grace stops: every kernel with it
    assert running(tmp_path, "api") == {} and running(tmp_path, "worker") == {}

    second = await start_actuator(cfg, b, state)
    try:
        await wait_for(lambda: len(running(tmp_path, "worker")) == 2, timeout=10)
        await stays_dead(tmp_path, "api", 0, 3.0)
        assert not second.of(events.KernelExited)  # its exit was recorded by the first run
        (held,) = second.of(events.KernelHeld)
        assert (held.hold_id, held.pid) == (hold, 0)
        assert not [e for e in second.of(events.KernelStarted) if e.kernel == "api"]

        await release(b, host, hold, "kernel:api")
        pid = (await wait_for(lambda: running(tmp_path, "api"), timeout=10))[0]
        await wait_for(lambda: [e for e in second.of(events.KernelStarted)
                                if e.kernel == "api" and e.pid == pid], timeout=5)
    finally:
        await stop_actuator(second)


async def test_a_killed_actuator_held_instance_stays_held_after_adoption(
        tmp_path: Path, host_bus: tuple[str, Bus]) -> None:
    """The actuator alone dies (its kernels keep running); the next one adopts them and
    still leaves the held instance stopped."""
    host, b = host_bus
    cfg = two_kernels(tmp_path, host)
    state = tmp_path / "kernels.json"
    first = await start_actuator(cfg, b, state)
    await wait_for(lambda: len(running(tmp_path, "worker")) == 2, timeout=10)
    hold = await add_hold(b, host, "kernel:worker/0")
    await wait_for(lambda: first.feed.covering("worker", 0) is not None, timeout=10)
    os.kill(running(tmp_path, "worker")[0], signal.SIGKILL)
    await wait_for(lambda: first.supervisor.held("worker") == [0], timeout=10)
    assert first.supervisor._task is not None
    first.supervisor._task.cancel()  # the actuator "dies": its kernels keep running
    await first.feed.close()
    sibling = running(tmp_path, "worker")[1]

    second = await start_actuator(cfg, b, state)
    try:
        assert second.supervisor.pids("worker") == [sibling]  # adopted, not started again
        await stays_dead(tmp_path, "worker", 0, 3.0)
        await release(b, host, hold, "kernel:worker/0")
        await wait_for(lambda: 0 in running(tmp_path, "worker"), timeout=10)
        assert running(tmp_path, "worker")[1] == sibling
    finally:
        await stop_actuator(second)


async def test_without_the_log_the_actuator_says_so_and_keeps_restarting(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """NATS down: known holds still end at their time, every other kernel is restarted."""
    server = EmbeddedServer(tmp_path / "nats")
    url = server.start()
    host = unique_host("hold")
    b = await bus_mod.connect_and_ensure(url, host=host, source="grace/test/holds")
    a: Actuator | None = None
    try:
        cfg = two_kernels(tmp_path / "sys", host)
        a = await start_actuator(cfg, b)
        await add_hold(b, host, "kernel:api", for_s=8.0)
        await wait_for(lambda: a.feed.covering("api", 0) is not None, timeout=5)
        until = a.feed.covering("api", 0).until  # type: ignore[union-attr]
        with caplog.at_level(logging.WARNING):
            server.stop()
            await wait_for(lambda: any("lost the log" in r.getMessage() for r in caplog.records),
                           timeout=15)
        root = tmp_path / "sys"
        old_worker = running(root, "worker")[0]
        os.kill(old_worker, signal.SIGKILL)  # no hold known for it: restarted as usual
        await wait_for(lambda: running(root, "worker").get(0) not in (None, old_worker), timeout=10)
        os.kill(running(root, "api")[0], signal.SIGKILL)  # the known hold still applies ...
        await wait_for(lambda: a.supervisor.held("api") == [0], timeout=10)
        await stays_dead(root, "api", 0, max(0.0, (until - events.now()).total_seconds() - 0.5))
        await wait_for(lambda: running(root, "api"), timeout=10)  # ... until its own end
        assert events.now() >= until
    finally:
        if a is not None:
            await stop_actuator(a)
        await b.close()
        server.stop()


async def test_a_feed_that_cannot_read_the_log_at_start_says_so_and_starts_kernels(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = EmbeddedServer(tmp_path / "nats")
    url = server.start()
    host = unique_host("hold")
    b = await bus_mod.connect_and_ensure(url, host=host, source="grace/test/holds")
    server.stop()
    a: Actuator | None = None
    try:
        with caplog.at_level(logging.ERROR, logger="actuators.holds_feed"):
            a = await start_actuator(two_kernels(tmp_path, host), b, load_timeout=2.0)
        assert any("could not read the holds" in r.getMessage() and "as if none were held"
                   in r.getMessage() for r in caplog.records)
        await wait_for(lambda: running(tmp_path, "api") and len(running(tmp_path, "worker")) == 2,
                       timeout=10)
    finally:
        if a is not None:
            await stop_actuator(a)
        await b.close()



async def test_a_crash_looping_kernel_stops_being_restarted_once_held(
        tmp_path: Path, host_bus: tuple[str, Bus]) -> None:
    """A hold added while the kernel is in its restart backoff takes effect at the next
    restart: no more processes until the hold ends."""
    host, b = host_bus
    script = "import sys, time; time.sleep(0.3); sys.exit(3)"
    flaky = {"name": "flaky", "command": [sys.executable, "-c", script], "stop_timeout": "2s"}
    cfg = make_config(tmp_path, host=host, kernels=[flaky])
    a = await start_actuator(cfg, b)
    try:
        await wait_for(lambda: len(a.of(events.KernelRestarted)) >= 2, timeout=15)  # looping
        hold = await add_hold(b, host, "kernel:flaky/0")
        await wait_for(lambda: a.supervisor.held("flaky") == [0], timeout=15)
        spawned = len(a.of(events.KernelRestarted))
        await asyncio.sleep(4.0)  # several backoffs of a loop that is no longer restarted
        assert len(a.of(events.KernelRestarted)) == spawned and a.supervisor.pids("flaky") == []
        assert [e.hold_id for e in a.of(events.KernelHeld)] == [hold]
        await release(b, host, hold, "kernel:flaky/0")
        await wait_for(lambda: len(a.of(events.KernelRestarted)) > spawned, timeout=10)
    finally:
        await stop_actuator(a)
