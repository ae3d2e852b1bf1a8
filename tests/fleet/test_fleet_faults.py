"""Three hosts on a real (namespaced) network heal their own faults through a 3-node R3 cluster,
while the network and the cluster fail under them. The tests share one fleet and run in order;
the last one audits the whole log and prints the summary line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import duckdb
import pytest
import pytest_asyncio

from bench.fleet_net import Fleet
from grace import bus as bus_mod
from grace import events, topology
from grace.app.cluster import wait_for_meta_leader
from tests.fleet import conftest
from tests.fleet.ledger import Ledger, patient, stream_leader
from tests.reliability.pipeline import count_subjects, data_of, read_log
from tests.support import wait_for

CUT_S = 30.0  # how long a host stays cut off


async def publish_retrying(b: bus_mod.Bus, ev: events.Event, attempts: int = 30) -> None:
    """Publish until acked: the client may first sit on a node it cannot reach (ids dedupe)."""
    for _ in range(attempts):
        try:
            await b.publish(ev, timeout=3)
            return
        except Exception:  # noqa: BLE001 - timeouts and no-responders while the client moves
            await asyncio.sleep(1)
    raise AssertionError(f"could not publish {ev.type} in {attempts} attempts")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def obs(fleet: Fleet) -> AsyncIterator[bus_mod.Bus]:
    """The test's own client, outside the namespaces (through the bridge)."""
    b = await bus_mod.connect_and_ensure(fleet.url, host="fleet-test", source="grace/fleet-test/pytest",
                                         replicas=3)
    await fleet.wait_ready(b)
    yield b
    await b.close()


async def test_each_host_heals_its_own_fault_and_the_dashboard_shows_hosts_apart(
        fleet: Fleet, ledger: Ledger, obs: bus_mod.Bus) -> None:
    faults = [await ledger.corrupt(h) for h in fleet.hosts]
    await ledger.wait_healed(*faults)
    restored = topology.event_filter("result", "command_succeeded", "*")

    def by_host() -> dict[str, int]:
        if not fleet.dashboard_file.exists():
            return {}
        with duckdb.connect(str(fleet.dashboard_file), read_only=True) as db:
            rows = db.execute("SELECT host, count(*) FROM results WHERE action = "
                              "'restore_model_weights' AND outcome = 'succeeded' GROUP BY host").fetchall()
        return {str(h): int(n) for h, n in rows}

    names = {h.name for h in fleet.hosts}
    shown = await wait_for(lambda: by_host() if set(by_host()) >= names else None, timeout=60, interval=1)
    assert {h: shown[h] for h in names} == dict.fromkeys(names, 1)
    assert await patient(lambda: count_subjects(obs, restored), "counting restores") >= 3
    log_sources = set()
    for h in fleet.hosts:  # each restore was done by that host's own actuator
        info = await patient(lambda h=h: obs.js.stream_info(  # type: ignore[misc]
            topology.EVENTS, subjects_filter=topology.event_filter("result", "command_succeeded", h.name)),
            f"results of {h.name}")
        log_sources.add((h.name, sum((info.state.subjects or {}).values()) > 0))
    assert log_sources == {(h.name, True) for h in fleet.hosts}


async def test_a_host_cut_off_keeps_its_findings_and_runs_its_waiting_command_once(
        fleet: Fleet, ledger: Ledger, obs: bus_mod.Bus) -> None:
    alpha, beta = fleet.hosts[0], fleet.hosts[1]
    fleet.cut(alpha)
    try:
        cut_fault = await ledger.corrupt(alpha)  # found while alone: kept, published later
        command = obs.event(events.TakeSnapshot(playbook="fleet_test", reason="queued while cut off"),
                            host=alpha.name, id=f"{fleet.run}-snapshot-while-cut")
        await publish_retrying(obs, command)
        ledger.commands.append((command.id, alpha.name))
        other = await ledger.corrupt(beta)  # the rest of the fleet keeps healing meanwhile
        await ledger.wait_healed(other, timeout=CUT_S * 4)
        assert not ledger.healed(cut_fault), "healed while its host was cut off: was it cut off?"
        await asyncio.sleep(CUT_S)  # the cut lasts CUT_S in all: findings and command wait
    finally:
        fleet.reconnect(alpha)
    await ledger.wait_healed(cut_fault)

    async def results_of_the_waiting_command() -> list[str]:
        log = await patient(lambda: read_log(obs, topology.event_filter("result", "*", alpha.name)),
                            "reading alpha's results")
        return [e.type for e in log if data_of(e)["command_id"] == command.id]

    assert await wait_for(results_of_the_waiting_command, timeout=120, interval=1) == ["command_succeeded"]
    ledger.survived += 1


