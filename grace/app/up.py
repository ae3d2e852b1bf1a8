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

from grace import events, runlock, tokens, topology
from grace.app import talk
from grace.bus import Bus
from grace.cliutil import Context, guarded, load_context, run_until_signal, stage_options
from grace.embedded import EmbeddedServer, server_tls
from grace.errors import BootBlocked, ConfigError
from grace.logwatch import LogWatcher, last_seq
from grace.stages import STAGES, StageCrashLoop, StageProcess, Watchdog, stage_argv

log = logging.getLogger(__name__)
PHASES = events.BOOT_PHASES
KERNEL_START_TIMEOUT_S = 60.0
STAGE_UP_TIMEOUT_S = 30.0
WARMUP_TIMEOUT_S = 120.0
BOOT_STEP_TIMEOUT_S = 300.0  # phase 3 compiles what changed in the code tree; 4 hashes the models
# phases 3 and 4 are each published by a stage run once with --boot-phase
BOOT_STEPS = ((3, "produce"), (4, "act"))
STEP_RESULT_GRACE_S = 5.0  # the step has exited: how long its published result may take to arrive


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
        self.echo(n, status, detail)

    def echo(self, n: int, status: str, detail: str = "") -> None:
        """The terminal line of a phase (a stage publishes phases 3 and 4 itself)."""
        if status != "started":
            mark = "ok" if status == "completed" else "FAILED"
            click.echo(f"[{time.monotonic() - self.t0:6.2f}s] phase {n}/7 {PHASES[n - 1]:<20} {mark}"
                       f"{'  ' + detail if detail else ''}")


def validate_playbooks(ctx: Context) -> str:
    """Phase 1's playbook check, exactly `grace playbooks validate`'s; raises ConfigError (exit 2)
    listing every file:line problem, before anything is started."""
    from processors import stage, validate

    targets: list[str | Path] = list(stage.playbook_paths(ctx))
    missing = [str(p) for p in targets if not Path(p).exists()]
    if missing:
        raise ConfigError(f"playbooks: no such file or folder: {', '.join(missing)}. Fix the "
                          "config's `playbooks` list")
    files = validate.playbook_files(targets)
    playbooks, errors = validate.check_paths(targets)
    if errors:
        raise ConfigError("\n".join(str(e) for e in errors) + f"\n{len(errors)} error(s) in "
                          f"{len(files)} playbook file(s): fix them (`grace playbooks validate` "
                          "checks the same) and run `grace up` again")
    return f"{len(playbooks)} playbooks in {len(files)} file(s)"


def _phase_result(n: int) -> Callable[[list[events.Event]], events.BootPhase | None]:
    """Phase `n`'s outcome (completed or failed) in the events seen, if it came."""
    def result(seen: list[events.Event]) -> events.BootPhase | None:
        return next((e.data for e in seen if isinstance(e.data, events.BootPhase)
                     and e.data.phase == n and e.data.status != "started"), None)
    return result


def _phase_ended(n: int, step: StageProcess | None = None) -> Callable[[list[events.Event]], bool]:
    """Phase `n`'s outcome is in the events seen (or the stage run for it has exited)."""
    result = _phase_result(n)
    return lambda seen: result(seen) is not None or (step is not None and step.exited() is not None)


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


Wait = Callable[[Callable[[list[events.Event]], bool], float], Awaitable[bool]]


async def boot_step(ctx: Context, config_path: str | None, n: int, stage_name: str,
                    watcher: LogWatcher, wait: Wait, steps: list[StageProcess]
                    ) -> tuple[StageProcess, int | None, events.BootPhase | None]:
    """Run `grace <stage_name> --boot-phase` (phase `n`) to its end; the step (added to `steps`),
    its exit code and the phase's result in the log (None: it published none in time)."""
    step = StageProcess(f"{stage_name} --boot-phase", [*stage_argv(
        stage_name, config_path, ctx.url(), ctx.data_dir), "--boot-phase"],
        ctx.data_dir / "logs" / f"{stage_name}.log")
    steps.append(step)
    step.start()
    await wait(_phase_ended(n, step), BOOT_STEP_TIMEOUT_S)
    if step.exited() is not None:  # its result is acked in the log: let the watcher see it
        await wait(_phase_ended(n), STEP_RESULT_GRACE_S)
    code = await asyncio.to_thread(step.stop, 5.0)
    return step, code, _phase_result(n)(watcher.seen)


