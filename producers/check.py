"""`grace check`: every trigger once, findings printed, nothing published.

NATS is used when reachable (heartbeats are listened to for `listen` seconds,
queue backlogs read); otherwise those parts say `skipped: no NATS`. State is
read from `<data_dir>/state/` but never written.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec

from grace import bus as bus_mod
from grace import events
from grace.cliutil import Context
from grace.errors import ExitCode, GraceError
from producers.base import make_env
from producers.monitor import Outcome, run_check
from producers.registry import TRIGGERS
from producers.state import StateStore

log = logging.getLogger(__name__)


@dataclass
class Report:
    host: str
    nats: str | None
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def findings(self) -> list[events.Trigger]:
        return [f for o in self.outcomes if o.result for f in o.result.findings]

    @property
    def exit_code(self) -> ExitCode:
        if any(o.result is None or o.result.errors for o in self.outcomes):
            return ExitCode.ERROR
        return ExitCode.FINDINGS if self.findings else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        rows = []
        for o in self.outcomes:
            r = o.result
            rows.append({
                "trigger": o.trigger, "duration_ms": round(o.duration_ms, 3),
                "outcome": "failed" if r is None else "skipped" if r.skipped else
                "findings" if r.findings else "ok",
                "reason": o.error if r is None else r.skipped, "errors": r.errors if r else [],
                "notes": r.notes if r else [],
                "findings": len(r.findings) if r else 0, "stats": r.stats if r else {}})
        found = [{"type": f.TYPE, "trigger": f.trigger, "key": events.finding_key(f),
                  "data": msgspec.to_builtins(f)} for f in self.findings]
        return {"host": self.host, "nats": self.nats, "healthy": self.exit_code == ExitCode.OK,
                "triggers": rows, "findings": found}


async def _connect(ctx: Context) -> bus_mod.Bus | None:
    try:
        url = ctx.url()
        return await bus_mod.connect(url, host=ctx.cfg.host, source=f"grace/{ctx.cfg.host}/check",
                                     name="grace-check", connect_timeout=1.0,
                                     fast_path=ctx.cfg.nats.fast_path)
    except GraceError as exc:
        log.debug("no NATS for grace check: %s", exc)
        return None


async def run_once(ctx: Context, listen: float = 1.0) -> Report:
    """Run every trigger once against the config; publish nothing."""
    bus = await _connect(ctx)
    env = make_env(ctx.cfg, StateStore(ctx.data_dir / "state", readonly=True), bus)
    report = Report(ctx.cfg.host, bus.nc.connected_url.netloc if bus and bus.nc.connected_url else None)
    try:
        if bus is not None:
            await env.shared.heartbeats.listen(bus.nc)
            if any(k.heartbeat_timeout for k in ctx.cfg.kernels):
                await asyncio.sleep(listen)  # heartbeats are not stored: hear them live
        timeout = float(ctx.cfg.monitor.timeout)
        checks = {name: cls(env) for name, cls in TRIGGERS.items()}
        report.outcomes = list(await asyncio.gather(
            *(run_check(n, c, timeout) for n, c in checks.items())))
    finally:
        await env.shared.heartbeats.close()
        if bus is not None:
            await bus.close()
    return report