async def test_killing_the_stream_leader_then_the_meta_leader_the_pipeline_continues(
        fleet: Fleet, ledger: Ledger, obs: bus_mod.Bus) -> None:
    by_name = {h.name: h for h in fleet.hosts}
    for find in ("stream", "meta"):
        await wait_for_meta_leader(fleet.url, timeout=60)
        leader = await stream_leader(obs) if find == "stream" else fleet.meta_leader()
        assert leader in by_name, f"no {find} leader among {sorted(by_name)}: {leader}"
        fleet.nodes[leader].kill()
        try:
            fault = await ledger.corrupt(by_name[leader])  # its agent must reach another node
            await ledger.wait_healed(fault)
            if find == "stream":
                assert await stream_leader(obs) != leader
            else:  # the heal needs no meta leader: the election may still be under way
                await wait_for(lambda old=leader: fleet.meta_leader() not in (None, old), timeout=60,
                               interval=0.5)
        finally:
            fleet.start_node(leader)
        ledger.survived += 1


async def test_a_killed_processor_partition_resumes_its_keys_once(
        fleet: Fleet, ledger: Ledger) -> None:
    """Partition 1/2 (hosts beta and gamma) is SIGKILLed. No spare runs: its durable consumer
    keeps its position, and the partition resumes from it when it returns."""
    alpha, gamma = fleet.hosts[0], fleet.hosts[2]
    victim = fleet.procs["process-1"]
    victim.kill()
    try:
        waiting = await ledger.corrupt(gamma)
        other = await ledger.corrupt(alpha)  # partition 0/2 goes on
        await ledger.wait_healed(other)
        assert not ledger.healed(waiting), "gamma's fault was healed with its partition down"
    finally:
        victim.start()
    await ledger.wait_healed(waiting)
    ledger.survived += 1


async def test_packet_loss_and_delay_on_one_link(fleet: Fleet, ledger: Ledger) -> None:
    beta = fleet.hosts[1]
    error = fleet.netem(beta, "delay", "40ms", "10ms", "loss", "5%")
    if error:
        pytest.skip(f"tc netem is unavailable here: {error}")
    try:
        await ledger.wait_healed(await ledger.corrupt(beta))
    finally:
        fleet.clear_netem(beta)
    ledger.survived += 1


async def test_the_log_and_the_world_agree_nothing_lost_nothing_done_twice(
        fleet: Fleet, ledger: Ledger, obs: bus_mod.Bus) -> None:
    counts = await ledger.audit(obs)
    losses = counts["commands_without_result"] + counts["files_not_restored"] + counts["restores_missing"]
    duplicates = (counts["duplicate_event_ids"] + counts["duplicate_commands"]
                  + counts["duplicate_results"] + counts["restores_extra"]
                  + counts["kernel_instances_twice"] + counts["kernel_processes_not_in_log"])
    conftest.SUMMARY.append(f"hosts={len(fleet.hosts)} events={counts['events']} losses={losses} "
                            f"duplicates={duplicates} partitions_survived={ledger.survived}")
    assert ledger.faults, "no fault was injected"
    assert ledger.kernel_processes(), "no kernel process of the fleet found: the pid check saw nothing"
    assert (losses, duplicates) == (0, 0), f"{counts}; {ledger.details}"
