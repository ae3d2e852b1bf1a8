"""telemetry_drift: a real HTTP endpoint whose latency distribution and JSON shape change."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec

from grace import config, events
from producers.base import make_env
from producers.latency_queue import LatencyQueue
from producers.state import StateStore
from producers.stats import psi
from producers.telemetry_drift import TelemetryDrift, shape
from tests.producers.web import HealthServer


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = random.Random(7)
    base = [rng.gauss(10, 1) for _ in range(500)]
    same = [rng.gauss(10, 1) for _ in range(500)]
    shifted = [rng.gauss(13, 1) for _ in range(500)]
    assert psi(base, same) < 0.1
    assert psi(base, shifted) > 1.0
    assert psi(base[:100], same[:100]) < 0.25  # few samples, few bins: no false alarm


def test_shape_maps_paths_to_types() -> None:
    assert shape({"a": 1, "b": [{"c": "x"}], "d": None}) == {
        "$": "object", "$.a": "number", "$.b": "array", "$.b[]": "object", "$.b[].c": "string",
        "$.d": "null"}


async def test_latency_shift_and_health_shape_change_are_reported(tmp_path: Path) -> None:
    server = await HealthServer().start()
    try:
        cfg = config.load(None)
        th = msgspec.structs.replace(cfg.thresholds, latency_probes=100, drift_min_samples=100,
                                     latency_min_samples=1000)
        kernel = config.Kernel(name="api", command=["a"], health_url=server.url, latency_p95_ms=10_000)
        cfg = msgspec.structs.replace(cfg, kernels=[kernel], thresholds=th, config_dir=str(tmp_path))
        env = make_env(cfg, StateStore(tmp_path / "state"))
        probes, drift = LatencyQueue(env), TelemetryDrift(env)
        await probes.check()
        assert (await drift.check()).findings == []  # baseline and shape recorded
        server.delay = 0.02
        server.body = {"status": "ok", "uptime": "1d", "version": "2"}
        await probes.check()
        res = await drift.check()
        by_type = {f.TYPE: f for f in res.findings}
        td, sd = by_type["telemetry_drift"], by_type["schema_drift"]
        assert isinstance(td, events.TelemetryDrift) and td.value > 0.25 and td.kernel == "api"
        # the evidence a fix task carries: the metric then and now (a 20 ms delay added)
        assert td.baseline_median is not None and td.recent_median is not None
        assert td.recent_median - td.baseline_median >= 15
        assert isinstance(sd, events.SchemaDrift)
        assert sd.added == ["$.version"] and "$.checks" in sd.removed
        assert sd.changed == ["$.uptime: number -> string"]
        # the recorded shape and baseline are persisted: a new process still sees the drift
        again = await TelemetryDrift(make_env(cfg, StateStore(tmp_path / "state"))).check()
        assert [f.TYPE for f in again.findings] == ["schema_drift"]
    finally:
        await server.stop()
