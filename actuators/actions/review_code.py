"""review_code: a review task (kind `review`) on GRACE_TASKS for the flagged files.

The files are those named plus the `code:` files of the kernel concerned; each
must lie inside the code root or a kernel's `code:` (else refused). The checks
(py_compile, pyflakes, the targeted tests) run in the task handler, which
publishes the fix_report: a test run never holds up the command queue.
"""

from __future__ import annotations

from actuators import checks
from actuators.actions.base import Action, ActionContext, Details, Target
from actuators.actions.escalate import about
from grace import events


async def plan(ctx: ActionContext, cmd: events.ReviewCode) -> Target:
    checks.confine_code(ctx.cfg, cmd.files)  # refuse an escape before anything is published
    files, kernel, _ = about(ctx, cmd.files, cmd.kernel, {})
    return {"task_id": events.derive_id("task", ctx.command_id), "files": files, "kernel": kernel}


async def apply(ctx: ActionContext, cmd: events.ReviewCode, target: Target) -> Details:
    task = events.FixTask(task_id=target["task_id"], kind="review",
                          summary=cmd.summary or f"review {', '.join(target['files']) or 'nothing'}",
                          files=target["files"], playbook=cmd.playbook, command_id=ctx.command_id)
    await ctx.publish(task, target["task_id"])
    return dict(target)


ACTION = Action(events.ReviewCode, plan, apply, lambda c: ",".join(c.files) or c.summary[:80])
