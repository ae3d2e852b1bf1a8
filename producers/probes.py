"""HTTP probes of a kernel's health_url (aiohttp), shared by latency and schema checks."""

from __future__ import annotations

import time
from typing import Any

import aiohttp


class ProbeFailed(Exception):
    """The health URL did not answer with a 2xx in time."""


async def probe(session: aiohttp.ClientSession, url: str, timeout: float) -> tuple[float, Any]:
    """GET `url`: (latency in ms, decoded JSON body or None). Raises ProbeFailed with the reason."""
    t0 = time.perf_counter()
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.read()
            ms = (time.perf_counter() - t0) * 1000.0
            if resp.status >= 400:
                raise ProbeFailed(f"{url} answered HTTP {resp.status}")
    except TimeoutError:
        raise ProbeFailed(f"{url} did not answer within {timeout:.1f}s") from None
    except aiohttp.ClientError as exc:
        raise ProbeFailed(f"{url} is unreachable: {exc}") from None
    try:
        import json

        data = json.loads(body) if body else None
    except ValueError:
        data = None
    return ms, data
