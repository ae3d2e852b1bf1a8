"""A local HTTP receiver for notifications (aiohttp on 127.0.0.1): answers a script of
statuses, then accepts; keeps every request it got."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Got:
    """One request as the receiver saw it."""

    status: int  # what the receiver answered
    content_type: str
    body: dict[str, Any]


@dataclass
class Receiver:
    script: list[tuple[int, str]] = field(default_factory=list)  # (status, body) answered in order
    then: int = 202  # the answer once the script is used up
    got: list[Got] = field(default_factory=list)
    retry_after: str | None = None  # sent with every 429
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        status, text = self.script.pop(0) if self.script else (self.then, '{"status":"success"}')
        self.got.append(Got(status, request.headers.get("Content-Type", ""), body))
        headers = {"Retry-After": self.retry_after} if status == 429 and self.retry_after else {}
        return web.Response(status=status, text=text, headers=headers)

    def accepted(self) -> list[Got]:
        return [g for g in self.got if 200 <= g.status < 300]
