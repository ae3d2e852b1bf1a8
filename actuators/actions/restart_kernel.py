"""restart_kernel: a new process for one instance of a kernel (or for every instance), once.

With `instance` only that instance of the pool is restarted; its siblings keep
running untouched (a hung instance is not a reason to restart a healthy one).
"""

from __future__ import annotations

from actuators.actions.base import Action, ActionContext, Details, Target
from grace import events
from grace.errors import ActionError


async def plan(ctx: ActionContext, cmd: events.RestartKernel) -> Target:
    sup = ctx.kernels()
    sup.kernel(cmd.kernel)
    insts = sup.instances[cmd.kernel]
    if cmd.instance is not None:
        insts = [i for i in insts if i.index == cmd.instance]
        if not insts:
            have = ", ".join(str(i.index) for i in sup.instances[cmd.kernel]) or "none"
            raise ActionError(f"kernel {cmd.kernel!r} has no instance {cmd.instance} (instances: "
                              f"{have}); it may have been scaled down since the finding")
    return {"kernel": cmd.kernel, "instance": cmd.instance,
            "old_pids": {str(i.index): i.pid for i in insts}}


async def apply(ctx: ActionContext, cmd: events.RestartKernel, target: Target) -> Details:
    sup = ctx.kernels()
    old: dict[str, int] = target["old_pids"]
    if isinstance(old, list):  # an intent planned by an older Grace: pids of every instance
        old = {str(i.index): i.pid for i in sup.instances[cmd.kernel] if i.pid in old} or {
            str(i.index): 0 for i in sup.instances[cmd.kernel]}
    restarted, already = [], []
    for inst in list(sup.instances[cmd.kernel]):
        if str(inst.index) not in old:
            continue  # a sibling: not ours to touch
        if inst.pid and inst.pid != old[str(inst.index)]:
            already.append(inst.pid)  # a new process since the intent: restarted before a crash
            continue
        new = await sup.restart(cmd.kernel, inst.index)
        await ctx.note(f"instance {inst.index}: pid {inst.pid} -> {new.pid}")
        restarted.append(new.pid)
    return {**target, "new_pids": {str(i.index): i.pid for i in sup.instances[cmd.kernel]
                                   if str(i.index) in old},
            "restarted": len(restarted), "already_restarted": already}


def _target(c: events.RestartKernel) -> str:
    return c.kernel if c.instance is None else f"{c.kernel}[{c.instance}]"


ACTION = Action(events.RestartKernel, plan, apply, _target)
