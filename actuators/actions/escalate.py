"""escalate_to_coding_agent: a durable fix task on GRACE_TASKS for any coding agent."""

from __future__ import annotations

from grace import events

from actuators.actions.base import Action, ActionContext, Details, Target


async def plan(ctx: ActionContext, cmd: events.EscalateToCodingAgent) -> Target:
    # the last resort never fails on its file list: the files are information for the agent,
    # and the built-in handler checks only those inside the code root
    return {"task_id": events.derive_id("task", ctx.command_id)}


async def apply(ctx: ActionContext, cmd: events.EscalateToCodingAgent, target: Target) -> Details:
    task = events.FixTask(task_id=target["task_id"], kind="fix", summary=cmd.summary,
                          files=cmd.files, evidence=cmd.evidence, playbook=cmd.playbook,
                          command_id=ctx.command_id)
    await ctx.publish(task, target["task_id"])  # the task id is its Msg-Id: a re-publish dedupes
    return {**target, "files": cmd.files}


ACTION = Action(events.EscalateToCodingAgent, plan, apply, lambda c: c.summary[:80])
