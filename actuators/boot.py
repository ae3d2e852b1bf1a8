"""Boot phase 4 of `grace up`: snapshots verified, an initial snapshot where none exists.

`grace act --boot-phase` runs it and publishes its boot_phase events; `grace up`
waits for them in the log.
"""

from __future__ import annotations

import asyncio
import logging

from actuators import snapshots
from grace import events, integrity, manifest, protect
from grace.bus import Bus
from grace.cliutil import Context
from grace.errors import GraceError

log = logging.getLogger(__name__)
PHASE = 4


async def publish_phase(ctx: Context) -> int:
    """Run phase 4 and publish it (started, then completed or failed); the exit code:
    0 completed, 1 failed (a failed phase 4 does not stop the boot)."""
    bus = await ctx.bus("act")
    name = events.BOOT_PHASES[PHASE - 1]

    async def phase(status: str, detail: str = "") -> None:
        await bus.publish(bus.event(events.BootPhase(phase=PHASE, name=name, status=status,  # type: ignore[arg-type]
                                                     detail=detail)))
    try:
        await phase("started")
        try:
            await phase("completed", await verify_snapshots(ctx, bus))
        except Exception as exc:
            log.exception("boot phase %d failed", PHASE)
            await phase("failed", str(exc) if isinstance(exc, SnapshotsUnverified) else repr(exc))
            return 1
        return 0
    finally:
        await bus.close()


class SnapshotsUnverified(GraceError):
    """A last good copy is missing or does not match its manifest hash."""


def _verify(ctx: Context) -> tuple[list[str], list[str]]:
    """(protected files with no snapshot yet, problems with existing last good copies)."""
    cfg = ctx.cfg
    m = manifest.load(cfg)
    base = manifest.snapshot_dir(cfg)
    missing, problems = [], []
    for path, _kind in protect.protected_files(cfg):
        rel = protect.relative(cfg, path)
        entry = m.files.get(rel)
        if entry is None:
            missing.append(rel)
            continue
        copy = base / entry.latest
        if not copy.is_file():
            problems.append(f"{rel}: last good copy {copy} is missing")
        elif integrity.sha256_file(copy) != entry.sha256:
            problems.append(f"{rel}: last good copy {copy} does not match its manifest hash")
    return missing, problems


async def verify_snapshots(ctx: Context, bus: Bus) -> str:
    """Check every last good copy against the manifest; snapshot files that have none."""
    missing, problems = await asyncio.to_thread(_verify, ctx)
    taken: list[events.Payload] = []
    if missing:
        taken = await asyncio.to_thread(snapshots.take, ctx.cfg, missing)
        await bus.publish_many([bus.event(p) for p in taken])
    refused = [p for p in taken if isinstance(p, events.SnapshotRefused)]
    if problems:
        raise SnapshotsUnverified("; ".join(problems) + ". Restore the snapshot folder from backup or "
                           "re-accept the files with `grace snapshot accept PATH`.")
    ok = len(taken) - len(refused)
    extra = f", {len(refused)} refused (see snapshot_refused events)" if refused else ""
    return f"{ok} initial snapshot{'s' if ok != 1 else ''} taken{extra}; existing copies verified"
