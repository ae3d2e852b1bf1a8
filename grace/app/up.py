"""`grace up`: the whole pipeline on this machine, booted in seven phases.

1 config validated  2 bus ready  3 pre-boot code diff  4 snapshots verified
5 kernels started   6 warm-up (first full trigger cycle)  7 monitoring active

Each phase is a boot_phase event in the log and a line on the terminal. A file
under code.root that does not compile stops boot at phase 3 (failed boot_phase,
exit 1, no kernel started) unless code.block_boot_on_syntax_error is false. The
projection starts before phase 3, so even a stopped boot reaches the dashboard
file. The four stages run as child processes under Grace's own watchdog
(grace.stages), so one crashing never takes the others down. Ctrl-C or SIGTERM stops them in reverse
order: producers, processor, actuator (kernels stopped), projection (dashboard
file published); then the embedded NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import click

from grace import events, tokens, topology
from grace.bus import Bus
from grace.cliutil import Context, guarded, load_context, run_until_signal, stage_options
from grace.embedded import EmbeddedServer, server_tls
from grace.errors import BootBlocked
from grace.logwatch import LogWatcher, last_seq
from grace.stages import STAGES, StageProcess, Watchdog, stage_argv

log = logging.getLogger(__name__)
PHASES = ("config validated", "bus ready", "pre-boot code diff", "snapshots verified",
          "kernels started", "warm-up", "monitoring active")
KERNEL_START_TIMEOUT_S = 60.0
STAGE_UP_TIMEOUT_S = 30.0
WARMUP_TIMEOUT_S = 120.0

# Phase 3 and 4 work lives in the stages; `grace up` is the composition root.
BootStep = Callable[[Context, Bus], Awaitable[str]]


class Boot:
    """Publishes boot_phase events and prints one line per phase."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.t0 = time.monotonic()

    async def publish(self, payload: events.Payload) -> None:
        await self.bus.publish(self.bus.event(payload))

    async def phase(self, n: int, status: str, detail: str = "") -> None:
        await self.publish(events.BootPhase(phase=n, name=PHASES[n - 1], status=status,  # type: ignore[arg-type]
                                            detail=detail))
        if status != "started":
            mark = "ok" if status == "completed" else "FAILED"
            click.echo(f"[{time.monotonic() - self.t0:6.2f}s] phase {n}/7 {PHASES[n - 1]:<20} {mark}"
                       f"{'  ' + detail if detail else ''}")


async def code_diff_step(ctx: Context, bus: Bus) -> str:
    from producers.boot import pre_boot_code_diff

    return await pre_boot_code_diff(ctx, bus)


async def snapshot_step(ctx: Context, bus: Bus) -> str:
    from actuators.boot import verify_snapshots

    return await verify_snapshots(ctx, bus)


def _kernels_up(ctx: Context) -> Callable[[list[events.Event]], bool]:
    want = {(k.name, i) for k in ctx.cfg.kernels for i in range(k.pool.min if k.pool else 1)}

    def done(seen: list[events.Event]) -> bool:
        # a kernel an operator's hold keeps stopped is accounted for: it starts when the hold ends
        started = {(e.data.kernel, e.data.instance) for e in seen
                   if isinstance(e.data, (events.KernelStarted, events.KernelHeld))
                   and e.host == ctx.cfg.host}
        return want <= started
    return done


def _held_at_boot(seen: list[events.Event]) -> str:
    """The boot line's note on kernels not started because a hold covers them."""
    held = [e.data for e in seen if isinstance(e.data, events.KernelHeld)]
    return "; ".join(f"{d.kernel}[{d.instance}] held by hold {d.hold_id} ({d.target}, by {d.by}, "
                     f"until {d.until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}): starts when the hold ends"
                     for d in held)


def _first_cycle(seen: list[events.Event]) -> bool:
    started = next((e.data for e in seen if isinstance(e.data, events.MonitorStarted)), None)
    if started is None:
        return False
    checked = {e.data.trigger for e in seen
               if isinstance(e.data, (events.CheckCompleted, events.CheckFailed))}
    return set(started.triggers) <= checked


