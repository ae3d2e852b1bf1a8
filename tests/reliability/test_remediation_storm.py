"""Remediation storms: a kernel that crashes on start is restarted at most `budget.max`
times per period, then escalated once; restarting every stage does not reset that."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from grace import bus as bus_mod
from grace import events, topology
from grace.consume import Delivery, read_range
from grace.embedded import EmbeddedServer
from processors import validate
from processors.matcher import Matcher
from tests.reliability.pipeline import Stage, data_of, read_log, write_config
from tests.support import wait_for

STORM_PLAYBOOK = """
playbooks:
  - name: storm_restart
    description: Restart a silent kernel, three times an hour at most, then escalate once.
    on: kernel_heartbeat_gap
    group_by: [kernel]
    do:
      - restart_kernel: {kernel: "{kernel}"}
    cooldown: 1s
    budget: {max: 3, per: 1h, then: escalate_to_coding_agent}
"""

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def gap(host: str, i: int) -> events.Event:
    return events.make_event(events.KernelHeartbeatGap(kernel="crashy", timeout_s=2.0), host=host,
                             source=f"grace/{host}/test", id=f"gap-{i}",
                             time=T0 + timedelta(seconds=2 * i))


def matcher(tmp_path: Path) -> Matcher:
    f = tmp_path / "storm.yaml"
    f.write_text(STORM_PLAYBOOK)
    return Matcher(validate.load_paths([f]), host="p", source="grace/p/processor")


def test_budget_escalation_is_not_issued_again_after_a_restart_rebuilt_the_state(
        tmp_path: Path) -> None:
    """Pure logic: the log of a first run, replayed the way a restarted processor rebuilds."""
    first = matcher(tmp_path)
    log: list[events.Event] = []
    for i in range(6):
        ev = gap("h", i)
        first.process(ev)
        log += [ev, *first.take()]
    actions = [e.data for e in log if isinstance(e.data, events.CommandIssued)]
    assert [a.action for a in actions] == ["restart_kernel"] * 3 + ["escalate_to_coding_agent"]
    restarted = matcher(tmp_path)
    restarted.emit = False
    for ev in log:  # rebuild: the whole log up to the ack floor, emitting nothing
        restarted.process(ev)
    restarted.emit = True
    restarted.take()
    for i in range(6, 12):  # the kernel is still silent after the restart
        restarted.process(gap("h", i))
    again = [e for e in restarted.take() if e.category == "command"]
    assert again == []  # no restart (budget spent) and no second escalation


HOST = "stormhost"
CONFIG = f"""host: {HOST}
monitor: {{interval: 1s, timeout: 5s}}
kernels:
  - name: crashy
    command: [python, -c, "import sys; sys.exit(3)"]
    heartbeat_timeout: 2s
"""


def issued(log: list[Any]) -> Counter[str]:
    """command_issued decisions of the storm playbook, by action."""
    return Counter(data_of(e)["action"] for e in log
                   if e.type == "command_issued" and data_of(e)["playbook"] == "storm_restart")


async def test_remediation_storm_acts_budget_max_times_then_escalates_once_across_restarts(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg", CONFIG, STORM_PLAYBOOK)
    up = Stage("up", cfg, fresh_server.url, tmp_path / "data")
    b = await bus_mod.connect_and_ensure(fresh_server.url, host=HOST, source=f"grace/{HOST}/storm")
    decisions = topology.event_filter("decision", "command_issued", HOST)
    gaps = topology.event_filter("trigger", "kernel_heartbeat_gap", HOST)
    try:
        up.start()

        async def escalated() -> bool:
            assert up.alive(), f"grace up exited; see {up.log}"
            return issued(await read_log(b, decisions))["escalate_to_coding_agent"] >= 1

        await wait_for(escalated, timeout=180, interval=0.5)
        assert up.stop() == 0, f"grace up did not stop cleanly; see {up.log}"
        before = (await b.js.stream_info(topology.EVENTS)).state.last_seq
        up.start()  # every stage starts afresh on the same data dir and log

        async def judged_three_more_gaps() -> bool:
            assert up.alive(), f"grace up exited; see {up.log}"
            seqs = [s for s in await seqs_of(b, gaps) if s > before]
            if len(seqs) < 3:
                return False
            info = await b.js.consumer_info(topology.EVENTS, topology.PROCESSOR_CONSUMER)
            return bool(info.ack_floor.stream_seq >= seqs[2])  # the processor has judged them

        await wait_for(judged_three_more_gaps, timeout=180, interval=0.5)
        assert up.stop() == 0
        log = await read_log(b)
        tasks = await b.js.stream_info(topology.TASKS, subjects_filter=topology.task_subject(HOST, "*"))
    finally:
        up.kill()
        await b.close()
    counts = issued(log)
    assert counts == {"restart_kernel": 3, "escalate_to_coding_agent": 1}, counts
    assert sum((tasks.state.subjects or {}).values()) == 1  # one FixTask for the coding agent
    commands = {data_of(e)["command_id"] for e in log if e.type == "command_issued"}
    results = Counter(data_of(e)["command_id"] for e in log if e.type.startswith("command_")
                      and e.type != "command_issued")
    assert {c: results[c] for c in commands} == dict.fromkeys(commands, 1)
    spent = [data_of(e) for e in log if e.type == "decision_suppressed"
             and data_of(e)["reason"] == "budget_spent"]
    assert spent  # the storm was recorded as held back, not silently dropped


async def seqs_of(b: bus_mod.Bus, subject: str) -> list[int]:
    """Stream sequences of the events on `subject`, in order."""
    out: list[int] = []

    async def keep(items: list[Delivery[Any]]) -> None:
        out.extend(d.seq for d in items)

    await read_range(b, 1, keep, decoder=events.decode_envelope, filter_subject=subject,
                     stage="reliability-test")
    return out
