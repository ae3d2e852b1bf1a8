"""review_code: static checks (py_compile, pyflakes when installed) on the flagged files."""

from __future__ import annotations

from grace import events

from actuators import checks
from actuators.actions.base import Action, ActionContext, Details, Target


async def plan(ctx: ActionContext, cmd: events.ReviewCode) -> Target:
    files = checks.confine_code(ctx.cfg, cmd.files)
    return {"files": [str(f) for f in files]}


async def apply(ctx: ActionContext, cmd: events.ReviewCode, target: Target) -> Details:
    from pathlib import Path

    files = [Path(f) for f in target["files"] if Path(f).is_file()]
    found = await checks.static_checks(ctx.cfg, files, float(ctx.cfg.agent.timeout))
    failed = [c for c in found if not c["ok"]]
    return {**target, "outcome": "findings" if failed else "passed", "checks": found,
            "missing": [f for f in target["files"] if not Path(f).is_file()]}


ACTION = Action(events.ReviewCode, plan, apply, lambda c: ",".join(c.files) or c.summary[:80])
