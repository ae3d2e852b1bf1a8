"""The safety rails (config `safety`) pushed past their shipped limits, in virtual time:
rate limit (30 commands per minute per host), blast radius (half a kernel's pool down at
once, at least one), loop guard (chains of 3 commands answering each other's results).
Each refusal is decision_suppressed with the rail's reason, escalated once per rail, host
and hour, and holds again after the state is rebuilt from the log."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path
from types import SimpleNamespace

from grace import config, events, topology
from grace.bus import Bus
from grace.events import Event
from processors import stage
from processors.gates import Settings
from processors.matcher import Matcher
from processors.service import Processor
from tests.processors.support import T0, at, commands, ev, gap, of_type, playbooks, run, stored
from tests.support import wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "grace.yaml"
# the rails as the shipped example config sets them: never lowered for a test
RAILS = stage.settings(SimpleNamespace(cfg=config.load(EXAMPLE)))  # type: ignore[arg-type]
HOST = "web-1"
ESCALATE = "escalate_to_coding_agent"

PER_KERNEL = """
playbooks:
  - name: restart
    on: kernel_heartbeat_gap
    group_by: [kernel]
    do: [{restart_kernel: {kernel: "{kernel}"}}]
"""
PER_INSTANCE = """
playbooks:
  - name: restart_instance
    on: kernel_heartbeat_gap
    group_by: [kernel, instance]
    do: [{restart_kernel: {kernel: "{kernel}", instance: "{instance}"}}]
"""
LOOP = """
playbooks:
  - name: start
    on: queue_backlog
    do: [{clear_caches: {}}]
  - name: ping
    on: command_succeeded
    where: {playbook: [start, pong]}
    do: [{clear_caches: {}}]
  - name: pong
    on: command_succeeded
    where: {playbook: ping}
    do: [{clear_caches: {}}]
