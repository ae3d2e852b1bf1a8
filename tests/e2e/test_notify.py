"""`grace up` on the example as shipped, with a notify sink: a local receiver (aiohttp on
127.0.0.1, down at first) gets the shipped playbooks' notification of an approval request
exactly once, and the notify command's result records the HTTP status."""

from __future__ import annotations

import re
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


async def test_an_approval_request_is_notified_once_through_a_sink_that_was_down(
        tmp_path: Path) -> None:
    rx = await Receiver(script=[(503, "starting"), (503, "starting")]).start()
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
                    done = await expect(w, events.CommandSucceeded,
                                        lambda d, c=issued.command_id: d.command_id == c,
                                        timeout=60)
                finally:
                    await w.close()
        assert done.action == "notify" and done.details["status"] == 202 and done.details["tries"] == 3
        [got] = rx.accepted()
        assert got.content_type == "application/cloudevents+json"
        assert got.body["id"] == issued.command_id and got.body["type"] == "notify"
        assert f"grace approve {req.command_id}" in got.body["data"]["text"]
        assert got.body["data"]["target"] == req.target
        assert [g.status for g in rx.got] == [503, 503, 202]  # nothing more after the 2xx
    finally:
        await rx.stop()
