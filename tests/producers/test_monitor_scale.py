"""The monitor at scale (bench/monitor_scale.py's system): the model is rehashed in full
only every `full_verify_every` cycles, counted from the check results in the real log.

The model is 64 MiB rather than the bench's 2 GiB: it fits one verify chunk, so each full
verify is one run; a model verified in pieces over several runs is test_chunked_verify.py."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from bench.monitor_scale import MODEL, build
from grace import events
from grace.bus import Bus
from grace.config import Thresholds
from producers.monitor import TriggerMonitor
from producers.state import StateStore
from tests.producers.logread import log_events, of_type

CYCLES = 25


async def _model_rehashes(bus: Bus, host: str) -> list[float]:
    done = of_type(await log_events(bus, host), "check_completed", trigger="model_integrity")
    return [e.data.stats["rehashed"] for e in done if isinstance(e.data, events.CheckCompleted)]


async def test_a_large_model_is_rehashed_only_every_full_verify_every_cycles(
        bus: Bus, tmp_path: Path) -> None:
    every = Thresholds().model_integrity.full_verify_every  # the shipped default
    assert 2 * every < CYCLES
    host = "scale-" + uuid.uuid4().hex[:8]
    system = build(tmp_path, 1_000, model_bytes=64 * 1024**2, log_bytes=1024**2, instances=50,
                   host=host)
    try:
        cfg = system.cfg
        mon = TriggerMonitor(cfg, Bus(bus.transport, host, f"grace/{host}/producers"),
                             StateStore(cfg.data_path / "state"))
        for _ in range(CYCLES):
            await mon.run_cycle()
        failed = of_type(await log_events(bus, host), "check_failed")
        assert failed == [], [e.data for e in failed]
        rehashed = await _model_rehashes(bus, host)
        assert len(rehashed) == CYCLES
        # runs 1, 1 + every, 1 + 2 * every, ...: the first run and each full verify
        expected = [1.0 if i % every == 0 else 0.0 for i in range(CYCLES)]
        assert rehashed == expected

        # the counter is live: a changed stamp (mtime) is rehashed at once, outside the schedule
        model = cfg.path(MODEL)
        st = model.stat()
        os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        await mon.run_cycle()
        assert (await _model_rehashes(bus, host))[-1] == 1.0
    finally:
        system.stop()
