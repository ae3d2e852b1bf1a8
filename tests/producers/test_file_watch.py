"""Fast reaction: with the monitor running, a model overwritten with garbage reaches the log."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from grace.bus import Bus
from producers.monitor import TriggerMonitor
from producers.registry import TRIGGERS
from producers.state import StateStore
from tests.producers.logread import log_events, of_type
from tests.producers.sample import write_system
from tests.support import wait_for


async def test_model_overwritten_with_garbage_appears_as_model_corruption_in_the_log(
        bus: Bus, tmp_path: Path) -> None:
    # a long interval: only the change notification can report it in time
    cfg = write_system(tmp_path, {"host": "watch-" + uuid.uuid4().hex[:8],
                                  "monitor": {"interval": "1h", "timeout": "5s"}})
    b = Bus(bus.transport, cfg.host, f"grace/{cfg.host}/producers")
    only = {n: TRIGGERS[n] for n in ("model_integrity", "config_drift", "pre_boot_code_diff")}
    mon = TriggerMonitor(cfg, b, StateStore(cfg.data_path / "state"), triggers=only)
    stop = asyncio.Event()
    task = asyncio.create_task(mon.run(stop))
    try:
        async def first_cycle_done() -> bool:
            evs = await log_events(bus, cfg.host)
            return len(of_type(evs, "check_completed", trigger="model_integrity")) >= 1

        await wait_for(first_cycle_done, timeout=10)
        probe = tmp_path / "models" / "probe.txt"  # not protected: only proves the watcher is live

        def watcher_live() -> bool:
            probe.write_text(str(mon.file_batches))
            return mon.file_batches > 0

        await wait_for(watcher_live, timeout=10, interval=0.05)
        (tmp_path / "models" / "m.pkl").write_bytes(os.urandom(4096))

        async def corrupted() -> list[object]:
            return of_type(await log_events(bus, cfg.host), "model_corruption", path="models/m.pkl")

        [ev] = await wait_for(corrupted, timeout=5)
        assert ev.data.expected_sha256 and ev.data.actual_sha256 != ev.data.expected_sha256
        assert ev.data.trigger == "model_integrity"
    finally:
        stop.set()
        await task


def test_watch_routes_changes_to_the_file_triggers_and_skips_grace_data(tmp_path: Path) -> None:
    from watchfiles import Change

    from producers.watch import _Filter, route, watched_folders

    cfg = write_system(tmp_path, {"protect": {"models": ["*.pkl"], "configs": ["config/*.yaml"]}})
    (tmp_path / "top.pkl").write_bytes(b"x")
    assert watched_folders(cfg) == [tmp_path.resolve()]  # "*.pkl" at the top: the whole folder
    routed = route(cfg, {(tmp_path / "top.pkl").resolve(), (tmp_path / "src" / "app.py").resolve(),
                         (tmp_path / "config" / "app.yaml").resolve()})
    assert set(routed) == {"model_integrity", "pre_boot_code_diff", "config_drift"}
    keep = _Filter(cfg)
    assert keep(Change.modified, str(tmp_path / "top.pkl"))
    assert not keep(Change.modified, str(cfg.data_path / "nats" / "store" / "x.blk"))
