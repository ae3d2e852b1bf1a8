"""`grace ping NAME`: wait for a heartbeat of a stage or kernel (container health checks)."""

from __future__ import annotations

import asyncio

import click
import msgspec

from grace import events, topology
from grace.cliutil import guarded, load_context, run, stage_options
from grace.errors import ExitCode, GraceError


class NoHeartbeat(GraceError):
    exit_code = ExitCode.FINDINGS


@click.command()
@click.argument("name")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait for a heartbeat.")
@click.option("--host", help="Host whose heartbeats to watch (default: the config's host).")
@stage_options
@guarded
def ping(name: str, timeout: float, host: str | None, config_path: str | None, nats_url: str | None,
         data_dir: str | None) -> None:
    """Exit 0 when NAME (a stage: produce, process, act, project, agent; or a kernel) sends a heartbeat."""
    ctx = load_context(config_path, nats_url, data_dir)

    async def go() -> None:
        bus = await ctx.bus("ping")
        seen = asyncio.Event()

        def on_beat(_s: bytes, _r: bytes, data: bytes, _h: bytes | None) -> None:
            try:
                hb = msgspec.json.decode(data, type=events.Heartbeat)
            except msgspec.DecodeError:
                return
            if hb.name == name:
                seen.set()

        try:
            await bus.subscribe_raw(topology.heartbeat_filter(host or ctx.cfg.host), on_beat)
            try:
                await asyncio.wait_for(seen.wait(), timeout)
            except TimeoutError:
                raise NoHeartbeat(f"no heartbeat from {name!r} on host {host or ctx.cfg.host!r} within "
                                  f"{timeout:.0f}s: is it running? Check its log.") from None
            click.echo(f"{name}: alive")
        finally:
            await bus.close()

    run(go())


def register(group: click.Group) -> None:
    group.add_command(ping)
