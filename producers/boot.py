"""Boot phase 3 of `grace up`: the pre-boot code diff, before any kernel starts.

`grace produce --boot-phase` runs it and publishes its boot_phase events; `grace up`
waits for them in the log.
"""

from __future__ import annotations

import logging

from grace import events
from grace.bus import Bus
from grace.cliutil import Context
from grace.errors import BootBlocked
from producers.base import make_env
from producers.pre_boot_code_diff import PreBootCodeDiff
from producers.state import StateStore

log = logging.getLogger(__name__)
PHASE = 3


async def publish_phase(ctx: Context) -> int:
    """Run phase 3 and publish it (started, then completed or failed); the exit code:
    0 completed, 1 failed (`blocks` says whether boot must stop)."""
    bus = await ctx.bus("produce")
    name = events.BOOT_PHASES[PHASE - 1]

    async def phase(status: str, detail: str = "", blocks: bool = False) -> None:
        await bus.publish(bus.event(events.BootPhase(phase=PHASE, name=name, status=status,  # type: ignore[arg-type]
                                                     detail=detail, blocks=blocks)))
    try:
        await phase("started")
        try:
            await phase("completed", await pre_boot_code_diff(ctx, bus))
        except BootBlocked as exc:
            await phase("failed", str(exc), blocks=True)
            return 1
        except Exception as exc:
            log.exception("boot phase %d failed", PHASE)
            await phase("failed", repr(exc))
            return 1
        return 0
    finally:
        await bus.close()


async def pre_boot_code_diff(ctx: Context, bus: Bus) -> str:
    """Hash the code tree, compile what changed, publish the findings; return a summary line.

    Raises BootBlocked (after publishing) when a file does not compile and
    `code.block_boot_on_syntax_error` is on: nothing may start on broken code.
    """
    env = make_env(ctx.cfg, StateStore(ctx.data_dir / "state"), bus)
    result = await PreBootCodeDiff(env).check()
    if result.skipped:
        return f"skipped: {result.skipped}"
    evs = [bus.event(f) for f in result.findings]
    if evs:
        await bus.publish_many(evs)
    found = [f for f in result.findings if isinstance(f, events.SyntaxErrorFound)]
    errors = len(found)
    changed = int(result.stats.get("changed", 0))
    summary = (f"{int(result.stats.get('files', 0))} files, {changed} changed since the last good "
               f"tree, {errors} syntax error{'s' if errors != 1 else ''}")
    if not found:
        return summary
    root = ctx.cfg.code.root or "."
    where = "; ".join(f"{root}/{f.path}:{f.line or '?'}: {f.message}" for f in found[:5])
    if len(found) > 5:
        where += f"; and {len(found) - 5} more (syntax_error events in the log)"
    if ctx.cfg.code.block_boot_on_syntax_error:
        raise BootBlocked(f"boot stopped before any kernel started: syntax error in {where}. Fix "
                          "the file and run `grace up` again (or set "
                          "code.block_boot_on_syntax_error: false to boot anyway and get a fix task)")
    return f"{summary} ({where}); booting anyway (code.block_boot_on_syntax_error: false)"
