"""`grace hold add | list | release` with the real CLI against a real nats-server."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from grace import events
from grace.bus import Bus
from grace.embedded import EmbeddedServer
from tests.control.support import cli, operator_config, operator_events, said


async def test_a_hold_is_added_listed_and_released_through_the_log(
        tmp_path: Path, fresh_server: EmbeddedServer, ) -> None:
    from grace import bus as bus_mod

    url = fresh_server.url
    cfg = operator_config(tmp_path)
    added = cli(tmp_path, url, "hold", "add", "kernel:api", "--for", "30m", "--reason",
                "migrating the api database", "--by", "alice")
    assert added.returncode == 0, said(added)
    hold_id = added.stdout.split()[1]
    assert len(hold_id) == 8 and int(hold_id, 16) >= 0
    assert f"grace hold release {hold_id}" in added.stdout and "kernel:api" in added.stdout

    listed = cli(tmp_path, url, "hold", "list", "--json")
    assert listed.returncode == 0, said(listed)
    (item,) = json.loads(listed.stdout)
    assert item["hold_id"] == hold_id and item["target"] == "kernel:api"
    assert item["host"] == cfg.host and item["by"] == "alice" and item["via"] == "cli"
    assert item["reason"] == "migrating the api database" and 1790 < item["left_s"] <= 1800
    text = cli(tmp_path, url, "hold", "list")
    assert hold_id in text.stdout and "kernel:api" in text.stdout and "29m" in text.stdout

    released = cli(tmp_path, url, "hold", "release", hold_id)
    assert released.returncode == 0, said(released)
    empty = cli(tmp_path, url, "hold", "list")
    assert empty.returncode == 0 and empty.stdout.strip() == "no active holds"
    assert json.loads(cli(tmp_path, url, "hold", "list", "--json").stdout) == []

    again = cli(tmp_path, url, "hold", "release", hold_id)
    assert again.returncode == 2 and "already" in again.stderr, said(again)
    assert getpass.getuser() in again.stderr and "Nothing was published" in again.stderr

    bus = await bus_mod.connect_and_ensure(url, host="t", source="grace/t/test")
    try:
        add_ev, rel_ev = await operator_events(bus, cfg.host)
    finally:
        await bus.close()
    a, r = add_ev.data, rel_ev.data
    assert isinstance(a, events.HoldAdded) and isinstance(r, events.HoldReleased)
    assert a.hold_id == r.hold_id == hold_id and a.target == r.target == "kernel:api"
    assert a.for_s == 1800 and a.until - add_ev.time == timedelta(minutes=30)
    assert a.by == "alice" and r.by == getpass.getuser() and r.via == a.via == "cli"
    assert r.reason == "released" and rel_ev.host == add_ev.host == cfg.host


def test_every_bad_hold_is_refused_with_exit_2_and_nothing_published(
        tmp_path: Path, nats_url: str) -> None:
    operator_config(tmp_path)

    def refused(*args: str) -> str:
        res = cli(tmp_path, nats_url, "hold", "add", *args)
        assert res.returncode == 2, said(res)
        assert "published" not in res.stdout and res.stdout == "", said(res)
        return res.stderr

    ok = ("--reason", "maintenance")
    assert "is not one of path:" in refused("api", "--for", "5m", *ok)
    assert "is not one of" in refused("service:api", "--for", "5m", *ok)
    assert "must be a number" in refused("kernel:api/x", "--for", "5m", *ok)
    err = refused("path:config/other.yaml", "--for", "5m", *ok)
    assert "not a protected file" in err and "config/app.yaml, models/m.pkl" in err
    assert "not a protected file" in refused("path:/etc/passwd", "--for", "5m", *ok)
    err = refused("kernel:apii", "--for", "5m", *ok)
    assert "no kernel named 'apii'" in err and "api, reporter" in err
    err = refused("kernel:api/3", "--for", "5m", *ok)
    assert "instances 0..2" in err and "pool max 3" in err
    assert "instances 0..0" in refused("kernel:reporter/1", "--for", "5m", *ok)
    err = refused("playbook:no_such_playbook", "--for", "5m", *ok)
    assert "no playbook named 'no_such_playbook'" in err and "config_drift_detected" in err
    err = refused("kernel:api", *ok)
    assert "--for is required" in err and "at most holds.max, 1d in this config" in err
    assert "more than 0s" in refused("kernel:api", "--for", "0s", *ok)
    assert "expected a duration" in refused("kernel:api", "--for", "-5m", *ok)
    assert "expected a duration" in refused("kernel:api", "--for", "soon", *ok)
    err = refused("kernel:api", "--for", "25h", *ok)
    assert "longer than the longest hold" in err and "holds.max" in err
    assert "--reason is empty" in refused("kernel:api", "--for", "5m", "--reason", "  ")


async def test_refused_holds_leave_the_log_untouched(tmp_path: Path, nats_url: str,
                                                     bus: Bus) -> None:
    cfg = operator_config(tmp_path)
    for args in (["kernel:nope", "--for", "5m"], ["kernel:api", "--for", "2d"],
                 ["kernel:api/9", "--for", "5m"], ["kernel:api"], ["path:nope", "--for", "1m"]):
        res = cli(tmp_path, nats_url, "hold", "add", *args, "--reason", "x")
        assert res.returncode == 2, said(res)
    assert await operator_events(bus, cfg.host) == []


async def test_a_protected_path_is_accepted_as_typed_and_stored_as_findings_name_it(
        tmp_path: Path, nats_url: str, bus: Bus) -> None:
    cfg = operator_config(tmp_path)
    app = tmp_path / "config" / "app.yaml"
    for typed, cwd in (("path:app.yaml", tmp_path / "config"), (f"path:{app}", Path("/")),
                       ("path:config/app.yaml", Path("/")),
                       ("path:../config/./app.yaml", tmp_path / "models")):
        res = cli(tmp_path, nats_url, "hold", "add", typed, "--for", "10m", "--reason", "edit",
                  cwd=cwd)
        assert res.returncode == 0, said(res)
    targets = [e.data.target for e in await operator_events(bus, cfg.host)]  # type: ignore[attr-defined]
    assert targets == ["path:config/app.yaml"] * 4


async def test_playbook_host_and_instance_targets_are_accepted(tmp_path: Path, nats_url: str,
                                                               bus: Bus) -> None:
    cfg = operator_config(tmp_path)
    for target in ("playbook:config_drift_detected", f"host:{cfg.host}", "kernel:api/2",
                   "kernel:reporter/0"):
        res = cli(tmp_path, nats_url, "hold", "add", target, "--for", "24h", "--reason", "r")
        assert res.returncode == 0, said(res)
    evs = await operator_events(bus, cfg.host)
    assert [e.data.target for e in evs] == [  # type: ignore[attr-defined]
        "playbook:config_drift_detected", f"host:{cfg.host}", "kernel:api/2", "kernel:reporter/0"]
    assert len({e.data.hold_id for e in evs}) == 4  # type: ignore[attr-defined]
    # a hold on another host travels on that host's subject (its processor partition reads it)
    other = f"{cfg.host}-db"
    res = cli(tmp_path, nats_url, "hold", "add", f"host:{other}", "--for", "1h", "--reason", "r")
    assert res.returncode == 0 and f"added on {other}: host:{other}" in res.stdout, said(res)
    (ev,) = await operator_events(bus, other)
    assert ev.data.target == f"host:{other}"  # type: ignore[attr-defined]
    hold_id = res.stdout.split()[1]
    released = cli(tmp_path, nats_url, "hold", "release", hold_id)
    assert released.returncode == 0, said(released)
    assert [e.type for e in await operator_events(bus, other)] == ["hold_added", "hold_released"]


async def test_release_refuses_unknown_and_expired_holds_naming_what_is_known(
        tmp_path: Path, nats_url: str, bus: Bus) -> None:
    cfg = operator_config(tmp_path)
    now = datetime.now(UTC)
    # a hold whose time is up, and the processor has not recorded its expiry yet
    ended = events.HoldAdded(hold_id="0e0e0e0e", target="kernel:api", until=now - timedelta(
        seconds=1), for_s=60, reason="short", by="bob")
    await bus.publish(bus.event(ended, host=cfg.host))
    # one whose expiry the processor recorded
    recorded = events.HoldAdded(hold_id="0f0f0f0f", target="kernel:api", until=now - timedelta(
        seconds=5), for_s=60, reason="short", by="bob")
    await bus.publish(bus.event(recorded, host=cfg.host))
    await bus.publish(bus.event(events.HoldReleased(
        hold_id="0f0f0f0f", target="kernel:api", by="grace", via="expiry", reason="expired"),
        host=cfg.host))
    live = cli(tmp_path, nats_url, "hold", "add", "kernel:api", "--for", "1h", "--reason", "r")
    live_id = live.stdout.split()[1]
    before = len(await operator_events(bus, cfg.host))

    res = cli(tmp_path, nats_url, "hold", "release", "deadbeef")
    assert res.returncode == 2 and "no hold with id 'deadbeef'" in res.stderr, said(res)
    assert live_id in res.stderr and "Active holds" in res.stderr
    res = cli(tmp_path, nats_url, "hold", "release", "0e0e0e0e")
    assert res.returncode == 2 and "expired already" in res.stderr, said(res)
    res = cli(tmp_path, nats_url, "hold", "release", "0f0f0f0f")
    assert res.returncode == 2 and "expired already: recorded by grace (via expiry)" in res.stderr
    assert len(await operator_events(bus, cfg.host)) == before

    listed = json.loads(cli(tmp_path, nats_url, "hold", "list", "--json").stdout)
    mine = [h["hold_id"] for h in listed if h["host"] == cfg.host]
    assert mine == [live_id]  # the ones past their `until` are not active
