"""`grace up`: the whole pipeline on this machine (embedded NATS unless --nats)."""

from __future__ import annotations

import asyncio
import signal

import click

from grace.cliutil import guarded, load_context, run, stage_options
from grace.embedded import EmbeddedServer


@click.command()
@stage_options
@guarded
def up(config_path: str | None, nats_url: str | None, data_dir: str | None) -> None:
    """Start Grace: embedded NATS (when no URL), the topology, and follow the log."""
    from grace.tail import tail

    ctx = load_context(config_path, nats_url, data_dir)
    server: EmbeddedServer | None = None
    if ctx.nats_url is None:
        server = EmbeddedServer(ctx.data_dir, ctx.cfg.nats.port, sync=ctx.cfg.nats.sync)
        url = server.start()
        ctx.nats_url = url
        click.echo(f"embedded NATS ready at {url} (store {server.dir / 'store'})")

    async def go() -> None:
        bus = await ctx.bus("up")
        click.echo("streams ensured; following the log (Ctrl-C stops)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await tail(bus, "grace.events.>", from_start=False, as_json_lines=False, stop=stop)
        finally:
            await bus.close()

    try:
        run(go())
    finally:
        if server is not None:
            server.stop()


def register(group: click.Group) -> None:
    group.add_command(up)
