"""A failed verification on the real processor and a real nats-server, in virtual time: the
shipped kernel_heartbeat_gap playbook escalates once per episode, with its evidence, also
across a restart of the processor (the rebuild learns the escalation from the log)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

from grace import events, topology
from grace.bus import Bus
from processors import stage, validate
from processors.service import Processor
from tests.processors.support import T0, ev, gap, stored
from tests.support import wait_for


async def test_a_failed_verify_escalates_once_with_evidence_across_a_restart(bus: Bus) -> None:
    host = f"v{uuid.uuid4().hex[:10]}"
    now = [T0 + 1.0]  # the processor's clock: virtual, moved by the test

    def start() -> tuple[Processor, asyncio.Event, asyncio.Task[None]]:
        proc = Processor(bus, validate.load_paths([stage.SHIPPED]), consumer=f"proc-{host}",
                         host_filter=host, tick_s=0.05, clock=lambda: now[0])
        stop = asyncio.Event()
        return proc, stop, asyncio.create_task(proc.run(stop))

    async def commands(action: str) -> list[events.Event]:
        return await stored(bus, topology.COMMANDS, topology.command_subject(host, action))

    async def verify_failed() -> list[events.Event]:
        return await stored(bus, topology.EVENTS,
                            topology.event_filter("decision", "verify_failed", host))

    proc, stop, task = start()
    try:
        await bus.publish(ev(gap("api"), 0, host=host))
        await wait_for(lambda: commands("restart_kernel"))
        await bus.publish_many([ev(gap("api"), t, host=host) for t in (30, 90)])
        now[0] = T0 + 125  # past the 2m verify deadline, the gap still reported
        [esc] = await wait_for(lambda: commands("escalate_to_coding_agent"))
        proof = esc.data.evidence["verify"]
        assert proof["checked"] == (
            f"condition_cleared of kernel_heartbeat_gap for {host}/kernel=api/instance=")
        assert proof["found"].startswith("kernel_heartbeat_gap still reported at ")
        assert proof["latest"]["data"]["kernel"] == "api"
        await wait_for(lambda: proc.consumer is not None and proc.consumer.pending == 0
                       and proc.consumer.idle.is_set())
    finally:
        stop.set()
        await task
    # a fresh processor: only the log remembers that this episode was escalated
    proc, stop, task = start()
    try:
        await bus.publish(ev(gap("api"), 150, host=host))
        await wait_for(lambda: _n(commands("restart_kernel"), 2))
        now[0] = T0 + 275
        failed = await wait_for(lambda: _n(verify_failed(), 2))
        assert failed[-1].data.escalation is None
        assert "already escalated" in failed[-1].data.detail
        await asyncio.sleep(0.3)  # an escalation would have been published with the decision
        assert len(await commands("escalate_to_coding_agent")) == 1
    finally:
        stop.set()
        await task


async def _n(found_later: Awaitable[list[events.Event]], n: int) -> list[events.Event] | None:
    found = await found_later
    return found if len(found) >= n else None