"""


def test_the_rails_under_test_are_the_shipped_ones() -> None:
    assert (RAILS.max_commands, RAILS.max_commands_per_s, RAILS.max_pool_restarting,
            RAILS.max_chain_depth) == (30, 60.0, 0.5, 3)


def rails(text: str, settings: Settings = RAILS) -> Matcher:
    return Matcher(playbooks(text), host="grace-1", source="grace/grace-1/processor",
                   settings=settings)


def refused(out: list[Event], reason: str) -> list[events.DecisionSuppressed]:
    return [e.data for e in of_type(out, "decision_suppressed")
            if isinstance(e.data, events.DecisionSuppressed) and e.data.reason == reason]


def acts(out: list[Event], action: str) -> list[Event]:
    return [c for c in commands(out) if c.type == action]


def safety_escalation_id(reason: str, t: float, host: str = HOST) -> str:
    return events.derive_id("command", "safety", reason, host, int((T0 + t) // 3600))


def rebuilt(text: str, log: list[Event]) -> Matcher:
    """A fresh matcher that read `log` with emission off, as a restarted processor does."""
    m = rails(text)
    m.emit = False
    for e in log:
        m.process(e)
    m.emit = True
    assert m.take() == []
    return m


def decisions(out: list[Event]) -> list[Event]:
    return [e for e in out if e.category == "decision"]


# ---------------------------------------------------------------- rate limit


def test_the_31st_command_within_a_minute_on_a_host_is_refused_and_escalated_once() -> None:
    m = rails(PER_KERNEL)
    out = run(m, *[ev(gap(f"k{i}"), i) for i in range(30)])  # 30 kernels, 30 findings, t 0..29
    assert len(acts(out, "restart_kernel")) == 30
    out = run(m, ev(gap("k30"), 30), ev(gap("k30"), 30.5), ev(gap("k31"), 31))
    assert acts(out, "restart_kernel") == []
    storm = refused(out, "rate_limit")
    assert [r.target for r in storm] == [f"{HOST}/kernel=k30", f"{HOST}/kernel=k31"]  # not per event
    assert "30 commands on host web-1 within the last 1m" in storm[0].detail
    assert "raise safety.max_commands in grace.yaml" in storm[0].detail
    [esc] = acts(out, ESCALATE)
    assert esc.id == safety_escalation_id("rate_limit", 30)
    assert "safety rail rate_limit" in esc.data.reason
    out = run(m, ev(gap("k32"), 40))  # still refused; the hour's escalation was sent
    assert len(refused(out, "rate_limit")) == 1 and commands(out) == []
    # the window slides: the command of t=0 is a minute old at t=60, one slot is free
    out = run(m, ev(gap("k30"), 60.5))
    assert [c.data.kernel for c in acts(out, "restart_kernel")] == ["k30"]
    out = run(m, ev(gap("k33"), 60.7))  # full again until the command of t=1 ages out
    assert commands(out) == [] and len(refused(out, "rate_limit")) == 1
    assert [c.data.kernel for c in acts(run(m, ev(gap("k33"), 61)), "restart_kernel")] == ["k33"]
    # an hour later a new storm is escalated again, once
    out = run(m, *[ev(gap(f"n{i}"), 3700 + i) for i in range(35)])
    assert len(acts(out, "restart_kernel")) == 30 and len(refused(out, "rate_limit")) == 5
    assert [e.id for e in acts(out, ESCALATE)] == [safety_escalation_id("rate_limit", 3730)]


def test_the_rate_limit_is_per_host() -> None:
    m = rails(PER_KERNEL)
    out = run(m, *[ev(gap(f"k{i}"), i) for i in range(31)])
    out += run(m, *[ev(gap(f"k{i}"), 31 + i, host="web-2") for i in range(30)])
    assert len(acts(out, "restart_kernel")) == 60
    assert [r.target for r in refused(out, "rate_limit")] == [f"{HOST}/kernel=k30"]


def test_observed_commands_count_as_sent_so_act_mode_would_behave_the_same() -> None:
    m = rails(PER_KERNEL, dataclasses.replace(RAILS, observe=True))
    out = run(m, *[ev(gap(f"k{i}"), i) for i in range(31)])
    assert commands(out) == []  # observing sends nothing
    assert len(of_type(out, "decision_observed")) == 31  # 30 restarts and the rail's escalation
    assert [r.target for r in refused(out, "rate_limit")] == [f"{HOST}/kernel=k30"]


def test_the_rate_limit_is_rebuilt_from_the_log_and_does_not_escalate_twice() -> None:
    m = rails(PER_KERNEL)
    out = run(m, *[ev(gap(f"k{i}"), i) for i in range(31)])
    assert len(acts(out, ESCALATE)) == 1
    fresh = rebuilt(PER_KERNEL, decisions(out))  # only the decisions: what was done
    out = run(fresh, ev(gap("k40"), 40))
    assert commands(out) == []  # 30 commands in the minute, learnt from command_issued
    assert [r.target for r in refused(out, "rate_limit")] == [f"{HOST}/kernel=k40"]
    assert [c.data.kernel for c in acts(run(fresh, ev(gap("k41"), 60.5)), "restart_kernel")] == [
        "k41"]


def test_an_approval_that_comes_when_the_host_is_at_its_limit_is_refused() -> None:
    m = rails(PER_KERNEL + """
  - name: careful
    on: config_drift
    mode: approve
    do: [{restore_from_snapshot: {path: "{path}"}}]
