"""Grace's own watchdog over real child processes: a crash is restarted, a silent stage is a
stage_heartbeat_gap in the log and is killed so it restarts."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from grace import bus as bus_mod
from grace import events
from grace.embedded import EmbeddedServer
from grace.logwatch import LogWatcher, last_seq
from grace.stages import StageProcess, Watchdog
from tests.support import wait_for


def stage(name: str, code: str, tmp_path: Path) -> StageProcess:
    return StageProcess(name, [sys.executable, "-c", code], tmp_path / f"{name}.log")


async def run_watchdog(b: bus_mod.Bus, stages: list[StageProcess], timeout_s: float
                       ) -> tuple[Watchdog, asyncio.Event, asyncio.Task[None]]:
    async def publish(p: events.Payload) -> None:
        await b.publish(b.event(p))

    stop = asyncio.Event()
    dog = Watchdog(b, stages, publish, heartbeat_timeout=timeout_s)
    for s in stages:
        s.start()
    return dog, stop, asyncio.create_task(dog.run(stop))


async def test_a_crashed_stage_is_restarted_and_recorded(nats_url: str, tmp_path: Path) -> None:
    host = "wd" + uuid.uuid4().hex[:8]
    b = await bus_mod.connect_and_ensure(nats_url, host=host, source=f"grace/{host}/up")
    crasher = stage("process", "import sys; sys.exit(3)", tmp_path)
    w = LogWatcher(b, await last_seq(b) + 1, f"grace.events.stage.*.{host}").start()
    _dog, stop, task = await run_watchdog(b, [crasher], timeout_s=30)
    try:
        await wait_for(lambda: any(isinstance(e.data, events.StageRestarted) for e in w.seen), 15)
        restarted = next(e.data for e in w.seen if isinstance(e.data, events.StageRestarted))
        assert restarted.stage == "process" and restarted.exit_code == 3
        assert crasher.restarts >= 1
    finally:
        stop.set()
        await task
        crasher.stop()
        await w.close()
        await b.close()


async def test_a_silent_stage_is_a_heartbeat_gap_and_is_restarted(nats_url: str, tmp_path: Path) -> None:
    host = "wd" + uuid.uuid4().hex[:8]
    b = await bus_mod.connect_and_ensure(nats_url, host=host, source=f"grace/{host}/up")
    hung = stage("act", "import time; time.sleep(60)", tmp_path)  # alive, never heartbeats
    w = LogWatcher(b, await last_seq(b) + 1, f"grace.events.stage.*.{host}").start()
    _dog, stop, task = await run_watchdog(b, [hung], timeout_s=1.0)
    first_pid = hung.pid
    try:
        await wait_for(lambda: any(isinstance(e.data, events.StageRestarted) for e in w.seen), 20)
        gap = next(e.data for e in w.seen if isinstance(e.data, events.StageHeartbeatGap))
        assert gap.stage == "act" and gap.timeout_s == 1.0
        assert hung.pid != first_pid
    finally:
        stop.set()
        await task
        hung.stop(timeout=2)
        await w.close()
        await b.close()


async def test_a_crash_looping_stage_stops_the_watchdog_with_its_last_error(
        nats_url: str, tmp_path: Path) -> None:
    """Each restart is a stage_restarted with the log's last line; past the limit the watchdog
    gives up (no restart for ever) and says which stage and why."""
    from grace.stages import CRASH_LOOP_RESTARTS

    host = "wd" + uuid.uuid4().hex[:8]
    b = await bus_mod.connect_and_ensure(nats_url, host=host, source=f"grace/{host}/up")
    crasher = stage("process", "import sys; print('boom: playbooks/bad.yaml:3'); sys.exit(3)", tmp_path)
    w = LogWatcher(b, await last_seq(b) + 1, f"grace.events.stage.*.{host}").start()
    dog, stop, task = await run_watchdog(b, [crasher], timeout_s=30)
    try:
        await asyncio.wait_for(task, 60)  # ends by itself: `stop` is never set
        await wait_for(lambda: len([e for e in w.seen if isinstance(e.data, events.StageRestarted)])
                       == CRASH_LOOP_RESTARTS, 10)
        restarts = [e.data for e in w.seen if isinstance(e.data, events.StageRestarted)]
        assert [r.attempt for r in restarts] == list(range(1, CRASH_LOOP_RESTARTS + 1))
        assert all(r.last_error == "boom: playbooks/bad.yaml:3" and r.exit_code == 3 for r in restarts)
        assert dog.failure is not None and "stage process crashed" in str(dog.failure)
        assert "boom: playbooks/bad.yaml:3" in str(dog.failure)
        assert crasher.exited() == 3  # not restarted again
    finally:
        stop.set()
        crasher.stop()
        await w.close()
        await b.close()


async def test_a_stage_is_not_judged_silent_while_the_watchdogs_own_link_to_nats_is_down(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    b = await bus_mod.connect_and_ensure(fresh_server.url, host="wd" + uuid.uuid4().hex[:8],
                                         source="grace/wd/up")
    quiet = stage("produce", "import time; time.sleep(120)", tmp_path)  # sends no heartbeat
    published: list[events.Payload] = []

    async def publish(p: events.Payload) -> None:
        published.append(p)
        await b.publish(b.event(p), timeout=2)

    dog = Watchdog(b, [quiet], publish)  # the shipped heartbeat timeout
    quiet.start()
    try:
        quiet.started_at -= 2 * dog.heartbeat_timeout  # silent for longer than the timeout
        fresh_server.kill()  # the host is cut off: no heartbeat could reach the watchdog
        await wait_for(lambda: not b.nc.is_connected, timeout=10)
        await dog._check()
        assert quiet.exited() is None and not published
        fresh_server.restart()
        await wait_for(lambda: b.nc.is_connected, timeout=15)
        await dog._check()  # back: the stage gets a heartbeat timeout from now to be heard
        assert quiet.exited() is None and not published
        dog.link_down_at -= 2 * dog.heartbeat_timeout  # still silent a timeout after the link is back
        await dog._check()
        assert quiet.exited() is not None
        assert [type(p) for p in published] == [events.StageHeartbeatGap]
    finally:
        quiet.kill()
        await b.close()


async def test_a_stage_that_beats_locally_but_not_through_nats_is_not_killed(
        nats_url: str, tmp_path: Path) -> None:
    """A fleet host: the stage's NATS node is cut off while the watchdog's is not. The stage's
    loop still runs (its beat file is fresh), so it is not killed; once its loop hangs, it is."""
    import os

    from grace.bus import STAGE_BEAT_ENV

    b = await bus_mod.connect_and_ensure(nats_url, host="wd" + uuid.uuid4().hex[:8],
                                         source="grace/wd/up")
    hung_mark = tmp_path / "hung"
    code = (f"import os, time, pathlib\nbeat = pathlib.Path(os.environ[{STAGE_BEAT_ENV!r}])\n"
            f"while not pathlib.Path({str(hung_mark)!r}).exists():\n    beat.touch(); time.sleep(0.1)\n"
            f"pathlib.Path({str(hung_mark)!r} + '.seen').touch(); time.sleep(120)\n")
    cut_off = stage("act", code, tmp_path)  # beats locally, never through NATS
    published: list[events.Payload] = []

    async def publish(p: events.Payload) -> None:
        published.append(p)
        await b.publish(b.event(p), timeout=2)

    dog = Watchdog(b, [cut_off], publish)  # the shipped heartbeat timeout
    cut_off.start()
    try:
        await wait_for(lambda: cut_off.beat_age() is not None, timeout=30)
        cut_off.started_at -= 2 * dog.heartbeat_timeout  # silent over NATS for longer than the timeout
        await dog._check()
        assert cut_off.exited() is None and not published
        hung_mark.touch()  # its loop hangs: no more beats, the file ages past the timeout
        await wait_for((tmp_path / "hung.seen").exists, timeout=30)
        past = cut_off.beat_path.stat().st_mtime - 2 * dog.heartbeat_timeout
        os.utime(cut_off.beat_path, (past, past))
        await dog._check()
        assert cut_off.exited() is not None
        assert [type(p) for p in published] == [events.StageHeartbeatGap]
    finally:
        cut_off.kill()
        await b.close()
