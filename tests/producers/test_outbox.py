"""A producer cut off from NATS keeps its findings in a bounded outbox and publishes them,
once and in order, when the link returns; a full outbox refuses loudly and records the loss."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest

from grace import bus as bus_mod
from grace import config, events
from grace.embedded import EmbeddedServer
from producers.base import CheckResult, Env
from producers.monitor import TriggerMonitor
from producers.outbox import Outbox
from producers.state import StateStore
from tests.producers.logread import log_events, of_type
from tests.producers.sample import write_system
from tests.support import wait_for


class NewDriftEachRun:
    """Each run finds one new drifted file: drift-0, drift-1, ... (and the previous one clears)."""

    NAME: ClassVar[str] = "new_drift"
    WATCHES_FILES: ClassVar[bool] = False
    runs = 0

    def __init__(self, env: Env) -> None:
        self.env = env

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        n, NewDriftEachRun.runs = NewDriftEachRun.runs, NewDriftEachRun.runs + 1
        return CheckResult(findings=[events.ConfigDrift(path=f"drift-{n}", expected_sha256="a" * 64,
                                                        actual_sha256="b" * 64)])


def _drifts(evs: list[events.Event]) -> list[int]:
    return [int(e.data.path.split("-")[1]) for e in of_type(evs, "config_drift")]


async def test_findings_made_while_nats_is_down_arrive_once_and_in_order_when_it_is_back(
        tmp_path: Path, fresh_server: EmbeddedServer) -> None:
    cfg = write_system(tmp_path, {"host": "outbox-" + uuid.uuid4().hex[:8],
                                  "monitor": {"interval": "0.3s", "timeout": "2s", "watch_files": False}})
    b = await bus_mod.connect_and_ensure(fresh_server.url, host=cfg.host,
                                         source=f"grace/{cfg.host}/producers")
    NewDriftEachRun.runs = 0
    mon = TriggerMonitor(cfg, b, StateStore(cfg.data_path / "state"),
                         triggers={"new_drift": NewDriftEachRun})  # type: ignore[dict-item]
    stop = asyncio.Event()
    task = asyncio.create_task(mon.run(stop))
    try:
        await wait_for(lambda: _has_drift(b, cfg.host, 1), timeout=20, interval=0.1)
        fresh_server.kill()  # the host's link to JetStream is gone
        down_at = NewDriftEachRun.runs
        # findings keep being made while it is down: they wait in the outbox, in order
        await wait_for(lambda: NewDriftEachRun.runs >= down_at + 4
                       and len(of_type(mon.pending, "config_drift")) >= 3, timeout=60, interval=0.1)
        fresh_server.restart()
        made = NewDriftEachRun.runs
        await wait_for(lambda: _has_drift(b, cfg.host, made - 1), timeout=60, interval=0.2)
    finally:
        stop.set()
        await task
    evs = await log_events(b, cfg.host)
    await b.close()
    seen = _drifts(evs)
    assert seen[: made] == list(range(made)), seen  # every finding, in the order it was made
    assert not [i for i, n in Counter(e.id for e in evs).items() if n > 1]  # each event once
    assert not of_type(evs, "producer_buffer_overflow")


async def _has_drift(b: bus_mod.Bus, host: str, n: int) -> bool:
    return n in _drifts(await log_events(b, host))


def test_a_full_outbox_keeps_the_oldest_refuses_the_rest_loudly_and_records_the_loss(
        caplog: pytest.LogCaptureFixture) -> None:
    capacity = config.Config().nats.outbox_max  # the shipped bound
    box = Outbox(capacity, "web-1", "grace/web-1/producers")

    def event(payload: events.Payload) -> events.Event:
        return events.make_event(payload, host="web-1", source="grace/web-1/producers")
    drift = [event(events.ConfigDrift(path=f"f{i}", expected_sha256="a", actual_sha256="b"))
             for i in range(capacity + 3)]
    done = event(events.CheckCompleted(trigger="t", duration_ms=1.0, outcome="ok", cycle=1))
    with caplog.at_level(logging.ERROR, logger="producers.outbox"):
        for ev in [*drift, done]:
            box.put(ev)
    assert box.events == drift[:capacity]  # the oldest kept, in order
    (line,) = [r.getMessage() for r in caplog.records]
    assert "outbox is full" in line and f"nats.outbox_max (now {capacity})" in line
    lost = box.take_overflow()
    assert lost is not None and isinstance(lost.data, events.ProducerBufferOverflow)
    assert (lost.data.refused, lost.data.findings_refused, lost.data.capacity) == (4, 3, capacity)
    assert lost.data.first_refused == drift[capacity].time and lost.data.last_refused == done.time
    assert box.take_overflow() is None  # recorded once
