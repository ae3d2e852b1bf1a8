"""clear_caches: empty the configured cache folders (their contents, never the folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

from actuators.actions.base import Action, ActionContext, Details, Target
from grace import events, manifest, protect
from grace.errors import ConfinementError


def _allowed(ctx: ActionContext) -> dict[Path, str]:
    root = protect.root(ctx.cfg)
    snaps = manifest.snapshot_dir(ctx.cfg)
    out: dict[Path, str] = {}
    for c in ctx.cfg.caches:
        p = ctx.cfg.path(c).resolve()
        # a cache entry that covers the config folder or the snapshots would wipe too much
        if root.is_relative_to(p) or snaps.is_relative_to(p):
            continue
        out[p] = c
    return out


async def plan(ctx: ActionContext, cmd: events.ClearCaches) -> Target:
    allowed = _allowed(ctx)
    if not cmd.paths:
        return {"dirs": [str(p) for p in allowed]}
    dirs = []
    for raw in cmd.paths:
        p = ctx.cfg.path(raw).resolve()
        if p not in allowed:
            raise ConfinementError(f"{raw!r} ({p}) is not one of the configured caches "
                                   f"({', '.join(ctx.cfg.caches) or 'none'}): refused")
        dirs.append(str(p))
    return {"dirs": dirs}


async def apply(ctx: ActionContext, cmd: events.ClearCaches, target: Target) -> Details:
    removed, freed = 0, 0
    for d in map(Path, target["dirs"]):
        if not d.is_dir():
            continue
        for child in d.iterdir():
            if child.is_symlink() or not child.is_dir():
                freed += child.lstat().st_size
                child.unlink(missing_ok=True)  # a symlink is removed, never followed
            else:
                freed += sum(f.lstat().st_size for f in child.rglob("*") if not f.is_dir())
                shutil.rmtree(child, ignore_errors=True)
            removed += 1
    return {**target, "removed": removed, "bytes_freed": freed}


ACTION = Action(events.ClearCaches, plan, apply, lambda c: ",".join(c.paths) or "all caches")