async def boot_and_run(ctx: Context, config_path: str | None, stop: asyncio.Event,
                       playbooks: str = "", quiet: bool = False) -> None:
    bus = await ctx.bus("up")
    boot = Boot(bus)
    stages: list[StageProcess] = []
    watcher = LogWatcher(bus, await last_seq(bus) + 1, f"grace.events.*.*.{ctx.cfg.host}").start()
    reason = "shutdown"
    dog_task: asyncio.Task[None] | None = None
    steps: list[StageProcess] = []
    talker: talk.Talker | None = None
    try:
        await boot.phase(1, "completed", f"{len(ctx.cfg.kernels)} kernels, host {ctx.cfg.host}"
                         f"{', ' + playbooks if playbooks else ''}")
        await boot.phase(2, "completed", f"NATS {ctx.url()}, streams ensured")
        logs = ctx.data_dir / "logs"
        stages.extend(StageProcess(name, stage_argv(name, config_path, ctx.url(), ctx.data_dir),
                                   logs / f"{name}.log") for name in STAGES)
        by_name = {s.name: s for s in stages}
        # the watchdog runs from the start, so a stage crash-looping during boot stops it loudly
        dog = Watchdog(bus, stages, boot.publish)
        dog_task = asyncio.create_task(dog.run(stop))

        async def wait(done: Callable[[list[events.Event]], bool], timeout: float) -> bool:
            ok = await watcher.wait(lambda seen: dog.failure is not None or done(seen), timeout)
            if dog.failure is not None:
                raise dog.failure
            return ok
        # every stage's first heartbeat: phase 7 says monitoring is active only when all are up
        beats = {name: await _first_heartbeat(bus, ctx.cfg.host, name) for name in STAGES}
        # the projection first: a boot that stops at phase 3 or 4 still reaches the dashboard file
        projecting = beats["project"]
        by_name["project"].start()
        for n, stage_name in BOOT_STEPS:
            step, code, result = await boot_step(ctx, config_path, n, stage_name, watcher, wait, steps)
            if result is None:
                await boot.phase(n, "failed", f"`grace {stage_name} --boot-phase` published no result "
                                 f"within {BOOT_STEP_TIMEOUT_S:.0f}s (exit {code}); see {step.log_path}")
                continue
            boot.echo(n, result.status, result.detail)
            if result.status == "failed" and result.blocks:  # the phase forbids going on
                reason = f"boot stopped at phase {n} ({PHASES[n - 1]})"
                # a projection stopped before it is up would leave no dashboard file: let it come up
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(projecting.wait(), STAGE_UP_TIMEOUT_S)
                raise BootBlocked(result.detail)
        await boot.phase(5, "started")
        by_name["act"].start()
        ok = await wait(_kernels_up(ctx), KERNEL_START_TIMEOUT_S)
        await boot.phase(5, "completed" if ok else "failed",
                         _held_at_boot(watcher.seen) if ok else
                         f"not every kernel started within {KERNEL_START_TIMEOUT_S:.0f}s; "
                         f"see {logs / 'act.log'}")
        await boot.phase(6, "started")
        by_name["process"].start()
        by_name["produce"].start()
        ok = await wait(_first_cycle, WARMUP_TIMEOUT_S)
        await boot.phase(6, "completed" if ok else "failed",
                         "" if ok else f"the first trigger cycle did not finish; see {logs / 'produce.log'}")
        await watcher.close()
        silent = await _stages_up(beats, dog, STAGE_UP_TIMEOUT_S)
        await boot.phase(7, "failed" if silent else "completed",
                         f"stage(s) {', '.join(silent)} sent no heartbeat within "
                         f"{STAGE_UP_TIMEOUT_S:.0f}s; see {logs}" if silent else f"stage logs in {logs}")
        talker = None if quiet else await talk.Talker(bus, ctx.cfg.host).start()
        await dog_task
        if dog.failure is not None:
            raise dog.failure
    except StageCrashLoop as exc:
        reason = f"stage crash loop: {exc}"
        raise
    finally:
        for step in steps:
            await asyncio.to_thread(step.stop, 5.0)
        if dog_task is not None and not dog_task.done():
            stop.set()
            await dog_task
        await watcher.close()
        if talker is not None:
            await talker.close()
        stopped_logged = False
        for st in reversed([s for s in stages if s.pid is not None]):  # those started
            if st.name == "project":  # the projection goes last and takes the stop event with it
                stopped_logged = await _log_stop(boot, reason)
            code = await asyncio.to_thread(st.stop)
            click.echo(f"stopped {st.name} (exit {code})")
        if not stopped_logged:
            await _log_stop(boot, reason)
        await bus.close()


async def _stages_up(beats: dict[str, asyncio.Event], dog: Watchdog, timeout: float) -> list[str]:
    """The stages still silent after `timeout`; raises the watchdog's failure (a crash loop)."""
    deadline = time.monotonic() + timeout
    # polls the watchdog's failure and the heartbeat events, both set by other tasks
    while (dog.failure is None and time.monotonic() < deadline  # noqa: ASYNC110
           and not all(e.is_set() for e in beats.values())):
        await asyncio.sleep(0.1)
    if dog.failure is not None:
        raise dog.failure
    return [name for name, e in beats.items() if not e.is_set()]


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
@click.option("--quiet", is_flag=True, envvar="GRACE_QUIET", show_envvar=True,
              help="After boot, print nothing (env GRACE_QUIET). Default: one line per incident "
                   "step (finding, action or suppression, result, verification).")
@guarded
def up(config_path: str | None, nats_url: str | None, data_dir: str | None, observe: bool,
       quiet: bool) -> None:
    """Start the whole pipeline: embedded NATS (when no URL) and the four stages."""
    ctx = load_context(config_path, nats_url, data_dir)
    try:
        playbooks = validate_playbooks(ctx)
    except ConfigError as exc:
        click.echo(f"[{0:6.2f}s] phase 1/7 {PHASES[0]:<20} FAILED  {str(exc).splitlines()[0]}")
        raise
    # one run per data dir, held by every process of the run (children inherit the descriptor)
    lock = runlock.run_lock(ctx.data_dir).acquire()
    os.environ[runlock.FD_ENV] = str(lock.inheritable())
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
                                tls=server_tls(ctx.cfg), die_with_parent=True)

    try:
        if server is not None:
            ctx.nats_url = server.start()
            click.echo(f"embedded NATS ready at {ctx.nats_url} (store {server.dir / 'store'})")
        run_until_signal(lambda stop: boot_and_run(ctx, config_path, stop, playbooks, quiet))
    finally:
        if server is not None:
            server.stop()
            click.echo("embedded NATS stopped")
        lock.release()


def register(group: click.Group) -> None:
    group.add_command(up)
