"""shed_load / resume_load: suspend the kernels config allows under CPU saturation, resume after.

Only kernels named in `shed.kernels` (non-critical, checked at config load) are
ever suspended: shedding is for CPU, where a stopped process gives its cores
back; memory pressure restarts its culprit instead (a stopped process frees no
memory). The supervisor resumes every shed kernel after `shed.max_s` by itself.
"""

from __future__ import annotations

from actuators.actions.base import Action, ActionContext, Details, Target
from grace import events
from grace.errors import ActionError


async def plan_shed(ctx: ActionContext, cmd: events.ShedLoad) -> Target:
    sup = ctx.kernels()
    allowed = ctx.cfg.shed.kernels
    if not allowed:
        raise ActionError("shed_load: no kernel may be shed; name the non-critical kernels Grace "
                          "may suspend under CPU saturation in `shed.kernels` of the config")
    names = cmd.kernels or list(allowed)
    for name in names:
        if sup.kernel(name).critical:
            raise ActionError(f"kernel {name!r} is critical: shed_load never suspends a critical "
                              "kernel (remove it from the command's kernels)")
        if name not in allowed:
            raise ActionError(f"kernel {name!r} is not in shed.kernels ({', '.join(allowed)}): "
                              "shed_load suspends only kernels the config names there")
    return {"kernels": names, "max_s": float(ctx.cfg.shed.max_s)}


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
    reason = f"resume_load ({cmd.playbook})" if cmd.playbook else "resume_load"
    done = {name: await sup.resume(name, reason) for name in target["kernels"]}
    return {**target, "resumed_pids": done}


def _names(c: events.ShedLoad | events.ResumeLoad) -> str:
    return ",".join(c.kernels) or "shed.kernels"


SHED = Action(events.ShedLoad, plan_shed, apply_shed, _names)
RESUME = Action(events.ResumeLoad, plan_resume, apply_resume, _names)