async def boot_and_run(ctx: Context, config_path: str | None, stop: asyncio.Event) -> None:
    bus = await ctx.bus("up")
    boot = Boot(bus)
    stages: list[StageProcess] = []
    watcher = LogWatcher(bus, await last_seq(bus) + 1, f"grace.events.*.*.{ctx.cfg.host}").start()
    reason = "shutdown"
    try:
        await boot.phase(1, "completed", f"{len(ctx.cfg.kernels)} kernels, host {ctx.cfg.host}")
        await boot.phase(2, "completed", f"NATS {ctx.url()}, streams ensured")
        logs = ctx.data_dir / "logs"
        stages.extend(StageProcess(name, stage_argv(name, config_path, ctx.url(), ctx.data_dir),
                                   logs / f"{name}.log") for name in STAGES)
        by_name = {s.name: s for s in stages}
        # the projection first: a boot that stops at phase 3 or 4 still reaches the dashboard file
        projecting = await _first_heartbeat(bus, ctx.cfg.host, "project")
        by_name["project"].start()
        for n, step in ((3, code_diff_step), (4, snapshot_step)):
            await boot.phase(n, "started")
            try:
                await boot.phase(n, "completed", await step(ctx, bus))
            except BootBlocked as exc:  # the phase forbids going on: no kernel has started
                await boot.phase(n, "failed", str(exc))
                reason = f"boot stopped at phase {n} ({PHASES[n - 1]})"
                # a projection stopped before it is up would leave no dashboard file: let it come up
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(projecting.wait(), STAGE_UP_TIMEOUT_S)
                raise
            except Exception as exc:  # a failed phase is reported, boot goes on
                log.exception("boot phase %d failed", n)
                await boot.phase(n, "failed", repr(exc))
        await boot.phase(5, "started")
        by_name["act"].start()
        ok = await watcher.wait(_kernels_up(ctx), KERNEL_START_TIMEOUT_S)
        await boot.phase(5, "completed" if ok else "failed",
                         _held_at_boot(watcher.seen) if ok else
                         f"not every kernel started within {KERNEL_START_TIMEOUT_S:.0f}s; "
                         f"see {logs / 'act.log'}")
        await boot.phase(6, "started")
        by_name["process"].start()
        by_name["produce"].start()
        ok = await watcher.wait(_first_cycle, WARMUP_TIMEOUT_S)
        await boot.phase(6, "completed" if ok else "failed",
                         "" if ok else f"the first trigger cycle did not finish; see {logs / 'produce.log'}")
        await watcher.close()
        await boot.phase(7, "completed", f"stage logs in {logs}")
        await Watchdog(bus, stages, boot.publish).run(stop)
    finally:
        await watcher.close()
        stopped_logged = False
        for st in reversed([s for s in stages if s.pid is not None]):  # those started
            if st.name == "project":  # the projection goes last and takes the stop event with it
                stopped_logged = await _log_stop(boot, reason)
            code = await asyncio.to_thread(st.stop)
            click.echo(f"stopped {st.name} (exit {code})")
        if not stopped_logged:
            await _log_stop(boot, reason)
        await bus.close()


async def _first_heartbeat(bus: Bus, host: str, stage: str) -> asyncio.Event:
    """An event set by the stage's first heartbeat (it is up and handles SIGTERM)."""
    seen = asyncio.Event()
    sub = None

    async def on_beat(_msg: Any) -> None:
        seen.set()
        if sub is not None:
            await sub.unsubscribe()

    sub = await bus.nc.subscribe(topology.heartbeat_subject(host, stage), cb=on_beat)
    return seen


async def _log_stop(boot: Boot, reason: str = "shutdown") -> bool:
    try:
        await boot.publish(events.SystemStopped(reason=reason))
    except Exception as exc:  # noqa: BLE001 - NATS gone: nothing more to record
        log.warning("could not record system_stopped: %r", exc)
        return False
    return True


@click.command()
@stage_options
@click.option("--observe", is_flag=True,
              help="Observe mode for a first deployment: every playbook records what it would do "
                   "(decision_observed) and nothing is sent. Same as processor.mode: observe.")
@guarded
def up(config_path: str | None, nats_url: str | None, data_dir: str | None, observe: bool) -> None:
    """Start the whole pipeline: embedded NATS (when no URL) and the four stages."""
    ctx = load_context(config_path, nats_url, data_dir)
    if observe or ctx.cfg.processor.mode == "observe":
        os.environ["GRACE_OBSERVE"] = "1"  # the processor stage (and its restarts) read it
        click.echo("observe mode: playbooks record what they would do (decision_observed); "
                   "no command is sent")
    token, created = tokens.ensure_token(ctx.data_dir)
    click.echo(f"operator token {'written to' if created else 'in'} {token}: the console's actions "
               "and the HTTP intake ask for it (Authorization: Bearer)")
    if ctx.cfg.http.listen:
        host, _, port = ctx.cfg.http.listen.rpartition(":")
        host = host.strip("[]")
        click.echo(f"console: http://{host if host not in ('', '0.0.0.0', '::') else '127.0.0.1'}"  # noqa: S104 - compared, not bound
                   f":{port}/")
    config_path = str(Path(config_path).resolve()) if config_path else None
    server: EmbeddedServer | None = None
    if ctx.nats_url is None:
        extra = ""
        if ctx.cfg.nats.auth:
            from grace import auth

            extra = auth.server_conf(ctx.data_dir)
        server = EmbeddedServer(ctx.data_dir, ctx.cfg.nats.port, sync=ctx.cfg.nats.sync, extra_conf=extra,
                                tls=server_tls(ctx.cfg))
        ctx.nats_url = server.start()
        click.echo(f"embedded NATS ready at {ctx.nats_url} (store {server.dir / 'store'})")

    try:
        run_until_signal(lambda stop: boot_and_run(ctx, config_path, stop))
    finally:
        if server is not None:
            server.stop()
            click.echo("embedded NATS stopped")


def register(group: click.Group) -> None:
    group.add_command(up)
