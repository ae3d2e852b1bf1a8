"""Fixtures for actuator tests: a config folder, a bus on a fresh host, an executor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from actuators.executor import Executor
from actuators.intents import IntentStore
from actuators.supervisor import Supervisor
from grace import bus as bus_mod
from grace import events
from grace.bus import Bus
from grace.config import Config
from tests.actuators.helpers import kernel, make_config, unique_host
from tests.actuators.outcomes_support import example  # noqa: F401 - a fixture: the shipped example


@dataclass
class World:
    root: Path
    cfg: Config
    bus: Bus
    supervisor: Supervisor
    executor: Executor
    emitted: list[events.Payload]

    def command(self, payload: events.Payload) -> events.Event:
        return self.bus.event(payload, host=self.cfg.host)


@pytest_asyncio.fixture(loop_scope="session")
async def world(tmp_path: Path, nats_url: str) -> AsyncIterator[World]:
    """Kernels api (critical), batch (non-critical) and worker (pool 1..4); host unique."""
    kernels = [kernel("api", tmp_path, critical=True), kernel("batch", tmp_path),
               kernel("worker", tmp_path, pool={"min": 1, "max": 4})]
    cfg = make_config(tmp_path, host=unique_host(), kernels=kernels, caches=["cache"],
                      shed={"kernels": ["batch", "worker"]})
    b = await bus_mod.connect_and_ensure(nats_url, host=cfg.host, source="grace/test/actuator")
    emitted: list[events.Payload] = []
    sup = Supervisor(cfg, emitted.append, nats_url=nats_url, poll_interval=0.05, backoff_base=0.05)
    await sup.start()
    ex = Executor(cfg, b, await IntentStore.open(b, cfg.host), sup)
    try:
        yield World(tmp_path, cfg, b, sup, ex, emitted)
    finally:
        await sup.stop()
        await b.close()
