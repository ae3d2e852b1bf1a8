"""telemetry_drift: a real HTTP endpoint whose latency distribution and JSON shape change."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import msgspec

from grace import config, events
from grace.bus import Bus
from producers.base import CheckResult, make_env
from producers.latency_queue import LatencyQueue
from producers.monitor import TriggerMonitor
from producers.state import StateStore
from producers.stats import psi
from producers.telemetry_drift import TelemetryDrift, baseline_size, shape
from tests.producers.logread import log_events, of_type
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


async def _runs(probes: LatencyQueue, drift: TelemetryDrift, clock: list[float], n: int
               ) -> list[CheckResult]:
    out = []
    for _ in range(n):
        clock[0] += 30.0
        await probes.check()
        out.append(await drift.check())
    return out


async def test_latency_shift_and_health_shape_change_are_reported(tmp_path: Path) -> None:
    server = await HealthServer().start()
    try:
        cfg = config.load(None)  # default thresholds: 3 probes a run, drift_min_samples 100
        kernel = config.Kernel(name="api", command=["a"], health_url=server.url)
        cfg = msgspec.structs.replace(cfg, kernels=[kernel], config_dir=str(tmp_path))
        assert baseline_size(cfg, kernel) == 100
        clock = [1_800_000_000.0]
        env = make_env(cfg, StateStore(tmp_path / "state"), clock=lambda: clock[0])
        probes, drift = LatencyQueue(env), TelemetryDrift(env)
        # 34 runs of 3 probes fill the baseline, 34 more the recent window: nothing drifts
        quiet = await _runs(probes, drift, clock, 68)
        assert all(r.findings == [] for r in quiet)
        assert quiet[33].stats["baseline_n.api"] == 100 and quiet[-1].stats["recent_n.api"] == 100
        server.delay = 0.05  # two steps of 25 ms (1/20 of latency_p95_ms) above the baseline
        server.body = {"status": "ok", "uptime": "1d", "version": "2"}
        res = (await _runs(probes, drift, clock, 1))[0]
        [sd] = res.findings
        assert isinstance(sd, events.SchemaDrift)
        assert sd.added == ["$.version"] and "$.checks" in sd.removed
        assert sd.changed == ["$.uptime: number -> string"]
        shifted = await _runs(probes, drift, clock, 13)
        first = next(i for i, r in enumerate(shifted) if any(f.TYPE == "telemetry_drift" for f in r.findings))
        # drift shows once ~20-35 of the 100 recent samples have shifted (how many depends on
        # the baseline's spread): at most the 14th shifted run (7 min), counting the run above
        assert first + 2 <= 14
        td = next(f for f in shifted[-1].findings if f.TYPE == "telemetry_drift")
        assert isinstance(td, events.TelemetryDrift) and td.value > 0.25 and td.kernel == "api"
        assert td.baseline_n == 100 and td.recent_n == 100
        # the evidence a fix task carries: the metric then and now (a 50 ms delay added)
        assert td.baseline_p95 is not None and td.recent_p95 is not None
        assert td.recent_p95 - td.baseline_p95 >= 25
        # baseline, recent samples and shape are persisted: a new process still sees both
        again = await TelemetryDrift(make_env(cfg, StateStore(tmp_path / "state"))).check()
        assert sorted(f.TYPE for f in again.findings) == ["schema_drift", "telemetry_drift"]
    finally:
        await server.stop()


async def test_a_baseline_being_collected_survives_a_restart(tmp_path: Path) -> None:
    server = await HealthServer().start()
    try:
        cfg = config.load(None)
        kernel = config.Kernel(name="api", command=["a"], health_url=server.url)
        cfg = msgspec.structs.replace(cfg, kernels=[kernel], config_dir=str(tmp_path))
        clock = [1_800_000_000.0]

        def fresh() -> tuple[LatencyQueue, TelemetryDrift]:
            env = make_env(cfg, StateStore(tmp_path / "state"), clock=lambda: clock[0])
            return LatencyQueue(env), TelemetryDrift(env)

        res = await _runs(*fresh(), clock, 20)
        assert res[-1].stats["baseline_n.api"] == 60
        res = await _runs(*fresh(), clock, 14)  # a restart: the 60 samples are kept
        assert res[-1].stats["baseline_n.api"] == 100 and res[-1].stats["recent_n.api"] == 2
    finally:
        await server.stop()


async def test_a_health_page_that_is_not_json_is_noted_once_not_failed_every_run(
        tmp_path: Path) -> None:
    server = await HealthServer().start()
    server.text = "<html>index</html>"
    try:
        kernel = config.Kernel(name="web", command=["w"], health_url=server.url)
        cfg = msgspec.structs.replace(config.load(None), kernels=[kernel], config_dir=str(tmp_path))
        first = await TelemetryDrift(make_env(cfg, StateStore(tmp_path / "state"))).check()
        assert first.errors == [] and "does not answer JSON" in first.notes[0]
        later = [await TelemetryDrift(make_env(cfg, StateStore(tmp_path / "state"))).check()
                 for _ in range(3)]  # new processes too: the note is remembered
        assert all(r.errors == [] and r.notes == [] and r.findings == [] for r in later)
        assert later[-1].stats["shapes_skipped_not_json"] == 1
        server.text = None  # answers JSON again: its shape is recorded and checked from now on
        back = await TelemetryDrift(make_env(cfg, StateStore(tmp_path / "state"))).check()
        assert back.stats["shapes_recorded"] == 1 and back.stats["shapes_skipped_not_json"] == 0
    finally:
        await server.stop()


async def test_the_monitor_records_the_not_json_reason_once_and_fails_no_check(
        bus: Bus, tmp_path: Path) -> None:
    server = await HealthServer().start()
    server.text = "<html>index</html>"
    try:
        kernel = config.Kernel(name="web", command=["w"], health_url=server.url)
        cfg = msgspec.structs.replace(config.load(None), kernels=[kernel], config_dir=str(tmp_path),
                                      host="nj-" + uuid.uuid4().hex[:8])
        mon = TriggerMonitor(cfg, Bus(bus.transport, cfg.host, f"grace/{cfg.host}/producers"),
                             StateStore(tmp_path / "state"),
                             triggers={"latency_queue": LatencyQueue, "telemetry_drift": TelemetryDrift})
        for _ in range(3):
            await mon.run_cycle()
        evs = await log_events(bus, cfg.host)
        assert of_type(evs, "check_failed") == []
        done = of_type(evs, "check_completed", trigger="telemetry_drift")
        assert len(done) == 3
        assert ["does not answer JSON" in e.data.reason for e in done] == [True, False, False]  # type: ignore[attr-defined]
    finally:
        await server.stop()


async def test_jitter_below_a_step_is_not_drift_a_shift_across_steps_is(tmp_path: Path) -> None:
    server = await HealthServer().start()  # the shape probe; latencies are fed below
    try:
        kernel = config.Kernel(name="api", command=["a"], health_url=server.url)  # steps of 25 ms
        cfg = msgspec.structs.replace(config.load(None), kernels=[kernel], config_dir=str(tmp_path))
        env = make_env(cfg, StateStore(tmp_path / "state"))
        drift = TelemetryDrift(env)
        rng = random.Random(3)

        async def feed(low: float, high: float, n: int) -> CheckResult:
            for _ in range(n):
                env.shared.add_latency("api", 0.0, rng.uniform(low, high))
            return await drift.check()

        await feed(1, 4, 100)  # the baseline: a fast service, 1-4 ms
        res = await feed(15, 24, 100)  # 4x slower, still inside the first 25 ms step
        assert res.stats["psi.api"] == 0.0 and res.findings == []
        res = await feed(60, 70, 10)  # 10 of the last 100 across two steps
        [td] = res.findings
        assert isinstance(td, events.TelemetryDrift) and td.value > 0.25
    finally:
        await server.stop()


async def test_a_spread_baseline_shows_a_full_shift_within_14_runs(tmp_path: Path) -> None:
    server = await HealthServer().start()  # the shape probe; latencies are fed below
    try:
        kernel = config.Kernel(name="api", command=["a"], health_url=server.url)
        cfg = msgspec.structs.replace(config.load(None), kernels=[kernel], config_dir=str(tmp_path))
        for seed in range(5):  # a few baselines spread over 12 steps of 25 ms
            env = make_env(cfg, StateStore(tmp_path / f"state{seed}"))
            drift, rng = TelemetryDrift(env), random.Random(seed)
            for _ in range(200):
                env.shared.add_latency("api", 0.0, rng.lognormvariate(4.3, 0.6))
            assert (await drift.check()).findings == []  # baseline and first recent window
            for run in range(1, 15):  # noqa: B007 - read after the loop
                # the 2 s fault: 3 probes a run, each timing out at 4/3 s
                for _ in range(3):
                    env.shared.add_latency("api", 0.0, 1333.0)
                if (await drift.check()).findings:
                    break
            else:
                raise AssertionError(f"no drift within 14 runs (seed {seed})")
            assert run >= 2  # one slow run is not yet a shift of a spread baseline
    finally:
        await server.stop()
