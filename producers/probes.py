"""HTTP probes of a kernel's health_url (aiohttp), shared by latency and schema checks.

Any 2xx/3xx answer is an answer: the body is decoded as JSON when it is JSON and
is None otherwise (a plain HTML page is fine for liveness and latency). A probe
that does not answer within its timeout raises ProbeTimedOut, which tells the
caller how long it waited: for latency that is a slow sample, not a failure.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from grace.errors import GraceError


class ProbeFailed(GraceError):
    """The health URL did not answer with a 2xx in time."""


class ProbeTimedOut(ProbeFailed):
    """No answer within the timeout: the kernel is at least `waited_ms` slow."""

    def __init__(self, message: str, waited_ms: float) -> None:
        super().__init__(message)
        self.waited_ms = waited_ms


async def probe(session: aiohttp.ClientSession, url: str, timeout: float) -> tuple[float, Any]:
    """GET `url`: (latency in ms, decoded JSON body or None). Raises ProbeFailed with the reason
    (ProbeTimedOut, a subclass, when it did not answer within `timeout` seconds)."""
    t0 = time.perf_counter()
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.read()
            ms = (time.perf_counter() - t0) * 1000.0
            if resp.status >= 400:
                raise ProbeFailed(f"{url} answered HTTP {resp.status}")
    except TimeoutError:
        waited = (time.perf_counter() - t0) * 1000.0
        raise ProbeTimedOut(f"{url} did not answer within {timeout:.2f}s", waited) from None
    except aiohttp.ClientError as exc:
        raise ProbeFailed(f"{url} is unreachable: {exc}") from None
    try:
        data = json.loads(body) if body else None
    except ValueError:  # also UnicodeDecodeError: not JSON, still an answer
        data = None
    return ms, data