""")
    drift = events.ConfigDrift(path="config/app.yaml", expected_sha256="a", actual_sha256="b")
    [req] = of_type(run(m, ev(drift, 0)), "approval_requested")
    assert len(acts(run(m, *[ev(gap(f"k{i}"), 1 + i) for i in range(30)]), "restart_kernel")) == 30
    out = run(m, ev(events.ApprovalGranted(command_id=req.data.command_id, by="alice"), 40))
    assert acts(out, "restore_from_snapshot") == []
    [r] = refused(out, "rate_limit")
    assert r.detail.startswith("approved by alice, but 30 commands")


# ---------------------------------------------------------------- blast radius


def pool(kernel: str, n: int, t: float = 0.0, critical: bool = False) -> list[Event]:
    return [ev(events.KernelStarted(kernel=kernel, instance=i, pid=1000 + i, critical=critical), t)
            for i in range(n)]


def hung(kernel: str, instance: int) -> events.KernelHeartbeatGap:
    return events.KernelHeartbeatGap(kernel=kernel, instance=instance, timeout_s=6.0)


def restarted_instances(out: list[Event]) -> list[int | None]:
    return [c.data.instance for c in acts(out, "restart_kernel")]


def test_at_most_half_of_a_pool_restarts_at_once_until_one_is_back() -> None:
    m = rails(PER_INSTANCE)
    run(m, *pool("worker", 4))
    out = run(m, ev(hung("worker", 0), 10), ev(hung("worker", 1), 11))
    assert restarted_instances(out) == [0, 1]  # 2 of 4: the limit
    first = acts(out, "restart_kernel")[0]
    out = run(m, ev(hung("worker", 2), 12), ev(hung("worker", 2), 12.5), ev(hung("worker", 3), 13))
    assert restarted_instances(out) == []
    [r2, _r3] = refused(out, "blast_radius")  # once per target and pool state, not per event
    assert r2.target == f"{HOST}/kernel=worker/instance=2"
    assert "2 of 4 instances restarting or suspended" in r2.detail
    assert "limit safety.max_pool_restarting 0.5 = 2 of 4" in r2.detail
    assert f"restart {first.id} in flight" in r2.detail
    assert [e.id for e in acts(out, ESCALATE)] == [safety_escalation_id("blast_radius", 12)]
    # instance 0's result comes back: one more may go
    out = run(m, ev(events.CommandSucceeded(command_id=first.id, action="restart_kernel"), 20),
              ev(hung("worker", 2), 21), ev(hung("worker", 3), 21.5))
    assert restarted_instances(out) == [2]
    assert len(refused(out, "blast_radius")) == 1  # 3 waits for 1 or 2
    # instance 1 is restarted (its kernel events, before its result): 3 may go
    out = run(m, ev(events.KernelExited(kernel="worker", instance=1, pid=1001, code=0,
                                        expected=True), 22),
              ev(events.KernelRestarted(kernel="worker", instance=1, pid=2001), 22.2),
              ev(hung("worker", 3), 23))
    assert restarted_instances(out) == [3]
    assert acts(out, ESCALATE) == []  # the hour's blast_radius escalation was sent


def test_a_single_instance_kernel_can_always_be_restarted() -> None:
    m = rails(PER_KERNEL + """
  - name: restart_instance
    on: kernel_heartbeat_gap
    where: {kernel: reporter}
    group_by: [kernel, instance]
    do: [{restart_kernel: {kernel: "{kernel}", instance: "{instance}"}}]
""")
    run(m, *pool("reporter", 1))
    out = run(m, ev(hung("reporter", 0), 10))
    # floor(0.5 x 1) = 0, but at least one is always allowed: both playbooks restart it
    assert restarted_instances(out) == [None, 0]
    assert refused(out, "blast_radius") == []


def test_a_rolling_restart_goes_on_as_soon_as_the_previous_instance_is_back() -> None:
    m = rails(PER_INSTANCE + """
  - name: roll
    on: kernel_restarted
    where: {kernel: worker, instance: 0}
    do: [{restart_kernel: {kernel: worker, instance: 1}}]
