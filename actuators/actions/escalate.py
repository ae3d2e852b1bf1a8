"""escalate_to_coding_agent: a durable fix task on GRACE_TASKS for any coding agent.

The task carries the files it is about: those the command names, those its
triggering event names (a syntax error's path and line, a repeated error's
files; Grace's default escalation puts that event in `evidence`), and the
`code:` files of the kernel it concerns (`kernel`, or the cause's kernel).
"""

from __future__ import annotations

from typing import Any

from actuators import checks
from actuators.actions.base import Action, ActionContext, Details, Target
from grace import events


def cause_data(evidence: dict[str, Any]) -> dict[str, Any]:
    """The triggering event's data when the evidence is Grace's default (type + data)."""
    data = evidence.get("data")
    return data if isinstance(data, dict) else {}


def about(ctx: ActionContext, files: list[str], kernel: str | None,
          evidence: dict[str, Any]) -> tuple[list[str], str | None, int | None]:
    """(files, kernel, line) a task or review is about: named, from the cause, the kernel's code."""
    cause = cause_data(evidence)
    out = [f for f in files if isinstance(f, str) and f]
    out += [f for f in cause.get("files") or [] if isinstance(f, str) and f]
    line = None
    if evidence.get("type") == "syntax_error" and isinstance(cause.get("path"), str):
        out.append(cause["path"])
        line = cause.get("line") if isinstance(cause.get("line"), int) else None
    kernel = kernel or (cause.get("kernel") if isinstance(cause.get("kernel"), str) else None)
    out += checks.kernel_code(ctx.cfg, kernel)
    return list(dict.fromkeys(out)), kernel, line


async def plan(ctx: ActionContext, cmd: events.EscalateToCodingAgent) -> Target:
    # the last resort never fails on its file list: the files are information for the agent,
    # and the built-in handler checks only those inside the code root or a kernel's code
    files, kernel, line = about(ctx, cmd.files, cmd.kernel, cmd.evidence)
    return {"task_id": events.derive_id("task", ctx.command_id), "files": files, "kernel": kernel,
            "line": cmd.line if cmd.line is not None else line}


async def apply(ctx: ActionContext, cmd: events.EscalateToCodingAgent, target: Target) -> Details:
    task = events.FixTask(task_id=target["task_id"], kind="fix", summary=cmd.summary,
                          files=target["files"], evidence=cmd.evidence, playbook=cmd.playbook,
                          command_id=ctx.command_id, line=target["line"])
    await ctx.publish(task, target["task_id"])  # the task id is its Msg-Id: a re-publish dedupes
    return dict(target)


ACTION = Action(events.EscalateToCodingAgent, plan, apply, lambda c: c.summary[:80])
