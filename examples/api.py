"""Example kernel: a tiny HTTP API with /health, sending heartbeats to Grace."""

import asyncio
import json
import logging
import os
import time
from pathlib import Path

from aiohttp import web

import grace.heartbeat

HERE = Path(__file__).resolve().parent
(HERE / "logs").mkdir(exist_ok=True)
logging.basicConfig(filename=HERE / "logs" / "app.log", level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(message)s")
log = logging.getLogger("api")
STARTED = time.time()
stats = {"requests": 0}


async def health(_request: web.Request) -> web.Response:
    stats["requests"] += 1
    slow = HERE / "slow_health"  # fault injection: `grace demo fault latency` creates it
    if slow.exists():
        await asyncio.sleep(float(slow.read_text() or "2"))
    settings = json.loads((HERE / "config" / "features.json").read_text())
    return web.json_response({"status": "ok", "uptime_s": round(time.time() - STARTED, 1),
                              "requests": stats["requests"], "features": sorted(settings)})


async def order(request: web.Request) -> web.Response:
    log.info("order %s accepted", request.match_info["id"])
    return web.json_response({"order": request.match_info["id"], "state": "accepted"})


def main() -> None:
    grace.heartbeat.start("api")
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/orders/{id}", order)
    # reuse_port: the instances of the api pool share the port
    web.run_app(app, host="127.0.0.1", port=int(os.environ.get("API_PORT", "18080")),
                print=None, access_log=None, reuse_port=True)


if __name__ == "__main__":
    main()
