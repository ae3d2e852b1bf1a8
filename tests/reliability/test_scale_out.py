"""Scale-out: processors partitioned by host share the log without duplicating commands or
splitting a target's window; actuators on two hosts each run only their own host's commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from grace import bus as bus_mod
from grace import events, topology
from grace.embedded import EmbeddedServer
from grace.errors import ConfigError
from processors import partition
from tests.reliability.pipeline import Stage, count_subjects, data_of, read_log, write_config
from tests.support import wait_for

WINDOW_PLAYBOOK = """
playbooks:
  - name: backlog_window
    description: Three backlogs of one kernel within an hour restart it.
    on: queue_backlog
    group_by: [kernel]
    count: 3
    within: 1h
    do:
      - restart_kernel: {kernel: "{kernel}"}
"""
HOSTS = [f"so-{c}" for c in "abcdefgh"]
KERNELS = ("api", "worker")
ROUNDS = 7  # per host and kernel: commands at the 3rd and 6th backlog (the window restarts)
T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def test_partition_of_a_host_is_stable_and_both_partitions_get_hosts() -> None:
    assert [partition.owner(h, 2) for h in HOSTS] == [partition.owner(h, 2) for h in HOSTS]
    assert {partition.owner(h, 2) for h in HOSTS} == {0, 1}
    p = partition.parse("1/2")
    assert p is not None and p.consumer == "processor-1-of-2"
    assert [p.owns(h) for h in HOSTS] == [partition.owner(h, 2) == 1 for h in HOSTS]
    assert partition.parse("0/1") is None and partition.parse("") is None
    for bad in ("2/2", "x", "1/0", "-1/2"):
        with pytest.raises(ConfigError, match="is not I/N"):
            partition.parse(bad)


def backlogs() -> list[events.Event]:
    """Interleaved across hosts and kernels, one minute apart per target, fixed ids and times."""
    out: list[events.Event] = []
    for r in range(ROUNDS):
        for h in HOSTS:
            for k in KERNELS:
                data = events.QueueBacklog(kernel=k, stream="S", consumer="c", pending=500,
                                           ack_pending=0, backlog=500, threshold=100)
                out.append(events.make_event(data, host=h, source=f"grace/{h}/producer",
                                             id=f"backlog-{h}-{k}-{r}",
                                             time=T0 + timedelta(minutes=r, seconds=len(out))))
    return out


async def run_processors(url: str, tmp: Path, parts: list[str]) -> list[Any]:
    """Publish the backlogs (half before, half after the processors start), wait until every
    processor has judged the whole log, stop them; returns the log."""
    cfg = write_config(tmp / "cfg", "", WINDOW_PLAYBOOK)
    b = await bus_mod.connect_and_ensure(url, host="scale", source="grace/scale/test")
    evs = backlogs()
    stages = [Stage("process", cfg, url, tmp / f"data{i}", *(["--partition", p] if p else []),
                    env={"GRACE_HOST": f"proc{i}"}, log_name=f"process{i}")
              for i, p in enumerate(parts)]
    consumers = [p.consumer if p else topology.PROCESSOR_CONSUMER
                 for p in map(partition.parse, parts)]
    want = len(HOSTS) * len(KERNELS) * (ROUNDS // 3)
    try:
        await b.publish_many(evs[: len(evs) // 2])
        for s in stages:
            s.start()
        await b.publish_many(evs[len(evs) // 2:])
        issued = topology.event_filter("decision", "command_issued", "*")

        async def judged_all() -> bool:
            for s in stages:
                assert s.alive(), f"a processor exited; see {s.log}"
            if await count_subjects(b, issued) < want:
                return False
            last = (await b.js.stream_info(topology.EVENTS)).state.last_seq
            for name in consumers:
                try:
                    info = await b.js.consumer_info(topology.EVENTS, name)
                except Exception:  # noqa: BLE001 - not created yet
                    return False
                if info.ack_floor.stream_seq < last:
                    return False
            return True

        await wait_for(judged_all, timeout=120, interval=0.3)
        for s in stages:
            assert s.stop() == 0, f"processor did not stop cleanly; see {s.log}"
        return await read_log(b)
    finally:
        for s in stages:
            s.kill()
        await b.close()


async def test_two_partitions_emit_the_commands_of_one_processor_without_duplicates(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    single = EmbeddedServer(tmp_path / "single-nats")
    single.start()
    try:
        one = await run_processors(single.url, tmp_path / "single", [""])
    finally:
        single.stop()
    two = await run_processors(fresh_server.url, tmp_path / "two", ["0/2", "1/2"])

    def commands(log: list[Any]) -> list[tuple[str, str, str]]:
        return [(e.id, e.host, data_of(e)["command_id"]) for e in log
                if e.type == "command_issued"]

    want = len(HOSTS) * len(KERNELS) * (ROUNDS // 3)
    assert len(commands(one)) == want
    assert sorted(commands(two)) == sorted(commands(one))  # same ids: same windows, same causes
    cause_sets = [tuple(data_of(e)["cause_ids"]) for e in two
                  if e.type == "command_issued"]
    assert len(cause_sets) == len(set(cause_sets))  # no window counted twice
    for e in two:  # each decision came from the partition that owns its host
        if e.type == "command_issued":
            assert e.source == f"grace/proc{partition.owner(e.host, 2)}/processor"
    assert {e.source for e in two if e.type == "command_issued"} == {
        "grace/proc0/processor", "grace/proc1/processor"}


async def test_actuators_on_two_hosts_each_run_only_their_own_commands(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    url = fresh_server.url
    cfg = write_config(tmp_path / "cfg", "", "playbooks: []\n")
    acts = [Stage("act", cfg, url, tmp_path / f"data-{h}", env={"GRACE_HOST": h}, log_name=f"act-{h}")
            for h in ("a", "b")]
    b = await bus_mod.connect_and_ensure(url, host="scale", source="grace/scale/test")
    cmds = [b.event(events.TakeSnapshot(playbook="scale_out", reason=f"command {i}"),
                    host="ab"[i % 2], id=f"snap-{i}") for i in range(10)]
    results = topology.event_filter("result", "*", "*")
    try:
        for s in acts:
            s.start()
        await b.publish_many(cmds)

        async def all_done() -> bool:
            for s in acts:
                assert s.alive(), f"an actuator exited; see {s.log}"
            return await count_subjects(b, results) >= len(cmds)

        await wait_for(all_done, timeout=120, interval=0.3)
        for s in acts:
            assert s.stop() == 0, f"actuator did not stop cleanly; see {s.log}"
        log = await read_log(b, results)
    finally:
        for s in acts:
            s.kill()
        await b.close()
    by_command = {data_of(e)["command_id"]: e for e in log}
    assert sorted(by_command) == sorted(c.id for c in cmds) and len(log) == len(cmds)
    for c in cmds:
        r = by_command[c.id]
        assert r.type == "command_succeeded", data_of(r)
        assert (r.host, r.source) == (c.host, f"grace/{c.host}/actuator")
