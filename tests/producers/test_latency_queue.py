"""latency_queue against a real JetStream consumer with a backlog and a real HTTP endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import msgspec
import pytest
from nats.js import api

from grace import config, events, triggers_config
from grace.bus import Bus
from producers.base import make_env
from producers.latency_queue import LatencyQueue, p95, probe_plan
from producers.state import StateStore
from tests.producers.shipped import shipped_system
from tests.producers.web import HealthServer


def _cfg(tmp_path: Path, kernels: list[config.Kernel], probes: int = 3) -> config.Config:
    cfg = config.load(None)
    th = triggers_config.with_values(cfg.thresholds, latency_probes=probes, latency_min_samples=3)
    return msgspec.structs.replace(cfg, kernels=kernels, thresholds=th, config_dir=str(tmp_path))


async def test_consumer_backlog_over_max_is_queue_backlog(bus: Bus, tmp_path: Path) -> None:
    stream, subject = f"JOBS_{uuid.uuid4().hex[:8]}", f"jobs.{uuid.uuid4().hex[:8]}"
    await bus.js.add_stream(api.StreamConfig(name=stream, subjects=[subject]))
    await bus.js.add_consumer(stream, api.ConsumerConfig(durable_name="workers",
                                                         ack_policy=api.AckPolicy.EXPLICIT))
    kernel = config.Kernel(name="worker", command=["w"],
                           queue=config.Queue(stream=stream, consumer="workers", max_backlog=10))
    trig = LatencyQueue(make_env(_cfg(tmp_path, [kernel]), StateStore(tmp_path / "s"), bus))
    try:
        for i in range(5):
            await bus.js.publish(subject, b"job %d" % i)
        assert (await trig.check()).findings == []
        for i in range(20):
            await bus.js.publish(subject, b"job %d" % i)
        [f] = (await trig.check()).findings
        assert isinstance(f, events.QueueBacklog)
        assert f.backlog == 25 and f.pending == 25 and f.threshold == 10 and f.consumer == "workers"
    finally:
        await bus.js.delete_stream(stream)


async def test_missing_consumer_is_a_clear_error_not_a_crash(bus: Bus, tmp_path: Path) -> None:
    kernel = config.Kernel(name="worker", command=["w"],
                           queue=config.Queue(stream="NOPE_STREAM", consumer="nobody"))
    res = await LatencyQueue(make_env(_cfg(tmp_path, [kernel]), StateStore(tmp_path / "s"), bus)).check()
    assert res.findings == [] and "does not exist" in res.errors[0]


async def test_slow_health_endpoint_is_latency_spike_with_p95(tmp_path: Path) -> None:
    server = await HealthServer().start()
    try:
        kernel = config.Kernel(name="api", command=["a"], health_url=server.url, latency_p95_ms=50.0)
        trig = LatencyQueue(make_env(_cfg(tmp_path, [kernel]), StateStore(tmp_path / "s")))
        assert (await trig.check()).findings == []
        server.delay = 0.08
        res = await trig.check()
        [f] = res.findings
        assert isinstance(f, events.LatencySpike)
        assert f.p95_ms >= 80 and f.threshold_ms == 50.0 and f.samples == 6
    finally:
        await server.stop()


async def test_dead_health_url_is_a_reason_not_a_finding(tmp_path: Path) -> None:
    kernel = config.Kernel(name="api", command=["a"], health_url="http://127.0.0.1:9/health")
    res = await LatencyQueue(make_env(_cfg(tmp_path, [kernel]), StateStore(tmp_path / "s"))).check()
    assert res.findings == [] and "127.0.0.1:9" in res.errors[0]


def test_p95_is_nearest_rank() -> None:
    assert p95([float(i) for i in range(1, 101)]) == 95.0
    assert p95([5.0]) == 5.0


async def test_a_health_page_that_is_not_json_is_a_latency_sample_not_a_failure(tmp_path: Path) -> None:
    server = await HealthServer().start()
    server.text = "<html><body>Directory listing</body></html>"
    try:
        kernel = config.Kernel(name="web", command=["w"], health_url=server.url)
        env = make_env(_cfg(tmp_path, [kernel]), StateStore(tmp_path / "s"))
        res = await LatencyQueue(env).check()
        assert res.errors == [] and res.findings == []
        assert len(env.shared.latency["web"]) == 3
    finally:
        await server.stop()


def test_probes_fit_the_monitor_timeout_and_wait_at_least_twice_the_threshold() -> None:
    cfg = config.load(None)  # monitor.timeout 5s, 3 probes: 4s of probing
    assert probe_plan(cfg, config.Kernel(name="a", command=["a"]), 3) == (3, pytest.approx(4 / 3))
    slow_ok = config.Kernel(name="b", command=["b"], latency_p95_ms=1500.0)
    assert probe_plan(cfg, slow_ok, 3) == (1, 3.0)  # one probe of 3s rather than three too short


async def test_a_probe_that_times_out_is_a_slow_sample_and_a_latency_spike(tmp_path: Path) -> None:
    server = await HealthServer().start()
    try:
        kernel = config.Kernel(name="api", command=["a"], health_url=server.url)  # p95 limit 500ms
        env = make_env(_cfg(tmp_path, [kernel], probes=3), StateStore(tmp_path / "s"))
        trig = LatencyQueue(env)
        assert (await trig.check()).findings == []
        server.delay = 2.0  # longer than each probe may wait (4/3 s)
        res = await trig.check()
        assert res.errors == [] and res.stats["timeouts.api"] == 3
        [f] = res.findings
        assert isinstance(f, events.LatencySpike)
        assert f.p95_ms >= 1333 and f.timeouts == 3 and f.samples == 6
    finally:
        await server.stop()


def _pool_process(cfg: config.Config, kernel: str) -> subprocess.Popen[bytes]:
    """A process as the supervisor starts one instance of `kernel` (its environment marks)."""
    env = {**os.environ, "GRACE_HOST": cfg.host, "GRACE_KERNEL": kernel, "GRACE_INSTANCE": "0",
           "GRACE_KERNEL_STATE": str(cfg.data_path / "actuator" / f"{cfg.host}-kernels.json")}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env)


async def test_a_low_backlog_with_more_than_min_workers_is_queue_backlog_low(
        bus: Bus, tmp_path: Path) -> None:
    shipped = shipped_system(tmp_path / "system")
    worker = shipped.kernel("worker")
    assert worker is not None and worker.queue is not None and worker.pool is not None
    assert (worker.queue.max_backlog, worker.queue.low_backlog, worker.pool.min) == (200, 10, 1)
    stream, subject = f"JOBS_{uuid.uuid4().hex[:8]}", f"jobs.{uuid.uuid4().hex[:8]}"
    worker = msgspec.structs.replace(worker, queue=msgspec.structs.replace(worker.queue, stream=stream))
    cfg = msgspec.structs.replace(shipped, kernels=[worker], host="lowq-" + uuid.uuid4().hex[:8])
    await bus.js.add_stream(api.StreamConfig(name=stream, subjects=[subject]))
    await bus.js.add_consumer(stream, api.ConsumerConfig(durable_name="workers",
                                                         ack_policy=api.AckPolicy.EXPLICIT))
    procs = [_pool_process(cfg, "worker")]
    trig = LatencyQueue(make_env(cfg, StateStore(tmp_path / "s"), bus))
    try:
        for i in range(11):
            await bus.js.publish(subject, b"job %d" % i)
        res = await trig.check()
        assert res.findings == [] and res.stats["backlog.worker"] == 11  # above low_backlog
        await bus.js.publish(subject, b"late")
        sub = await bus.js.pull_subscribe(subject, durable="workers", stream=stream)
        done = 0
        while done < 10:  # work done: 2 left, at or below 10 (a fetch may return fewer)
            for m in await sub.fetch(10 - done, timeout=5):
                await m.ack_sync(); done += 1  # noqa: E702
        res = await trig.check()
        assert res.findings == [] and res.stats["workers.worker"] == 1  # the pool is at its min
        procs.append(_pool_process(cfg, "worker"))
        [f] = (await trig.check()).findings
        assert isinstance(f, events.QueueBacklogLow)
        assert (f.kernel, f.backlog, f.threshold, f.workers, f.min_workers) == ("worker", 2, 10, 2, 1)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        await bus.js.delete_stream(stream)
