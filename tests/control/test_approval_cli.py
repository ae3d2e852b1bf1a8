"""`grace approve | deny | approvals` against requests published as the processor would."""

from __future__ import annotations

import getpass
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from control.approval_cli import decision_id
from grace import events
from grace.bus import Bus
from tests.control.support import cli, operator_config, operator_events, said


async def request(bus: Bus, host: str, *, expires_in: float = 900,
                  playbook: str = "config_drift_detected") -> str:
    """Publish approval_requested for a fresh command id, as an `approve` playbook's match does."""
    command_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    await bus.publish(bus.event(events.ApprovalRequested(
        playbook=playbook, command_id=command_id, action="restore_from_snapshot",
        target="config/app.yaml", cause_ids=["e1"], reason="config/app.yaml drifted",
        params={"path": "config/app.yaml"}, within_s=900,
        expires_at=now + timedelta(seconds=expires_in)), host=host))
    return command_id


async def test_approve_publishes_one_grant_and_refuses_a_second(tmp_path: Path, nats_url: str,
                                                                bus: Bus) -> None:
    cfg = operator_config(tmp_path)
    cid = await request(bus, cfg.host)
    pending = json.loads(cli(tmp_path, nats_url, "approvals", "--json").stdout)
    (item,) = [p for p in pending if p["command_id"] == cid]
    assert item["host"] == cfg.host and item["playbook"] == "config_drift_detected"
    assert item["action"] == "restore_from_snapshot" and item["target"] == "config/app.yaml"
    assert item["params"] == {"path": "config/app.yaml"} and 890 < item["expires_in_s"] <= 900
    text = cli(tmp_path, nats_url, "approvals")
    assert cid in text.stdout and "grace approve COMMAND_ID" in text.stdout

    ok = cli(tmp_path, nats_url, "approve", cid, "--by", "carol")
    assert ok.returncode == 0 and f"approved command {cid}" in ok.stdout, said(ok)
    again = cli(tmp_path, nats_url, "approve", cid)
    assert again.returncode == 2, said(again)
    assert "already approved by carol (via cli)" in again.stderr
    assert "Nothing was published" in again.stderr
    deny = cli(tmp_path, nats_url, "deny", cid, "--reason", "too late")
    assert deny.returncode == 2 and "already approved by carol" in deny.stderr, said(deny)
    assert cid not in cli(tmp_path, nats_url, "approvals").stdout

    (grant,) = await operator_events(bus, cfg.host)
    assert isinstance(grant.data, events.ApprovalGranted)
    assert grant.data.command_id == cid and grant.data.by == "carol" and grant.data.via == "cli"
    assert grant.host == cfg.host  # the request's host: the processor owning it reads it
    # a second person's decision sent at the same moment (past the log check) is dropped by the
    # server: both decisions on one command share one event id
    late = bus.event(events.ApprovalDenied(command_id=cid, by="dave", reason="no"), host=cfg.host,
                     id=decision_id(cid))
    assert (await bus.publish(late)).duplicate
    assert len(await operator_events(bus, cfg.host)) == 1


async def test_a_denied_command_cannot_be_approved(tmp_path: Path, nats_url: str,
                                                   bus: Bus) -> None:
    cfg = operator_config(tmp_path)
    cid = await request(bus, cfg.host)
    no_reason = cli(tmp_path, nats_url, "deny", cid)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    denied = cli(tmp_path, nats_url, "deny", cid, "--reason", "change freeze")
    assert denied.returncode == 0 and f"denied command {cid}" in denied.stdout, said(denied)
    res = cli(tmp_path, nats_url, "approve", cid)
    assert res.returncode == 2, said(res)
    assert f"was denied by {getpass.getuser()} (via cli)" in res.stderr
    assert "change freeze" in res.stderr and "will not be issued" in res.stderr
    (deny_ev,) = await operator_events(bus, cfg.host)
    assert isinstance(deny_ev.data, events.ApprovalDenied)
    assert deny_ev.data.reason == "change freeze" and deny_ev.data.command_id == cid


async def test_expired_and_unknown_requests_are_refused_and_nothing_is_published(
        tmp_path: Path, nats_url: str, bus: Bus) -> None:
    cfg = operator_config(tmp_path)
    past = await request(bus, cfg.host, expires_in=-1)  # its time is up, nothing recorded yet
    recorded = await request(bus, cfg.host)
    await bus.publish(bus.event(events.ApprovalExpired(
        playbook="config_drift_detected", command_id=recorded, target="config/app.yaml"),
        host=cfg.host))
    live = await request(bus, cfg.host)

    res = cli(tmp_path, nats_url, "approve", past)
    assert res.returncode == 2 and "expired at" in res.stderr, said(res)
    assert "approve_within 900s" in res.stderr
    res = cli(tmp_path, nats_url, "deny", recorded, "--reason", "x")
    assert res.returncode == 2 and "approval_expired recorded" in res.stderr, said(res)
    res = cli(tmp_path, nats_url, "approve", "0" * 32)
    assert res.returncode == 2 and "no approval is requested for command id" in res.stderr
    assert live in res.stderr  # the pending ones are named
    assert await operator_events(bus, cfg.host) == []

    pending = [p["command_id"] for p in json.loads(cli(tmp_path, nats_url, "approvals",
                                                       "--json").stdout)]
    assert live in pending and past not in pending and recorded not in pending
