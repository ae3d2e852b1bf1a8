"""restart_kernel: every instance of a kernel gets a new process, once."""

from __future__ import annotations

from grace import events

from actuators.actions.base import Action, ActionContext, Details, Target


async def plan(ctx: ActionContext, cmd: events.RestartKernel) -> Target:
    sup = ctx.kernels()
    sup.kernel(cmd.kernel)
    return {"kernel": cmd.kernel, "old_pids": sup.pids(cmd.kernel)}


async def apply(ctx: ActionContext, cmd: events.RestartKernel, target: Target) -> Details:
    sup = ctx.kernels()
    old = set(target["old_pids"])
    restarted, already = [], []
    for inst in list(sup.instances[cmd.kernel]):
        if inst.pid and inst.pid not in old:
            already.append(inst.pid)  # a new process since the intent: restarted before a crash
            continue
        new = await sup.restart(cmd.kernel, inst.index)
        await ctx.note(f"instance {inst.index}: pid {inst.pid} -> {new.pid}")
        restarted.append(new.pid)
    return {**target, "new_pids": sup.pids(cmd.kernel), "restarted": len(restarted),
            "already_restarted": already}


ACTION = Action(events.RestartKernel, plan, apply, lambda c: c.kernel)
