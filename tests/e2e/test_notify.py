"""`grace up` on the example as shipped, with a notify sink: a local receiver (aiohttp on
127.0.0.1, down at first) gets the shipped playbooks' notification of an approval request
exactly once, the notify command's result records the HTTP status, and the host's other
commands (a model restore) run while the notification is still being retried."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from grace import events
from tests.actuators.receiver import Receiver
from tests.e2e.conftest import _bus_of, booted, expect, shipped_copy, watch_from_now

pytestmark = pytest.mark.slow
INTERVAL_S = 30  # the shipped monitor.interval
SHIPPED = Path(__file__).resolve().parents[2] / "playbooks"


def with_sink(root: Path, cfg: Path, url: str) -> None:
    """The shipped playbooks (config drift asks a person first) and one sink: `url`."""
    (root / "playbooks").mkdir()
    text = (SHIPPED / "advanced_self_healing.yaml").read_text()
    text = text.replace("  - name: config_drift_detected\n",
                        "  - name: config_drift_detected\n    mode: approve\n")
    (root / "playbooks" / "self_healing.yaml").write_text(text)
    (root / "playbooks" / "notifications.yaml").write_text((SHIPPED / "notifications.yaml").read_text())
    body = re.sub(r"playbooks: \[[^\]]*\]", "playbooks: [playbooks]", cfg.read_text())
    cfg.write_text(body + f'notify:\n  - {{name: ops, url: "{url}", format: cloudevents}}\n')


async def test_a_sink_that_is_down_gets_one_notification_and_holds_up_no_restore(
        tmp_path: Path) -> None:
    """An approval request is notified through a sink that fails (503) until a model restore
    on the same host has its result: the restore does not wait behind the retries, and the
    notification arrives exactly once when the sink comes back."""
    rx = await Receiver(then=503).start()
    try:
        root = tmp_path / "system"
        cfg = shipped_copy(root, host="notify")
        with_sink(root, cfg, rx.url)
        with booted(root, cfg) as running:
            async for bus in _bus_of(running):
                w = await watch_from_now(bus)
                try:
                    running.fault("config-drift")
                    req = await expect(w, events.ApprovalRequested,
                                       lambda d: d.playbook == "config_drift_detected",
                                       timeout=INTERVAL_S + 10)
                    issued = await expect(w, events.CommandIssued,
                                          lambda d: d.playbook == "notify_approval_requested",
                                          timeout=30)
                    assert await _until(lambda: bool(rx.got), 30), "the sink was never tried"
                    running.fault("model-corruption")  # same host, while notify retries
                    restored = await expect(w, events.CommandSucceeded,
                                            lambda d: d.playbook == "model_corruption_detected",
                                            timeout=25)
                    cid = issued.command_id
                    assert not [e for e in w.seen if isinstance(e.data, events.Result)
                                and e.data.command_id == cid], "notify ended before the restore"
                    assert not rx.accepted()
                    rx.then = 202  # the sink is back
                    done = await expect(w, events.CommandSucceeded,
                                        lambda d, c=cid: d.command_id == c, timeout=60)
                finally:
                    await w.close()
        order = [e.data.command_id for e in w.seen if isinstance(e.data, events.Result)]
        assert order.index(restored.command_id) < order.index(cid)
        assert done.action == "notify" and done.details["status"] == 202
        assert done.details["tries"] == len(rx.got) >= 2
        [got] = rx.accepted()
        assert got.content_type == "application/cloudevents+json"
        assert got.body["id"] == cid and got.body["type"] == "notify"
        assert f"grace approve {req.command_id}" in got.body["data"]["text"]
        assert got.body["data"]["target"] == req.target
        assert [g.status for g in rx.got] == [503] * (len(rx.got) - 1) + [202]  # none after
    finally:
        await rx.stop()


async def _until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll `done` (a local receiver's record) until true; False after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not done():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.05)
    return True
