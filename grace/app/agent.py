"""`grace agent`: what belongs on one host of a fleet, as one process tree.

Boot phases 3 and 4 (the pre-boot code diff; snapshots verified, a first one taken
where none exists) run first, as in `grace up`. Then the actuator (kernels, this
host's commands) and the producers (the triggers that watch the same files and
kernels) run as child processes under Grace's watchdog (grace.stages), as `grace up`
runs them, and die with the agent (grace.parentdeath). The data dir's run lock
(grace.runlock) is held by the whole tree, so a second agent or a `grace up` on the
same data dir is refused. The
processor partitions and the projection run anywhere (`grace process --partition
I/N`, `grace project`) against the same NATS cluster. The agent heartbeats as
`agent` (`grace ping agent`) while the stages heartbeat under their own names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import click

from grace import events, runlock, topology
from grace.app import up
from grace.bus import Bus
from grace.cliutil import Context, fail, guarded, load_context, run_until_signal, stage_options
from grace.errors import BootBlocked
from grace.logwatch import LogWatcher, last_seq
from grace.stages import StageProcess, Watchdog, stage_argv, stop_stages

log = logging.getLogger(__name__)
NAME = "agent"
# start order: the actuator first (it starts the kernels the triggers watch); stop in reverse
AGENT_STAGES = ("act", "produce")
HEARTBEAT_EVERY = 5.0


async def run_agent(ctx: Context, config_path: str | None, stop: asyncio.Event) -> None:
    """Run this host's stages under the watchdog until `stop` is set or a stage crash-loops."""
    bus = await ctx.bus(NAME)
    logs = ctx.data_dir / "logs"
    stages = [StageProcess(name, stage_argv(name, config_path, ctx.url(), ctx.data_dir),
                           logs / f"{name}.log") for name in AGENT_STAGES]

    async def publish(payload: events.Payload) -> None:
        await bus.publish(bus.event(payload))

    dog = Watchdog(bus, stages, publish)
    beats: asyncio.Task[None] | None = None
    steps: list[StageProcess] = []
    try:
        await _boot_steps(ctx, config_path, bus, steps)
        for st in stages:
            st.start()
            click.echo(f"started {st.name} (pid {st.pid}, log {st.log_path})")
        beats = asyncio.create_task(_heartbeats(bus, stop))
        await dog.run(stop)
        if dog.failure is not None:
            raise dog.failure
    finally:
        stop.set()
        for step in steps:
            await asyncio.to_thread(step.stop, 5.0)
        if beats is not None:
            await beats
        for name, code in await stop_stages(stages):
            click.echo(f"stopped {name} (exit {code})")
        await bus.close()


async def _boot_steps(ctx: Context, config_path: str | None, bus: Bus,
                      steps: list[StageProcess]) -> None:
    """Boot phases 3 (pre-boot code diff) and 4 (snapshots verified, a first snapshot where
    none exists) before any kernel starts, as `grace up` runs them; a blocking failure stops."""
    watcher = LogWatcher(bus, await last_seq(bus) + 1, topology.event_filter(host=ctx.cfg.host)).start()
    try:
        for n, stage_name in up.BOOT_STEPS:
            step, code, result = await up.boot_step(ctx, config_path, n, stage_name, watcher,
                                                    watcher.wait, steps)
            if result is None:
                log.error("boot phase %d: `grace %s --boot-phase` published no result within %.0fs "
                          "(exit %s); see %s. Going on.", n, stage_name, up.BOOT_STEP_TIMEOUT_S,
                          code, step.log_path)
                continue
            click.echo(f"phase {n}/7 {up.PHASES[n - 1]:<20} "
                       f"{'ok' if result.status == 'completed' else 'FAILED'}  {result.detail}")
            if result.status == "failed" and result.blocks:
                raise BootBlocked(f"{result.detail} (boot phase {n}, {up.PHASES[n - 1]}: no stage "
                                  "started)")
    finally:
        await watcher.close()


async def _heartbeats(bus: Bus, stop: asyncio.Event) -> None:
    seq = 0
    while not stop.is_set():
        seq += 1
        with contextlib.suppress(Exception):  # a link down: the next beat says we are back
            await bus.heartbeat(NAME, "stage", seq=seq)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_EVERY)


@click.command()
@stage_options
@guarded
def agent(config_path: str | None, nats_url: str | None, data_dir: str | None) -> None:
    """Run this host's stages (actuator and producers) for a fleet on one NATS cluster.

    --nats takes a comma-separated list of the cluster's URLs. The processors and the
    projection run elsewhere: `grace process --partition I/N`, `grace project`.
    """
    ctx = load_context(config_path, nats_url, data_dir)
    if ctx.nats_url is None:
        fail("grace agent joins a fleet's NATS cluster but no URL is set: give --nats "
             "nats://node1:4222,nats://node2:4222 (or GRACE_NATS_URL, or nats.url in the config). "
             "On a single machine `grace up` runs everything with an embedded server.")
    # one run per data dir, held by every process of the tree (children inherit the descriptor)
    lock = runlock.run_lock(ctx.data_dir, f"grace agent, host {ctx.cfg.host}").acquire()
    os.environ[runlock.FD_ENV] = str(lock.inheritable())
    config_path = str(Path(config_path).resolve()) if config_path else None
    click.echo(f"grace agent on host {ctx.cfg.host}: stages {', '.join(AGENT_STAGES)}, NATS {ctx.url()}")
    try:
        run_until_signal(lambda stop: run_agent(ctx, config_path, stop))
    finally:
        lock.release()


def register(group: click.Group) -> None:
    group.add_command(agent)
