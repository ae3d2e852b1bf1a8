"""take_snapshot: snapshot the protected files that pass integrity, then prune."""

from __future__ import annotations

from actuators import snapshots
from actuators.actions.base import Action, ActionContext, Details, Target
from grace import events
from grace.errors import ActionError


async def plan(ctx: ActionContext, cmd: events.TakeSnapshot) -> Target:
    chosen = snapshots.targets(ctx.cfg, cmd.paths)  # confinement errors fail the command here
    return {"files": len(chosen)}


async def apply(ctx: ActionContext, cmd: events.TakeSnapshot, target: Target) -> Details:
    evs = snapshots.take(ctx.cfg, cmd.paths, now=ctx.clock) + snapshots.prune(ctx.cfg, now=ctx.clock)
    for i, ev in enumerate(evs):
        await ctx.publish(ev, ctx.event_id("snapshot", i))
    refused = [{"path": e.path, "reason": e.reason} for e in evs if isinstance(e, events.SnapshotRefused)]
    details = {"taken": sum(isinstance(e, events.SnapshotTaken) for e in evs), "refused": refused,
               "pruned": sum(isinstance(e, events.SnapshotPruned) for e in evs)}
    if cmd.paths and refused:
        raise ActionError("snapshot refused: " + "; ".join(f"{r['path']}: {r['reason']}" for r in refused))
    return details


ACTION = Action(events.TakeSnapshot, plan, apply, lambda c: ",".join(c.paths) or "all protected files")
