"""restore_model_weights / restore_from_snapshot: the last good copy back over a protected file."""

from __future__ import annotations

from typing import Any

from actuators import snapshots
from actuators.actions.base import Action, ActionContext, Details, Target
from grace import events, manifest, protect
from grace.errors import ActionError
from grace.protect import Kind


def _planner(kind: Kind | None) -> Any:
    async def plan(ctx: ActionContext, cmd: Any) -> Target:
        resolved, found = protect.confine(ctx.cfg, cmd.path)
        if kind is not None and found != kind:
            raise ActionError(f"{cmd.path} is a protected {found} file, not a model; "
                              "use restore_from_snapshot")
        rel = protect.relative(ctx.cfg, resolved)
        baseline = manifest.load(ctx.cfg).baseline(rel)
        if baseline is None:
            raise ActionError(f"no snapshot of {rel}; take one (`grace snapshot take`) while it is good")
        return {"path": rel, "sha256": baseline}
    return plan


def _applier(kind: Kind | None) -> Any:
    async def apply(ctx: ActionContext, cmd: Any, target: Target) -> Details:
        ev, written = snapshots.restore(ctx.cfg, target["path"], kind)
        if ev.sha256 != target["sha256"]:
            raise ActionError(f"the baseline of {target['path']} changed since the command was "
                              f"planned ({target['sha256'][:12]}… -> {ev.sha256[:12]}…); not restored")
        if written:
            await ctx.note(f"wrote {target['path']} from {ev.snapshot}")
            await ctx.publish(ev, ctx.event_id("snapshot_restored"))
        return {**target, "snapshot": ev.snapshot, "written": written}
    return apply


MODEL = Action(events.RestoreModelWeights, _planner("model"), _applier("model"), lambda c: c.path)
ANY = Action(events.RestoreFromSnapshot, _planner(None), _applier(None), lambda c: c.path)
