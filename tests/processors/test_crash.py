"""SIGKILL the real `grace process` mid-stream: restarted, it emits the same commands as an
uninterrupted run, none twice, and its budget still holds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from grace import bus as bus_mod
from grace import events, topology
from grace.embedded import EmbeddedServer
from tests.processors.support import RESTART_BUDGET, at, gap, stored, write
from tests.support import wait_for

pytestmark = pytest.mark.slow

HOST = "crash-host"
KERNELS = 5
NOISE = 30  # ignored events per heartbeat gap


def workload() -> list[events.Event]:
    """Heartbeat gaps for 5 kernels every 20s over 50 minutes, amid noise the playbook ignores
    (enough of it that the processor is still busy when it is killed)."""
    out = []
    noise = events.CpuSaturation(scope="system", percent=10.0, threshold=90.0, samples=3)
    for i in range(150 * KERNELS):
        t = (i // KERNELS) * 20.0
        out.append(events.make_event(gap(f"k{i % KERNELS}"), host=HOST, source="grace/test",
                                     id=events.derive_id("crash-test", i), time=at(t)))
        out.extend(events.make_event(noise, host=HOST, source="grace/test",
                                     id=events.derive_id("crash-noise", i, j), time=at(t))
                   for j in range(NOISE))
    return out


def start_processor(cfg: Path, url: str) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "grace"
    return subprocess.Popen([str(exe), "process", "-c", str(cfg), "--nats", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "GRACE_LOG_LEVEL": "WARNING"})


async def settled(b: bus_mod.Bus, last_trigger_seq: int) -> bool:
    """The processor acked every trigger and nothing is outstanding."""
    try:
        info = await b.js.consumer_info(topology.EVENTS, topology.PROCESSOR_CONSUMER)
    except Exception:  # noqa: BLE001 - not created yet
        return False
    return (info.ack_floor.stream_seq >= last_trigger_seq and info.num_pending == 0
            and info.num_ack_pending == 0)


async def run_case(tmp: Path, crash: bool) -> list[events.Event]:
    server = EmbeddedServer(tmp / ("crash" if crash else "clean") / "nats")
    url = server.start()
    cfg = write(tmp, "grace.yaml", f"host: processor-host\ndata_dir: {tmp / 'data'}\n"
                                   f"playbooks: [{tmp / 'restart.yaml'}]\n")
    write(tmp, "restart.yaml", RESTART_BUDGET)
    b = await bus_mod.connect_and_ensure(url, host="test", source="grace/test/crash")
    evs = workload()
    proc = None
    try:
        if not crash:
            beats: list[bytes] = []
            await b.nc.subscribe_raw(topology.heartbeat_subject("processor-host", "process"),
                                     lambda _s, _r, data, _h: beats.append(data))
            acks = await b.publish_many(evs)
            proc = start_processor(cfg, url)
            await wait_for(lambda: beats, timeout=30)  # the stage says it is alive
        else:
            half = len(evs) // 2
            acks = await b.publish_many(evs[:half])
            proc = start_processor(cfg, url)
            await wait_for(lambda: _acked_some(b), timeout=30, interval=0.002)
            proc.send_signal(signal.SIGKILL)  # while it works through the first half
            proc.wait()
            info = await b.js.consumer_info(topology.EVENTS, topology.PROCESSOR_CONSUMER)
            assert info.ack_floor.stream_seq < acks[-1].seq, "the kill came too late to test"
            acks += await b.publish_many(evs[half:])
            proc = start_processor(cfg, url)
        await wait_for(lambda: settled(b, acks[-1].seq), timeout=60)
        await asyncio.sleep(0.3)  # a duplicate, if any, would land now
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        return await stored(b, topology.COMMANDS, topology.command_filter(HOST))
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        await b.close()
        server.stop()


async def _acked_some(b: bus_mod.Bus) -> bool:
    try:
        info = await b.js.consumer_info(topology.EVENTS, topology.PROCESSOR_CONSUMER)
    except Exception:  # noqa: BLE001 - not created yet
        return False
    return info.ack_floor.stream_seq > 0


async def test_sigkill_mid_stream_loses_no_state_and_duplicates_no_command(tmp_path: Path) -> None:
    clean = await run_case(tmp_path / "a", crash=False)
    crashed = await run_case(tmp_path / "b", crash=True)
    assert len(clean) == KERNELS * 4  # 3 restarts + 1 escalation per kernel
    assert sorted(c.id for c in crashed) == sorted(c.id for c in clean)
    assert len({c.id for c in crashed}) == len(crashed)  # none stored twice
    restarts = Counter(c.data.kernel for c in crashed if c.type == "restart_kernel")
    assert restarts == {f"k{i}": 3 for i in range(KERNELS)}  # budget of 3 per hour held
