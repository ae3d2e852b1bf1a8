"""`GET /api/stream`: server-sent events, one `applied` event per batch the projection commits.

The projector calls `Feed.applied(seq)` after each commit; every open stream gets the new
sequence at once and the page re-reads what it shows. A quiet log sends a comment every
KEEPALIVE_S so proxies keep the stream open; nothing else runs while no page is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

KEEPALIVE_S = 15.0


class Feed:
    """The latest applied sequence, and a wake-up for every open stream."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.closed = False
        self._changed = asyncio.Event()

    async def close(self, _app: web.Application | None = None) -> None:
        """End every open stream (the server is stopping: it need not wait for the pages)."""
        self.closed = True
        self._changed.set()

    def applied(self, seq: int) -> None:
        self.seq = seq
        self._changed.set()
        self._changed = asyncio.Event()  # the set one stays set for the streams it woke

    async def next(self, seen: int) -> int:
        """The applied sequence once it is past `seen` (or the current one after KEEPALIVE_S)."""
        changed = self._changed
        if self.seq != seen:
            return self.seq
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
        return self.seq


async def stream(request: web.Request, feed: Feed) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    seen = -1
    try:
        while not feed.closed:
            seq = await feed.next(seen)
            if seq == seen:
                await resp.write(b": keepalive\n\n")
                continue
            seen = seq
            await resp.write(f"event: applied\ndata: {json.dumps({'last_seq': seq})}\n\n".encode())
    except ConnectionResetError:
        pass  # the page went away
    return resp
