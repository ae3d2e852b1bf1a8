"""shed_load / resume_load: suspend non-critical kernels under pressure, resume them after."""

from __future__ import annotations

from grace import events
from grace.errors import ActionError

from actuators.actions.base import Action, ActionContext, Details, Target


async def plan_shed(ctx: ActionContext, cmd: events.ShedLoad) -> Target:
    sup = ctx.kernels()
    names = cmd.kernels or [k.name for k in ctx.cfg.kernels if not k.critical]
    for name in names:
        if sup.kernel(name).critical:
            raise ActionError(f"kernel {name!r} is critical: shed_load never suspends a critical "
                              "kernel (remove it from the command's kernels)")
    return {"kernels": names}


async def apply_shed(ctx: ActionContext, cmd: events.ShedLoad, target: Target) -> Details:
    sup = ctx.kernels()
    done = {name: await sup.suspend(name) for name in target["kernels"]}
    return {**target, "suspended_pids": done}


async def plan_resume(ctx: ActionContext, cmd: events.ResumeLoad) -> Target:
    sup = ctx.kernels()
    for name in cmd.kernels:
        sup.kernel(name)
    names = cmd.kernels or [k.name for k in ctx.cfg.kernels
                            if any(i.state == "suspended" for i in sup.instances[k.name])]
    return {"kernels": names}


async def apply_resume(ctx: ActionContext, cmd: events.ResumeLoad, target: Target) -> Details:
    sup = ctx.kernels()
    done = {name: await sup.resume(name) for name in target["kernels"]}
    return {**target, "resumed_pids": done}


def _names(c: events.ShedLoad | events.ResumeLoad) -> str:
    return ",".join(c.kernels) or "non-critical"


SHED = Action(events.ShedLoad, plan_shed, apply_shed, _names)
RESUME = Action(events.ResumeLoad, plan_resume, apply_resume, _names)