""")
    run(m, *pool("worker", 2))  # a pool of 2: one at a time
    out = run(m, ev(hung("worker", 0), 10),
              ev(events.KernelExited(kernel="worker", instance=0, pid=1000, code=0, expected=True),
                 11),
              ev(events.KernelRestarted(kernel="worker", instance=0, pid=2000), 11.5))
    assert restarted_instances(out) == [0, 1] and refused(out, "blast_radius") == []


def test_exited_and_suspended_instances_count_as_down() -> None:
    m = rails(PER_INSTANCE)
    run(m, *pool("worker", 4))
    out = run(m, ev(events.KernelExited(kernel="worker", instance=0, pid=1000, code=1), 5),
              ev(events.KernelSuspended(kernel="worker", instance=1, pids=[1001]), 6),
              ev(hung("worker", 2), 10))
    assert restarted_instances(out) == []
    assert "0: exited, not started again, 1: suspended" in refused(out, "blast_radius")[0].detail
    out = run(m, ev(hung("worker", 0), 11))  # restarting one already down takes nothing more
    assert restarted_instances(out) == [0]
    out = run(m, ev(events.KernelResumed(kernel="worker", instance=1, pids=[1001]), 12),
              ev(events.KernelStarted(kernel="worker", instance=0, pid=3000), 12.5),
              ev(hung("worker", 2), 13))
    assert restarted_instances(out) == [2]  # 0 is back (started), 1 resumed


def test_shedding_a_whole_pool_is_refused_but_a_one_instance_kernel_may_be_shed() -> None:
    shed = """
playbooks:
  - name: shed_reporter
    on: cpu_saturation
    where: {kernel: reporter}
    do: [{shed_load: {kernels: [reporter]}}]
  - name: shed_worker
    on: cpu_saturation
    where: {kernel: worker}
    do: [{shed_load: {kernels: [worker]}}]
"""
    m = rails(shed)
    run(m, *pool("worker", 4), *pool("reporter", 1))

    def cpu(kernel: str) -> events.CpuSaturation:
        return events.CpuSaturation(scope="kernel", kernel=kernel, percent=99.0, threshold=90.0,
                                    samples=3)

    out = run(m, ev(cpu("reporter"), 10), ev(cpu("worker"), 11))
    assert [c.data.kernels for c in acts(out, "shed_load")] == [["reporter"]]
    assert "would take instance(s) 0, 1, 2, 3 down" in refused(out, "blast_radius")[0].detail


def test_shed_load_of_every_kernel_counts_the_non_critical_ones_the_log_knows() -> None:
    m = rails("""
playbooks:
  - name: shed
    on: cpu_saturation
    do: [{shed_load: {kernels: []}}]
""")
    system = events.CpuSaturation(scope="system", percent=99.0, threshold=90.0, samples=3)
    run(m, *pool("api", 4, critical=True), *pool("reporter", 1))
    assert len(acts(run(m, ev(system, 10)), "shed_load")) == 1  # api is critical: never shed
    m = rails("""
playbooks:
  - name: shed
    on: cpu_saturation
    do: [{shed_load: {kernels: []}}]
""")
    run(m, *pool("api", 4, critical=True), *pool("reporter", 1), *pool("worker", 2))
    out = run(m, ev(system, 10))
    assert commands(out) == acts(out, ESCALATE) and len(commands(out)) == 1  # no shed_load
    assert "kernel worker on web-1" in refused(out, "blast_radius")[0].detail


def test_the_pool_is_rebuilt_from_the_log() -> None:
    m = rails(PER_INSTANCE)
    log = pool("worker", 4)
    out = run(m, *log, ev(hung("worker", 0), 10), ev(hung("worker", 1), 11))
    assert restarted_instances(out) == [0, 1]
    first = acts(out, "restart_kernel")[0]
    fresh = rebuilt(PER_INSTANCE, [*log, *decisions(out)])  # kernel events and decisions
    out = run(fresh, ev(hung("worker", 2), 12))  # two restarts in flight, learnt from the log
    assert restarted_instances(out) == [] and len(refused(out, "blast_radius")) == 1
    assert [e.id for e in acts(out, ESCALATE)] == [safety_escalation_id("blast_radius", 12)]
    out = run(fresh, ev(events.CommandSucceeded(command_id=first.id, action="restart_kernel"), 14),
              ev(hung("worker", 2), 15))
    assert restarted_instances(out) == [2]


def test_an_approved_restart_is_judged_against_the_pool_at_approval_time() -> None:
    m = rails("""
