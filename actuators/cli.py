"""CLI of the actuator stage: `grace act` and `grace snapshot take|list|accept|restore`."""

from __future__ import annotations

import click

from grace import events, manifest
from grace.cliutil import Context, guarded, load_context, run, run_until_signal, stage_options
from grace.errors import ConnectFailed, ExitCode, GraceError


@click.command()
@stage_options
@click.option("--boot-phase", is_flag=True,
              help="Run boot phase 4 (snapshots verified) only, publish it to the log and exit "
                   "(0 completed, 1 failed); `grace up` runs this before any kernel starts.")
@guarded
def act(config_path: str | None, nats_url: str | None, data_dir: str | None,
        boot_phase: bool) -> None:
    """Run the actuator: kernels, this host's commands, the coding-agent handler."""
    from actuators.stage import run_stage
    from grace import runlock

    ctx = load_context(config_path, nats_url, data_dir)
    if boot_phase:
        from actuators.boot import publish_phase

        raise SystemExit(run(publish_phase(ctx)))
    # one actuator per host and data dir: two would supervise (and start) the same kernels
    lock = runlock.actuator_lock(ctx.data_dir, ctx.cfg.host).acquire()
    try:
        run_until_signal(lambda stop: run_stage(ctx, stop))
    finally:
        lock.release()


async def _publish_if_reachable(ctx: Context, payloads: list[events.Payload]) -> None:
    """Snapshot CLI events go to the log when NATS is reachable; files are the truth anyway."""
    if not payloads:
        return
    try:
        bus = await ctx.bus("cli")
    except (ConnectFailed, GraceError) as exc:
        click.echo(f"note: events not published ({exc})", err=True)
        return
    try:
        await bus.publish_many([bus.event(p) for p in payloads])
    finally:
        await bus.close()


def _show(p: events.Payload) -> str:
    if isinstance(p, events.SnapshotTaken):
        return f"taken     {p.path} -> {p.snapshot} ({p.sha256[:12]}…)"
    if isinstance(p, events.SnapshotRefused):
        return f"REFUSED   {p.path}: {p.reason}"
    if isinstance(p, events.SnapshotPruned):
        return f"pruned    {p.snapshot} ({p.reason})"
    if isinstance(p, events.SnapshotAccepted):
        return f"accepted  {p.path} as {p.sha256[:12]}… (was {(p.previous_sha256 or 'none')[:12]})"
    if isinstance(p, events.SnapshotRestored):
        return f"restored  {p.path} from {p.snapshot} ({p.sha256[:12]}…)"
    return repr(p)


@click.group()
def snapshot() -> None:
    """Snapshots of the protected model and config files."""


@snapshot.command("take")
@click.argument("paths", nargs=-1)
@stage_options
@guarded
def take_cmd(paths: tuple[str, ...], config_path: str | None, nats_url: str | None,
             data_dir: str | None) -> None:
    """Snapshot the protected files (or PATHS) that pass integrity, then prune."""
    from actuators import snapshots

    ctx = load_context(config_path, nats_url, data_dir)
    out = snapshots.take(ctx.cfg, list(paths)) + snapshots.prune(ctx.cfg)
    for p in out:
        click.echo(_show(p))
    if not out:
        click.echo("no protected files (protect.models / protect.configs match nothing)")
    run(_publish_if_reachable(ctx, out))
    if any(isinstance(p, events.SnapshotRefused) for p in out):
        raise SystemExit(int(ExitCode.FINDINGS))


@snapshot.command("list")
@click.option("-c", "--config", "config_path", envvar="GRACE_CONFIG", help="grace.yaml (env GRACE_CONFIG).")
@guarded
def list_cmd(config_path: str | None) -> None:
    """Every protected file's baseline and its copies."""
    ctx = load_context(config_path)
    m = manifest.load(ctx.cfg)
    if not m.files:
        click.echo(f"no snapshots in {manifest.snapshot_dir(ctx.cfg)}")
    for rel, e in sorted(m.files.items()):
        click.echo(f"{rel}  [{e.kind}]  baseline {e.sha256[:12]}…  latest {e.latest}")
        for c in e.copies:
            mark = "" if c.sha256 == e.sha256 else "  (old baseline)"
            click.echo(f"    {c.taken_at}  {c.file}  {c.size} B{mark}")


@snapshot.command("accept")
@click.argument("path")
@stage_options
@guarded
def accept_cmd(path: str, config_path: str | None, nats_url: str | None, data_dir: str | None) -> None:
    """Bless PATH's current content as its new baseline (an intended change)."""
    from actuators import snapshots

    ctx = load_context(config_path, nats_url, data_dir)
    out = snapshots.accept(ctx.cfg, path)
    for p in out:
        click.echo(_show(p))
    run(_publish_if_reachable(ctx, out))


@snapshot.command("restore")
@click.argument("path")
@stage_options
@guarded
def restore_cmd(path: str, config_path: str | None, nats_url: str | None, data_dir: str | None) -> None:
    """Put PATH's last good copy back (verified against the manifest)."""
    from actuators import snapshots

    ctx = load_context(config_path, nats_url, data_dir)
    ev, written = snapshots.restore(ctx.cfg, path)
    if not written:
        click.echo(f"{ev.path} already matches its baseline ({ev.sha256[:12]}…); nothing written")
        return
    click.echo(_show(ev))
    run(_publish_if_reachable(ctx, [ev]))


def register(group: click.Group) -> None:
    group.add_command(act)
    group.add_command(snapshot)
