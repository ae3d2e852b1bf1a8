"""A model larger than one verify chunk is verified in pieces across monitor cycles, at the
shipped defaults, counted from model_integrity's check results in the real log.

The model is 2.25 chunks (a sparse file: reads as zeros, costs no disk), so each full
verify spans three runs: two full chunks and a quarter."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from actuators import snapshots
from bench.monitor_scale import MODEL, ScaleSystem, build
from grace import events, integrity
from grace.bus import Bus
from grace.config import Thresholds
from producers import fullverify
from producers.base import make_env
from producers.files import VERIFY_CHUNK
from producers.model_integrity import ModelIntegrity
from producers.monitor import TriggerMonitor
from producers.state import StateStore
from tests.producers.logread import log_events, of_type

SIZE = 2 * VERIFY_CHUNK + VERIFY_CHUNK // 4
RUNS_PER_VERIFY = 3


@dataclass(frozen=True)
class Run:
    findings: int
    rehashed: float
    verifying: float
    restarted: float


async def _runs(bus: Bus, host: str) -> list[Run]:
    done = of_type(await log_events(bus, host), "check_completed", trigger="model_integrity")
    return [Run(e.data.findings, e.data.stats["rehashed"], e.data.stats["verifying"],
                e.data.stats["verify_restarted"])
            for e in done if isinstance(e.data, events.CheckCompleted)]


async def _corruptions(bus: Bus, host: str) -> list[events.ModelCorruption]:
    return [e.data for e in of_type(await log_events(bus, host), "model_corruption")
            if isinstance(e.data, events.ModelCorruption)]


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def _outside_samples(offset: int) -> int:
    """`offset` moved past any block fullverify.sample reads, so only a full verify sees it."""
    span = SIZE - fullverify.SAMPLE_BLOCK
    for i in range(fullverify.SAMPLES):
        start = span * i // (fullverify.SAMPLES - 1)
        if start <= offset < start + fullverify.SAMPLE_BLOCK:
            offset = start + fullverify.SAMPLE_BLOCK
    return offset


async def _monitor(bus: Bus, tmp_path: Path) -> tuple[ScaleSystem, TriggerMonitor, str]:
    host = "chunk-" + uuid.uuid4().hex[:8]
    system = build(tmp_path, 10, model_bytes=SIZE, log_bytes=1024**2, instances=1, host=host)
    mon = TriggerMonitor(system.cfg, Bus(bus.transport, host, f"grace/{host}/producers"),
                         StateStore(system.cfg.data_path / "state"))
    return system, mon, host


async def test_a_model_larger_than_one_chunk_is_verified_over_several_cycles_without_check_failed(
        bus: Bus, tmp_path: Path) -> None:
    every = Thresholds().model_integrity.full_verify_every  # the shipped default
    assert every > RUNS_PER_VERIFY
    cycles = 2 * every + RUNS_PER_VERIFY + 2
    system, mon, host = await _monitor(bus, tmp_path)
    try:
        for _ in range(cycles):
            await mon.run_cycle()
        failed = of_type(await log_events(bus, host), "check_failed")
        assert failed == [], [e.data for e in failed]
        runs = await _runs(bus, host)
        assert len(runs) == cycles
        # a verify starts on runs 1, 1 + every, ... and completes RUNS_PER_VERIFY runs later
        done = RUNS_PER_VERIFY - 1
        assert [r.rehashed for r in runs] == [1.0 if i % every == done else 0.0 for i in range(cycles)]
        assert [r.verifying for r in runs] == [1.0 if i % every < done else 0.0 for i in range(cycles)]
        assert sum(r.rehashed for r in runs) == len(range(0, cycles, every))
        assert all(r.findings == 0 for r in runs)
    finally:
        system.stop()


async def test_a_corruption_in_the_middle_of_a_large_model_is_found_by_the_full_verify_and_restored(
        bus: Bus, tmp_path: Path) -> None:
    system, mon, host = await _monitor(bus, tmp_path)
    cfg = system.cfg
    try:
        [taken] = snapshots.take(cfg, [MODEL])
        assert isinstance(taken, events.SnapshotTaken)
        model = cfg.path(MODEL)
        for _ in range(RUNS_PER_VERIFY):  # the first full verify: the model is sound
            await mon.run_cycle()
        assert (await _runs(bus, host))[-1].rehashed == 1.0
        assert await _corruptions(bus, host) == []

        _flip(model, _outside_samples(SIZE // 2))
        for i in range(RUNS_PER_VERIFY):
            await mon.run_cycle()
            if i < RUNS_PER_VERIFY - 1:  # the samples match: nothing is claimed before the hash ends
                assert await _corruptions(bus, host) == []
        [found] = await _corruptions(bus, host)
        assert found.path == MODEL and found.reason == "sha256 differs from the accepted baseline"
        assert found.actual_sha256 is not None and found.actual_sha256 != found.expected_sha256
        assert (await _runs(bus, host))[-1] == Run(findings=1, rehashed=1.0, verifying=0.0,
                                                   restarted=0.0)

        restored, written = snapshots.restore(cfg, MODEL, "model")
        assert written and restored.sha256 == found.expected_sha256
        for _ in range(RUNS_PER_VERIFY):  # the restored model is verified again, in pieces
            await mon.run_cycle()
        # the finding stands until the full verify has seen the restored content
        assert [r.findings for r in (await _runs(bus, host))[-RUNS_PER_VERIFY:]] == [1, 1, 0]
        assert (await _runs(bus, host))[-1] == Run(findings=0, rehashed=1.0, verifying=0.0,
                                                   restarted=0.0)
        assert integrity.sha256_file(model) == found.expected_sha256
        assert of_type(await log_events(bus, host), "check_failed") == []
    finally:
        system.stop()


async def test_a_change_the_samples_see_is_reported_in_the_cycle_that_notices_it(
        bus: Bus, tmp_path: Path) -> None:
    system, mon, host = await _monitor(bus, tmp_path)
    try:
        for _ in range(RUNS_PER_VERIFY):
            await mon.run_cycle()
        _flip(system.cfg.path(MODEL), SIZE - 1)  # the last byte: inside the last sampled block
        await mon.run_cycle()
        [found] = await _corruptions(bus, host)
        assert found.actual_sha256 is None and "sampled blocks differ" in found.reason
        assert (await _runs(bus, host))[-1].verifying == 1.0  # the full verify goes on
    finally:
        system.stop()


async def test_a_model_changed_during_a_chunked_verify_restarts_it_with_no_false_ok(
        bus: Bus, tmp_path: Path) -> None:
    system, mon, host = await _monitor(bus, tmp_path)
    try:
        await mon.run_cycle()  # run 1: the first chunk is read
        # a byte the verify has already read: resuming would hash old bytes + unchanged rest,
        # i.e. exactly the baseline, and call the corrupt file ok
        _flip(system.cfg.path(MODEL), _outside_samples(VERIFY_CHUNK // 2))
        for _ in range(RUNS_PER_VERIFY):
            await mon.run_cycle()
        runs = await _runs(bus, host)
        assert [r.restarted for r in runs] == [0.0, 1.0, 0.0, 0.0]
        assert [r.rehashed for r in runs] == [0.0, 0.0, 0.0, 1.0]
        assert [r.findings for r in runs] == [0, 0, 0, 1]
        [found] = await _corruptions(bus, host)
        assert found.reason == "sha256 differs from the accepted baseline"
    finally:
        system.stop()


async def test_a_model_of_exactly_two_chunks_is_verified_in_two_runs(tmp_path: Path) -> None:
    system = build(tmp_path, 1, model_bytes=2 * VERIFY_CHUNK, log_bytes=1024, instances=1)
    try:
        trig = ModelIntegrity(make_env(system.cfg, StateStore(tmp_path / "state")))
        stats = [(await trig.check()).stats for _ in range(3)]
        assert [s["rehashed"] for s in stats] == [0.0, 1.0, 0.0]
        assert [s["verify_mib"] for s in stats] == [128.0, 128.0, 0.0]
    finally:
        system.stop()
