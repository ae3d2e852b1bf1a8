"""Example kernel: a worker of a pool consuming the JOBS work queue (JetStream)."""

import asyncio
import os

import nats
from nats.js import api
from nats.js.errors import NotFoundError

import grace.heartbeat

STREAM, CONSUMER = "JOBS", "workers"


async def main() -> None:
    grace.heartbeat.start("worker")
    nc = await nats.connect(os.environ["GRACE_NATS_URL"], max_reconnect_attempts=-1)
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


if __name__ == "__main__":
    asyncio.run(main())