playbooks:
  - name: careful
    on: kernel_heartbeat_gap
    group_by: [kernel, instance]
    mode: approve
    do: [{restart_kernel: {kernel: "{kernel}", instance: "{instance}"}}]
""")
    run(m, *pool("worker", 4))
    [req] = of_type(run(m, ev(hung("worker", 2), 10)), "approval_requested")  # the pool is calm
    run(m, *[ev(events.KernelExited(kernel="worker", instance=i, pid=1000 + i, code=1), 20)
             for i in (0, 1)])
    out = run(m, ev(events.ApprovalGranted(command_id=req.data.command_id, by="alice"), 30))
    assert acts(out, "restart_kernel") == []
    [r] = refused(out, "blast_radius")
    assert r.detail.startswith("approved by alice, but kernel worker on web-1: 2 of 4")
    assert [e.id for e in acts(out, ESCALATE)] == [safety_escalation_id("blast_radius", 30)]


# ---------------------------------------------------------------- loop guard


def answer_until_quiet(m: Matcher, out: list[Event], t: float) -> tuple[list[Event], float]:
    """Answer every command with its command_succeeded, as an actuator would, until no more
    commands come (or 50 rounds: a loop the guard did not stop)."""
    seen: list[Event] = list(out)
    pending = commands(out)
    for _ in range(50):
        if not pending:
            return seen, t
        t += 1
        results = [ev(events.CommandSucceeded(command_id=c.id, action=c.type,
                                              playbook=c.data.playbook), t) for c in pending]
        new = run(m, *results)
        seen += results + new
        pending = commands(new)
    raise AssertionError("the playbooks kept answering each other's results: no loop guard")


def test_playbooks_answering_each_others_results_are_cut_at_depth_three() -> None:
    m = rails(LOOP)
    backlog = events.QueueBacklog(kernel="worker", stream="JOBS", consumer="w", pending=500,
                                  ack_pending=0, backlog=500, threshold=100)
    seen, _ = answer_until_quiet(m, run(m, ev(backlog, 0)), 0)
    chain = [c.data.playbook for c in acts(seen, "clear_caches")]
    assert chain == ["start", "ping", "pong"]  # depth 1, 2, 3; ping at depth 4 is refused
    [cut, *rest] = refused(seen, "loop_guard")
    assert "link 4 of a chain" in cut.detail and "safety.max_chain_depth is 3" in cut.detail
    assert "start (" in cut.detail and "-> ping" in cut.detail
    assert all(r.playbook == "pong" for r in rest)  # pong on the escalation's result: cut too
    assert [e.id for e in acts(seen, ESCALATE)] == [safety_escalation_id("loop_guard", 3)]


def test_a_finding_starts_a_new_chain() -> None:
    m = rails(LOOP)
    backlog = events.QueueBacklog(kernel="worker", stream="JOBS", consumer="w", pending=500,
                                  ack_pending=0, backlog=500, threshold=100)
    seen, t = answer_until_quiet(m, run(m, ev(backlog, 0)), 0)
    again = events.QueueBacklog(kernel="api", stream="JOBS", consumer="a", pending=500,
                                ack_pending=0, backlog=500, threshold=100)
    seen, _ = answer_until_quiet(m, run(m, ev(again, t + 10)), t + 10)
    assert [c.data.playbook for c in acts(seen, "clear_caches")] == ["start", "ping", "pong"]


def test_the_chain_depth_is_rebuilt_from_the_log() -> None:
    m = rails(LOOP)
    backlog = events.QueueBacklog(kernel="worker", stream="JOBS", consumer="w", pending=500,
                                  ack_pending=0, backlog=500, threshold=100)
    log = run(m, ev(backlog, 0))
    for t in (1, 2):  # start's and ping's commands answered; pong's is the third link
        c = commands(log)[-1]
        result = ev(events.CommandSucceeded(command_id=c.id, action=c.type,
                                            playbook=c.data.playbook), t)
        log += [result, *run(m, result)]
    third = commands(log)[-1]
    assert third.data.playbook == "pong"
    fresh = rebuilt(LOOP, [e for e in log if e.category != "command"])  # results and decisions
    out = run(fresh, ev(events.CommandSucceeded(command_id=third.id, action="clear_caches",
                                                playbook="pong"), 3))
    assert acts(out, "clear_caches") == []
    assert len(refused(out, "loop_guard")) == 1


# ---------------------------------------------------------------- on the bus


async def test_a_rail_refusal_is_published_as_decision_suppressed_also_after_a_restart(
        bus: Bus) -> None:
    host = f"r{uuid.uuid4().hex[:10]}"
    cmd_filter = topology.command_filter(host)

    async def start() -> tuple[Processor, asyncio.Event, asyncio.Task[None]]:
        proc = Processor(bus, playbooks(PER_KERNEL), consumer=f"proc-{host}", host_filter=host,
                         tick_s=0.05, settings=RAILS)
        stop = asyncio.Event()
        return proc, stop, asyncio.create_task(proc.run(stop))

    async def count(n: int) -> bool:
        return len(await stored(bus, topology.COMMANDS, cmd_filter)) >= n

    proc, stop, task = await start()
    await bus.publish_many([ev(gap(f"k{i}"), i, host=host) for i in range(30)])
    await wait_for(lambda: count(30))
    await wait_for(lambda: proc.consumer is not None and proc.consumer.pending == 0
                   and proc.consumer.idle.is_set())
    stop.set()
    await task
    # a new processor: only the log remembers the 30 commands of this minute
    proc, stop, task = await start()
    try:
        await bus.publish_many([ev(gap("k30"), 30, host=host), ev(gap("k31"), 31, host=host)])
        suppressed = await wait_for(lambda: stored(bus, topology.EVENTS, topology.event_filter(
            "decision", "decision_suppressed", host)))
        await wait_for(lambda: count(31))
        await wait_for(lambda: proc.consumer is not None and proc.consumer.pending == 0)
        await asyncio.sleep(0.2)  # anything extra would have been published by now
        assert {s.data.reason for s in suppressed} == {"rate_limit"}
        suppressed = await stored(bus, topology.EVENTS, topology.event_filter(
            "decision", "decision_suppressed", host))
        assert [s.data.target for s in suppressed] == [f"{host}/kernel=k30", f"{host}/kernel=k31"]
        cmds = await stored(bus, topology.COMMANDS, cmd_filter)
        assert [c.type for c in cmds] == ["restart_kernel"] * 30 + [ESCALATE]
        assert cmds[-1].id == safety_escalation_id("rate_limit", 30, host)
        assert cmds[-1].time == at(30)
    finally:
        stop.set()
        await task


def test_a_whole_kernel_restart_of_a_pool_goes_one_instance_at_a_time() -> None:
    m = rails(PER_KERNEL)
    run(m, *pool("worker", 2))
    out = run(m, ev(hung("worker", None), 10))  # type: ignore[arg-type]
    # the actuator restarts the two one after the other: one down at a time, within 1 of 2
    assert restarted_instances(out) == [None] and refused(out, "blast_radius") == []


def test_observe_mode_refuses_what_act_mode_would_and_no_longer() -> None:
    m = rails(PER_INSTANCE, settings=Settings(**{**RAILS.__dict__, "observe": True}))
    run(m, *pool("worker", 4))
    out = run(m, *(ev(hung("worker", i), 10 + i) for i in range(4)))
    def observed(out: list[Event]) -> list[int]:
        return [e.data.params["instance"] for e in of_type(out, "decision_observed")
                if e.data.action == "restart_kernel"]

    assert observed(out) == [0, 1]  # as act mode would
    assert len(refused(out, "blast_radius")) == 2
    # nothing answers an observed restart: it stops counting after a nominal restart time
    out = run(m, ev(hung("worker", 2), 45), ev(hung("worker", 3), 46))
    assert observed(out) == [2, 3]
