"""A real local HTTP health endpoint (aiohttp) whose latency and JSON body tests change."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class HealthServer:
    def __init__(self) -> None:
        self.delay = 0.0
        self.body: dict[str, Any] = {"status": "ok", "uptime": 1, "checks": [{"name": "db", "ok": True}]}
        self.text: str | None = None  # set: answer this HTML page instead of JSON
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _health(self, _req: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.text is not None:
            return web.Response(text=self.text, content_type="text/html")
        return web.json_response(self.body)

    async def start(self) -> HealthServer:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/health"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
