"""The processor on a real nats-server: subjects, broker-acked output, state rebuilt from the log."""

from __future__ import annotations

import asyncio
import gc
import uuid

from grace import events, topology
from grace.bus import Bus
from processors.service import Processor
from tests.processors.support import RESTART_BUDGET, ev, gap, playbooks, stored
from tests.support import wait_for


def unique_host() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


async def start(bus: Bus, host: str) -> tuple[Processor, asyncio.Event, asyncio.Task[None]]:
    proc = Processor(bus, playbooks(RESTART_BUDGET), consumer=f"proc-{host}",
                     host_filter=host, tick_s=0.05)
    stop = asyncio.Event()
    return proc, stop, asyncio.create_task(proc.run(stop))


async def test_commands_go_to_the_event_hosts_subject_and_decisions_to_the_log(bus: Bus) -> None:
    host = unique_host()
    trigger = ev(gap("api"), 0, host=host)
    await bus.publish(trigger)
    _proc, stop, task = await start(bus, host)
    try:
        cmds = await wait_for(lambda: stored(bus, topology.COMMANDS,
                                             topology.command_subject(host, "restart_kernel")))
        assert cmds[0].data.cause_ids == [trigger.id] and cmds[0].data.kernel == "api"
        decisions = await wait_for(lambda: stored(bus, topology.EVENTS, topology.event_filter(
            "decision", "command_issued", host)))
        assert decisions[0].data.command_id == cmds[0].id
        assert decisions[0].id == events.derive_id("decision", cmds[0].id)
    finally:
        stop.set()
        await task


async def test_budget_survives_a_restart_because_state_is_rebuilt_from_the_log(bus: Bus) -> None:
    host = unique_host()
    cmd_filter = topology.command_filter(host)
    proc, stop, task = await start(bus, host)
    await bus.publish_many([ev(gap("api"), i * 60, host=host) for i in range(2)])
    await wait_for(lambda: _count(bus, cmd_filter, 2))
    await wait_for(lambda: proc.consumer is not None and proc.consumer.pending == 0
                   and proc.consumer.idle.is_set())
    stop.set()
    await task
    # a new process (a fresh matcher): only the log remembers the two restarts
    proc, stop, task = await start(bus, host)
    try:
        await bus.publish_many([ev(gap("api"), 120 + i * 60, host=host) for i in range(4)])
        await wait_for(lambda: _count(bus, cmd_filter, 4))
        await wait_for(lambda: proc.consumer is not None and proc.consumer.pending == 0)
        await asyncio.sleep(0.2)  # anything extra would have been published by now
        cmds = await stored(bus, topology.COMMANDS, cmd_filter)
        assert [c.type for c in cmds] == ["restart_kernel"] * 3 + ["escalate_to_coding_agent"]
        assert proc.rebuilt_events >= 2
    finally:
        stop.set()
        await task


async def _count(bus: Bus, subject: str, n: int) -> bool:
    return len(await stored(bus, topology.COMMANDS, subject)) >= n


async def test_timer_playbook_fires_on_an_idle_log(nats_url: str) -> None:
    from grace.bus import connect_and_ensure

    host = unique_host()
    b = await connect_and_ensure(nats_url, host=host, source=f"grace/{host}/processor")
    pbs = playbooks("""
playbooks:
  - name: hygiene
    every: 1h
    do: [{take_snapshot: {}}]
""")
    proc = Processor(b, pbs, consumer=f"proc-{host}", host_filter=host,
                     tick_s=0.05, clock=lambda: 1_800_000_000.0)
    stop = asyncio.Event()
    task = asyncio.create_task(proc.run(stop))
    try:
        cmds = await wait_for(lambda: stored(b, topology.COMMANDS,
                                             topology.command_subject(host, "take_snapshot")))
        assert cmds[0].id == events.derive_id("command", "hygiene", 0, "slot", 1_800_000_000 // 3600)
    finally:
        stop.set()
        await task
        await b.close()


async def test_an_unknown_event_type_is_rejected_and_the_processor_goes_on(bus: Bus) -> None:
    host = unique_host()
    raw = (b'{"type":"kernel_heartbeat_gapp","specversion":"1.0","id":"x1","source":"s",'
           b'"time":"2026-01-01T00:00:00Z","datacontenttype":"application/json",'
           b'"host":"' + host.encode() + b'","data":{"kernel":"api"}}')
    await bus.nc.publish(topology.event_subject("trigger", "kernel_heartbeat_gapp", host), raw)
    await bus.publish(ev(gap("api"), 0, host=host))
    _proc, stop, task = await start(bus, host)
    try:
        await wait_for(lambda: stored(bus, topology.COMMANDS, topology.command_filter(host)))
        last = await bus.js.get_last_msg(topology.REJECTED, topology.rejected_subject("processor"))
        assert host.encode() in (last.data or b"")
        assert "unknown event type" in (last.headers or {}).get(topology.H_REJECT_REASON, "")
    finally:
        stop.set()
        await task


async def test_an_event_a_playbook_fails_on_is_rejected_with_the_reason(bus: Bus) -> None:
    host = unique_host()
    pb = playbooks(RESTART_BUDGET)[0]

    def fragile(e: events.Event) -> bool:
        if e.data.kernel == "poison":
            raise ValueError("cannot judge kernel 'poison'")
        return True

    pb.pred = fragile
    bad, good = ev(gap("poison"), 0, host=host), ev(gap("api"), 1, host=host)
    await bus.publish_many([bad, good])
    proc = Processor(bus, [pb], consumer=f"proc-{host}", host_filter=host)
    stop = asyncio.Event()
    task = asyncio.create_task(proc.run(stop))
    try:
        cmds = await wait_for(lambda: stored(bus, topology.COMMANDS, topology.command_filter(host)))
        assert [c.data.kernel for c in cmds] == ["api"]
        last = await bus.js.get_last_msg(topology.REJECTED, topology.rejected_subject("processor"))
        assert events.decode(last.data or b"").id == bad.id
        assert "cannot judge kernel 'poison'" in (last.headers or {})[topology.H_REJECT_REASON]
    finally:
        stop.set()
        await task


async def test_a_settled_heap_is_frozen_after_boot_and_the_processor_still_acts(bus: Bus) -> None:
    host = unique_host()
    before = gc.get_freeze_count()
    proc = Processor(bus, playbooks(RESTART_BUDGET), consumer=f"proc-{host}", host_filter=host,
                     tick_s=0.05, settle_heap=True)
    stop = asyncio.Event()
    task = asyncio.create_task(proc.run(stop))
    try:
        await wait_for(lambda: proc.consumer is not None)
        assert gc.get_freeze_count() > before  # boot's objects left the collector's generations
        trigger = ev(gap("api"), 0, host=host)
        await bus.publish(trigger)
        cmds = await wait_for(lambda: stored(bus, topology.COMMANDS,
                                             topology.command_subject(host, "restart_kernel")))
        assert cmds[0].data.cause_ids == [trigger.id]
    finally:
        stop.set()
        await task
        gc.unfreeze()  # the test process's heap goes back to the collector
