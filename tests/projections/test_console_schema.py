"""A property-based run of schemathesis against the console's /api/openapi.json: generated
requests (valid and not) to every endpoint, with and without the operator token, on a real
projection and a private NATS server; no answer is a 5xx and every answer matches its schema.
The number of examples per endpoint is bounded (EXAMPLES)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from grace import tokens
from grace.bus import Bus, connect_and_ensure
from grace.embedded import EmbeddedServer, free_port
from projections.console import openapi
from projections.http import make_app
from projections.projector import Projector
from tests.projections.console_support import HOST, build, config, recent_story

EXAMPLES = 30
schema = schemathesis.openapi.from_dict(openapi.document()).exclude(path="/api/stream")


class Served:
    """The console app on 127.0.0.1:<port>, in a thread with its own event loop."""

    def __init__(self, tmp: Path, nats_url: str) -> None:
        self.tmp, self.nats_url = tmp, nats_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = free_port()
        self.runner: web.AppRunner | None = None
        self.projector: Projector | None = None
        self.token = ""

    async def _start(self) -> None:
        cfg = config(self.tmp / "data")
        self.token = tokens.write_token(cfg.data_path).read_text().strip()
        self.projector = Projector(build(self.tmp / "p.duckdb", recent_story(datetime.now(UTC))))

        async def operator_bus() -> Bus:
            return await connect_and_ensure(self.nats_url, host=HOST, source="grace/web-1/console")

        self.runner = web.AppRunner(make_app(cfg, self.projector, None, operator_bus))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.projector is not None:
            await self.projector.close()

    def __enter__(self) -> Served:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    nats_server = EmbeddedServer(tmp_path_factory.mktemp("schema-nats"))
    url = nats_server.start()
    try:
        with Served(tmp_path_factory.mktemp("schema"), url) as s:
            yield s
    finally:
        nats_server.stop()


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_5xx_and_every_answer_matches_its_schema(case: Any, served: Served) -> None:
    base = f"http://127.0.0.1:{served.port}"
    case.call_and_validate(base_url=base, checks=CHECKS, timeout=30)
    case.call_and_validate(base_url=base, checks=CHECKS, timeout=30,
                           headers={"Authorization": f"Bearer {served.token}"})
