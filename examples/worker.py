"""Example kernel: a worker of a pool consuming the JOBS work queue (JetStream)."""

import asyncio
import logging

import nats
from nats.js import api
from nats.js.errors import NotFoundError

import grace.heartbeat

STREAM, CONSUMER = "JOBS", "workers"
log = logging.getLogger("worker")


async def work() -> None:
    # the URL list, credentials and TLS files the supervisor gave this kernel
    nc = await nats.connect(**grace.heartbeat.nats_options(), max_reconnect_attempts=-1)
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(STREAM)
        except NotFoundError:
            await js.add_stream(api.StreamConfig(name=STREAM, subjects=["jobs.>"],
                                                 retention=api.RetentionPolicy.WORK_QUEUE))
        sub = await js.pull_subscribe("jobs.>", durable=CONSUMER, stream=STREAM)
        while True:
            try:
                msgs = await sub.fetch(10, timeout=1)
            except TimeoutError:
                continue
            for msg in msgs:
                await asyncio.sleep(0.05)  # the work
                await msg.ack()
    finally:
        await nc.close()


async def main() -> None:
    grace.heartbeat.start("worker")
    wait = 0.5
    while True:
        try:
            await work()
        except Exception as exc:  # noqa: BLE001 - the queue is unreachable: say so, keep beating
            # e.g. with nats.auth on, the kernel user may send heartbeats only: the JOBS
            # queue needs a NATS user of the application's own
            log.warning("worker: JOBS queue unavailable (%r); retrying in %.1fs", exc, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, 30.0)


if __name__ == "__main__":
    asyncio.run(main())
