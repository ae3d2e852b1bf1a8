"""scale_workers: run an absolute number of a pool kernel's workers."""

from __future__ import annotations

from actuators.actions.base import Action, ActionContext, Details, Target
from grace import events
from grace.errors import ActionError


async def plan(ctx: ActionContext, cmd: events.ScaleWorkers) -> Target:
    sup = ctx.kernels()
    k = sup.kernel(cmd.kernel)
    if k.pool is None:
        raise ActionError(f"kernel {cmd.kernel!r} has no worker pool; give it `pool: {{min, max}}` "
                          "in the config to scale it")
    current = sup.count(cmd.kernel)
    wanted = cmd.to if cmd.to is not None else current + cmd.by
    # the absolute target is fixed here, once: a redelivery scales to it, never by `by` again
    return {"kernel": cmd.kernel, "from": current, "to": max(k.pool.min, min(k.pool.max, wanted)),
            "requested": wanted}


async def apply(ctx: ActionContext, cmd: events.ScaleWorkers, target: Target) -> Details:
    sup = ctx.kernels()
    before, after = await sup.scale(target["kernel"], int(target["to"]))
    return {**target, "count_before_apply": before, "count": after, "pids": sup.pids(cmd.kernel)}


ACTION = Action(events.ScaleWorkers, plan, apply, lambda c: c.kernel)
