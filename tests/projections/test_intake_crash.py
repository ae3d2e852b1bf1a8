"""SIGKILL of the server mid-request loses no alert and stores none twice: the sender
retries every request that got no 2xx (as Alertmanager does) against the restarted server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp

from grace import bus as bus_mod
from grace import events, tokens, topology
from grace.consume import Delivery, read_range
from projections import intake
from tests.projections.intake_support import alert, notification
from tests.projections.live import Projector

REQUESTS = 100
PER_REQUEST = 20


async def send(session: aiohttp.ClientSession, url: str, token: str, body: bytes) -> bool:
    """One delivery attempt: True only for a 2xx."""
    try:
        async with session.post(url, data=body, headers={"Authorization": f"Bearer {token}"}) as r:
            await r.read()
            return 200 <= r.status < 300
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


async def stored_fingerprints(url: str, prefix: str) -> list[str]:
    b = await bus_mod.connect_and_ensure(url, host="test", source="grace/test/pytest")
    found: list[str] = []

    async def keep(ds: list[Delivery[events.Event]]) -> None:
        for d in ds:
            data = d.item.data
            if isinstance(data, events.ExternalAlert) and data.fingerprint.startswith(prefix):
                found.append(data.fingerprint)

    try:
        await read_range(b, 1, keep,
                         filter_subject=topology.event_filter("trigger", "external_alert", "*"))
    finally:
        await b.close()
    return found


async def test_sigkill_mid_request_loses_nothing_and_duplicates_nothing(
        nats_url: str, tmp_path: Path) -> None:
    p = Projector(nats_url, tmp_path)
    tokens.write_token(p.data)
    token = tokens.read_token(p.data)
    assert token
    p.start()
    await asyncio.to_thread(p.wait_seq, 0)
    prefix = uuid.uuid4().hex[:8]
    bodies = [notification([alert("Crash", f"{prefix}-{r}-{i}") for i in range(PER_REQUEST)])
              for r in range(REQUESTS)]
    url = f"http://127.0.0.1:{p.port}{intake.ALERTS_PATH}"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tasks = [asyncio.create_task(send(session, url, token, b)) for b in bodies]
        await next(asyncio.as_completed(tasks))  # the server is answering: kill it now
        await asyncio.to_thread(p.kill)
        ok = await asyncio.gather(*tasks)
        unanswered = [b for b, good in zip(bodies, ok, strict=True) if not good]
        assert unanswered, "every request finished before the kill: nothing was tested"
        assert len(unanswered) < REQUESTS
        p.start()
        for body in unanswered:  # Alertmanager retries until it gets a 2xx
            for _ in range(600):
                if await send(session, url, token, body):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the restarted server never accepted a retry: "
                                     f"{p.log.read_text()[-2000:]}")
    p.stop()
    found = await stored_fingerprints(nats_url, prefix)
    assert len(found) == REQUESTS * PER_REQUEST, "an alert was lost or stored twice"
    assert len(set(found)) == REQUESTS * PER_REQUEST
