"""Timer playbooks across processor partitions: one lease holder fires each slot, and a
partition takes over when the holder is SIGKILLed (the lease at its shipped TTL)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from nats.js.errors import KeyNotFoundError

from grace import events, topology
from grace.bus import Bus, connect_and_ensure
from grace.embedded import EmbeddedServer
from processors.partition import Partition
from processors.service import Processor
from tests.processors.support import playbooks, stored
from tests.support import wait_for

GRACE = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"
HOURLY = """
playbooks:
  - name: {name}
    every: 1h
    do: [{{take_snapshot: {{}}}}]
"""


def slot_ids(name: str, slots: range) -> dict[str, int]:
    """command id -> slot, for a timer playbook's first action."""
    return {events.derive_id("command", name, 0, "slot", s): s for s in slots}


async def test_two_partitions_fire_each_slot_once_and_the_other_takes_over_a_released_lease(
        nats_url: str) -> None:
    host = f"lease-{uuid.uuid4().hex[:8]}"
    b = await connect_and_ensure(nats_url, host=host, source=f"grace/{host}/processor")
    now = [1_800_000_000.0]
    # a name of its own: a slot's command id is the playbook's and the slot's, whatever the host
    name = f"hygiene-{host}"
    parts = [Processor(b, playbooks(HOURLY.format(name=name)), partition=Partition(i, 2),
                       clock=lambda: now[0]) for i in range(2)]
    try:
        for _ in range(3):  # three slots, each partition ticking several times in each
            for _ in range(3):
                for p in parts:
                    await p.tick()
            now[0] += 3600
        holder, other = sorted(parts, key=lambda p: not p.lease or not p.lease.held)
        assert holder.lease is not None and holder.lease.held
        assert other.published == 0  # the partition without the lease fired nothing
        await holder.lease.release()  # a clean stop hands the lease over at once
        for _ in range(2):
            await other.tick()
            now[0] += 3600
        cmds = await stored(b, topology.COMMANDS, topology.command_subject(host, "take_snapshot"))
        first = 1_800_000_000 // 3600
        ids = slot_ids(name, range(first, first + 5))
        assert Counter(ids[c.id] for c in cmds) == dict.fromkeys(range(first, first + 5), 1)
    finally:
        await b.close()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)


async def _holder(b: Bus, host: str) -> str | None:
    kv = await b.js.key_value(topology.TIMER_LEASE_BUCKET)
    try:
        entry = await kv.get(topology.timer_lease_key(host))
    except KeyNotFoundError:
        return None
    return (entry.value or b"").decode() or None


async def test_when_the_lease_holder_is_killed_another_partition_fires_the_next_slots_once(
        tmp_path: Path, fresh_server: EmbeddedServer, procs: list[subprocess.Popen[bytes]]) -> None:
    host = f"lease-{uuid.uuid4().hex[:8]}"
    # the test playbook's own schedule is short; the lease's TTL is the shipped one
    (tmp_path / "timer.yaml").write_text(
        f"playbooks:\n  - name: tick-{host}\n    every: 2s\n    do: [{{take_snapshot: {{}}}}]\n")
    (tmp_path / "grace.yaml").write_text(yaml.safe_dump(
        {"host": host, "data_dir": str(tmp_path / ".grace"), "playbooks": ["timer.yaml"]}))
    url = fresh_server.url
    for i in range(2):
        with open(tmp_path / f"process{i}.log", "ab") as out:
            procs.append(subprocess.Popen(
                [GRACE, "process", "--partition", f"{i}/2", "-c", str(tmp_path / "grace.yaml"),
                 "--nats", url], stdout=out, stderr=subprocess.STDOUT))
    b = await connect_and_ensure(url, host=host, source="grace/test/pytest")
    subject = topology.command_subject(host, "take_snapshot")
    try:
        first_holder = await wait_for(lambda: _holder(b, host), timeout=60, interval=0.2)
        killed = next(p for p in procs if f":{p.pid}:" in first_holder)
        await wait_for(lambda: stored(b, topology.COMMANDS, subject), timeout=30, interval=0.2)
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        before = len(await stored(b, topology.COMMANDS, subject))
        survivor = next(p for p in procs if p is not killed)
        # the lease expires after its TTL; the survivor takes it and fires the next slots
        await wait_for(lambda: _has(b, host, f":{survivor.pid}:"),
                       timeout=topology.TIMER_LEASE_TTL_S * 3, interval=0.2)

        async def fired_after() -> bool:
            return len(await stored(b, topology.COMMANDS, subject)) >= before + 2
        await wait_for(fired_after, timeout=30, interval=0.2)
        cmds = await stored(b, topology.COMMANDS, subject)
        slots = Counter(c.data.reason.rsplit("slot ", 1)[1].rstrip(")") for c in cmds
                        if isinstance(c.data, events.Command))
        assert slots and set(slots.values()) == {1}, slots
    finally:
        await b.close()


async def _has(b: Bus, host: str, mark: str) -> bool:
    return mark in (await _holder(b, host) or "")
