"""Result in the log -> row on the console page, measured in a real browser.

`python -m bench.console_latency [N]` starts a nats-server and `grace project` (the projection
and its HTTP server), opens the console's Incidents view in headless Chromium (Playwright,
Debian's /usr/bin/chromium), then N times publishes a command_issued and its command_succeeded
and takes the time from the result's JetStream acknowledgement (it is in the log) to the page
first showing that result in the command's row (the page notes `Date.now()` when it renders it;
one machine, one clock). Prints the median and the spread in milliseconds as JSON.

Not part of `grace bench`: it needs Chromium and Playwright (the test extras).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.e2e import start_stage
from grace import events
from grace.bus import connect_and_ensure
from grace.embedded import EmbeddedServer, free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HOST = "bench"


def _up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own local server
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def measure(n: int = 20) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = EmbeddedServer(root / "nats")
        url = server.start()
        port = free_port()
        cfg = root / "grace.yaml"
        cfg.write_text(f'host: {HOST}\ndata_dir: data\nhttp: {{listen: "127.0.0.1:{port}"}}\n')
        proc = start_stage("project", cfg, url, root)
        bus = await connect_and_ensure(url, host=HOST, source=f"grace/{HOST}/bench")
        try:
            await asyncio.to_thread(_up, f"http://127.0.0.1:{port}/healthz")
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{port}/")
                await page.wait_for_function("document.querySelector('#live').textContent === 'live'")
                await page.click("nav button[data-tab=incidents]")
                samples = []
                for i in range(n):
                    cid = f"latency-{i}-{events.new_id()[:8]}"
                    await bus.publish(bus.event(events.CommandIssued(
                        playbook="latency", command_id=cid, action="clear_caches", target="cache",
                        cause_ids=[])))
                    await asyncio.sleep(0.2)  # the decision's row first, as in Grace
                    await bus.publish(bus.event(events.CommandSucceeded(
                        command_id=cid, action="clear_caches", target="cache", playbook="latency")))
                    in_log = time.time() * 1000
                    await page.wait_for_function(f"window.graceRowSeen['{cid}'] !== undefined",
                                                 timeout=30_000)
                    seen = await page.evaluate(f"window.graceRowSeen['{cid}']")
                    samples.append(float(seen) - in_log)
                    await asyncio.sleep(0.3)
                await browser.close()
        finally:
            await bus.close()
            proc.terminate()
            proc.wait(30)
            server.stop()
    return {"samples": n, "median_ms": round(statistics.median(samples), 1),
            "min_ms": round(min(samples), 1), "max_ms": round(max(samples), 1)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(json.dumps(asyncio.run(measure(n))))


if __name__ == "__main__":
    main()
