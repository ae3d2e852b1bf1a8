"""From the operator's command to every surface: a real `grace project` reads the holds and
approvals the CLI wrote, and serves them in the dashboard JSON, /metrics and the file."""

from __future__ import annotations

import json
from pathlib import Path

from grace.embedded import EmbeddedServer
from tests.control.support import cli, operator_config, said
from tests.control.test_approval_cli import request
from tests.projections.live import Projector, until
from tests.support import grace_cmd


async def test_the_live_dashboard_shows_what_the_operator_did(tmp_path: Path,
                                                              fresh_server: EmbeddedServer) -> None:
    from grace import bus as bus_mod

    url = fresh_server.url
    cfg = operator_config(tmp_path / "site")
    site = tmp_path / "site"
    added = cli(site, url, "hold", "add", "path:config/app.yaml", "--for", "1h", "--reason",
                "new pool size", "--by", "erin")
    assert added.returncode == 0, said(added)
    hold_id = added.stdout.split()[1]
    b = await bus_mod.connect_and_ensure(url, host="t", source="grace/t/test")
    try:
        cid = await request(b, cfg.host)
    finally:
        await b.close()

    p = Projector(url, tmp_path / "proj").start()
    try:
        def served() -> dict:  # type: ignore[type-arg]
            status, body = p.get("/operator/dashboard")
            return json.loads(body) if status == 200 else {}

        until(lambda: served().get("approvals", {}).get("pending") == 1, what="the request")
        body = served()
        assert body["holds"]["active"] == 1
        (h,) = body["holds"]["items"]
        assert (h["hold_id"], h["target"], h["by"], h["host"]) == (
            hold_id, "path:config/app.yaml", "erin", cfg.host)
        assert body["approvals"]["items"][0]["command_id"] == cid
        _, metrics = p.get("/metrics")
        assert "grace_holds_active 1.0" in metrics.decode()
        assert "grace_approvals_pending 1.0" in metrics.decode()

        assert cli(site, url, "hold", "release", hold_id).returncode == 0
        assert cli(site, url, "approve", cid).returncode == 0
        until(lambda: served().get("holds", {}).get("active") == 0
              and served()["approvals"]["pending"] == 0, what="release and approval")
        _, metrics = p.get("/metrics")
        assert "grace_holds_active 0.0" in metrics.decode()
        assert "grace_approvals_pending 0.0" in metrics.decode()
        # the published file, read by `grace dashboard`, agrees once it has the last event
        until(lambda: json.loads(grace_cmd(
            "dashboard", "--json", "-c", str(p.cfg), "--data-dir", str(p.data)).stdout or "{}"
        ).get("holds", {}).get("active") == 0, what="the published file")
    finally:
        p.stop()
