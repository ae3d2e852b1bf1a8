"""Boot phase 3 of `grace up`: the pre-boot code diff, before any kernel starts."""

from __future__ import annotations

from grace import events
from grace.bus import Bus
from grace.cliutil import Context
from producers.base import make_env
from producers.pre_boot_code_diff import PreBootCodeDiff
from producers.state import StateStore


async def pre_boot_code_diff(ctx: Context, bus: Bus) -> str:
    """Hash the code tree, compile what changed, publish the findings; return a summary line."""
    env = make_env(ctx.cfg, StateStore(ctx.data_dir / "state"), bus)
    result = await PreBootCodeDiff(env).check()
    if result.skipped:
        return f"skipped: {result.skipped}"
    evs = [bus.event(f) for f in result.findings]
    if evs:
        await bus.publish_many(evs)
    errors = sum(isinstance(f, events.SyntaxErrorFound) for f in result.findings)
    changed = int(result.stats.get("changed", 0))
    return (f"{int(result.stats.get('files', 0))} files, {changed} changed since the last good tree, "
            f"{errors} syntax error{'s' if errors != 1 else ''}")
