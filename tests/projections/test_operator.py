"""Holds and approvals in the projection: history rows, and what is active or pending at a
time, from the rows alone (virtual time; real DuckDB files)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from prometheus_client import CollectorRegistry, generate_latest

from grace import events, topology
from projections import queries
from projections.dashboard import read_dashboard
from projections.http import ProjectionCollector
from projections.reducer import Reducer
from projections.store import Store
from tests.support import grace_cmd

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
HOST = "web-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def naive(seconds: float) -> datetime:
    return at(seconds).replace(tzinfo=None)


def requested(cid: str, expires_s: float) -> events.ApprovalRequested:
    return events.ApprovalRequested(
        playbook="config_drift_detected", command_id=cid, action="restore_from_snapshot",
        target="config/app.yaml", cause_ids=["e1"], reason="config/app.yaml drifted",
        params={"path": "config/app.yaml"}, within_s=900, expires_at=at(expires_s))


# (seconds after T0, payload), in log order
STORY: list[tuple[float, events.Payload]] = [
    (0, events.HoldAdded(hold_id="h1", target="kernel:api", until=at(1800), for_s=1800,
                         reason="db migration", by="alice")),
    (1, events.HoldAdded(hold_id="h2", target="path:config/app.yaml", until=at(600), for_s=600,
                         reason="new settings", by="alice")),
    (2, events.HoldAdded(hold_id="h3", target="playbook:config_drift_detected",
                         until=at(7200), for_s=7200, reason="trying it", by="bob")),
    (3, requested("c1", 900)),
    (4, requested("c2", 900)),
    (5, requested("c3", 300)),
    (300, events.HoldReleased(hold_id="h3", target="playbook:config_drift_detected", by="bob")),
    (301, events.ApprovalExpired(playbook="config_drift_detected", command_id="c3",
                                 target="config/app.yaml", detail="nobody answered")),
    (360, events.ApprovalGranted(command_id="c1", by="carol")),
    (420, events.ApprovalDenied(command_id="c2", by="dave", reason="change freeze")),
    (630, events.HoldReleased(hold_id="h2", target="path:config/app.yaml", by="grace",
                              via="expiry", reason="expired")),
]


def encoded(story: list[tuple[float, events.Payload]] = STORY) -> list[tuple[int, str, bytes]]:
    out = []
    for i, (s, payload) in enumerate(story):
        ev = events.make_event(payload, host=HOST, source="grace/test", time=at(s))
        out.append((i + 1, topology.event_subject(payload.CATEGORY, payload.TYPE, HOST),
                    events.encode(ev)))
    return out


def build(path: Path, story: list[tuple[float, events.Payload]] = STORY) -> Store:
    store = Store.open(path)
    items = encoded(story)
    reducer = Reducer()
    store.apply(reducer.reduce(items[:5]))  # two batches: nothing may depend on the split
    store.apply(reducer.reduce(items[5:]))
    return store


def test_every_hold_and_approval_event_is_a_history_row(tmp_path: Path) -> None:
    con = build(tmp_path / "p.duckdb").con
    holds = con.execute('SELECT seq, time, host, type, hold_id, target, "until", reason, "by", '
                        "via, release_reason FROM holds ORDER BY seq").fetchall()
    assert holds == [
        (1, naive(0), HOST, "hold_added", "h1", "kernel:api", naive(1800), "db migration",
         "alice", "cli", None),
        (2, naive(1), HOST, "hold_added", "h2", "path:config/app.yaml", naive(600),
         "new settings", "alice", "cli", None),
        (3, naive(2), HOST, "hold_added", "h3", "playbook:config_drift_detected", naive(7200),
         "trying it", "bob", "cli", None),
        (7, naive(300), HOST, "hold_released", "h3", "playbook:config_drift_detected", None,
         None, "bob", "cli", "released"),
        (11, naive(630), HOST, "hold_released", "h2", "path:config/app.yaml", None, None,
         "grace", "expiry", "expired"),
    ]
    approvals = con.execute('SELECT seq, type, command_id, playbook, action, target, "by", via, '
                            "reason, expires_at, params FROM approvals ORDER BY seq").fetchall()
    req = ("config_drift_detected", "restore_from_snapshot", "config/app.yaml", None, None,
           "config/app.yaml drifted")
    params = '{"path":"config/app.yaml"}'
    assert approvals == [
        (4, "approval_requested", "c1", *req, naive(900), params),
        (5, "approval_requested", "c2", *req, naive(900), params),
        (6, "approval_requested", "c3", *req, naive(300), params),
        (8, "approval_expired", "c3", "config_drift_detected", None, "config/app.yaml", None,
         None, "nobody answered", None, None),
        (9, "approval_granted", "c1", None, None, None, "carol", "cli", None, None, None),
        (10, "approval_denied", "c2", None, None, None, "dave", "cli", "change freeze", None,
         None),
    ]
    # the processor's side also reads as decisions, beside command_issued and suppressions
    assert con.execute("SELECT type, command_id FROM decisions ORDER BY seq").fetchall() == [
        ("approval_requested", "c1"), ("approval_requested", "c2"), ("approval_requested", "c3"),
        ("approval_expired", "c3")]


def active_at(store: Store, seconds: float) -> tuple[list[str], list[str]]:
    body = queries.dashboard(store.con, now=naive(seconds), window_s=600)
    holds, approvals = body["holds"], body["approvals"]
    assert holds["active"] == len(holds["items"]) and approvals["pending"] == len(approvals["items"])
    return ([h["hold_id"] for h in holds["items"]], [a["command_id"] for a in approvals["items"]])


def test_active_holds_and_pending_approvals_follow_the_log_and_the_clock(tmp_path: Path) -> None:
    store = build(tmp_path / "p.duckdb")
    assert active_at(store, -1) == ([], [])  # nothing added yet at that time
    assert active_at(store, 2.5) == (["h2", "h1", "h3"], [])  # ending soonest first
    assert active_at(store, 60) == (["h2", "h1", "h3"], ["c3", "c1", "c2"])
    assert active_at(store, 300) == (["h2", "h1"], ["c1", "c2"])  # released; c3's time is up
    assert active_at(store, 361) == (["h2", "h1"], ["c2"])  # c1 approved
    assert active_at(store, 421) == (["h2", "h1"], [])  # c2 denied
    # h2 ends at 600; its hold_released lands only at 630: it is over at 600 all the same
    assert active_at(store, 599) == (["h2", "h1"], [])
    assert active_at(store, 600) == (["h1"], [])
    assert active_at(store, 1800) == ([], [])


def test_dashboard_items_say_what_when_and_who(tmp_path: Path) -> None:
    store = build(tmp_path / "p.duckdb")
    body = queries.dashboard(store.con, now=naive(60), window_s=600)
    assert body["holds"]["items"][1] == {
        "hold_id": "h1", "host": HOST, "target": "kernel:api", "until": "2026-01-01T12:30:00Z",
        "left_s": 1740, "reason": "db migration", "by": "alice", "via": "cli",
        "added_at": "2026-01-01T12:00:00Z"}
    assert body["approvals"]["items"][0] == {
        "command_id": "c3", "host": HOST, "playbook": "config_drift_detected",
        "action": "restore_from_snapshot", "target": "config/app.yaml",
        "params": {"path": "config/app.yaml"}, "reason": "config/app.yaml drifted",
        "expires_at": "2026-01-01T12:05:00Z", "expires_in_s": 240,
        "requested_at": "2026-01-01T12:00:05Z"}


def test_the_views_in_the_file_read_the_current_state_at_the_readers_clock(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    story: list[tuple[float, events.Payload]] = [
        (0, events.HoldAdded(hold_id="old", target="kernel:api", until=at(60), for_s=60,
                             reason="r", by="a")),
        (1, events.HoldAdded(hold_id="now", target="kernel:api", until=now + timedelta(hours=1),
                             for_s=3600, reason="r", by="a")),
        (2, requested("gone", 900)),
        (3, events.ApprovalRequested(
            playbook="p", command_id="waiting", action="restart_kernel", target="api",
            cause_ids=[], within_s=900, expires_at=now + timedelta(minutes=15))),
    ]
    store = build(tmp_path / "p.duckdb", story)
    dest = tmp_path / "dashboard.duckdb"
    store.publish(dest)
    store.close()
    con = duckdb.connect(str(dest), read_only=True)
    try:
        assert con.execute("SELECT hold_id FROM holds_active").fetchall() == [("now",)]
        assert con.execute("SELECT command_id FROM approvals_pending").fetchall() == [("waiting",)]
        at_t = con.execute("SELECT hold_id FROM holds_active_at(TIMESTAMP '2026-01-01 12:00:30')"
                           ).fetchall()
        assert at_t == [("old",), ("now",)]
    finally:
        con.close()


def test_published_file_cli_and_metrics_agree_on_holds_and_approvals(tmp_path: Path) -> None:
    store = build(tmp_path / "p.duckdb")
    live = queries.dashboard(store.con, now=naive(60), window_s=600)
    collector = ProjectionCollector(store.con)
    collector.now = naive(60)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert "grace_holds_active 3.0" in text and "grace_approvals_pending 3.0" in text
    dest = tmp_path / "dashboard.duckdb"
    store.publish(dest)
    store.close()
    assert read_dashboard(dest, window_s=600, now=naive(60)) == live

    done = grace_cmd("dashboard", "--json", "--file", str(dest), "--at", "2026-01-01T12:01:00Z")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["holds"] == live["holds"] and body["approvals"] == live["approvals"]
    later = json.loads(grace_cmd("dashboard", "--json", "--file", str(dest), "--at",
                                 "2026-01-01T12:10:00Z").stdout)
    assert later["holds"]["active"] == 1 and later["approvals"]["pending"] == 0

    shown = grace_cmd("dashboard", "--file", str(dest), "--at", "2026-01-01T12:01:00Z",
                      env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "active holds (3)" in out and "pending approvals (3)" in out
    assert ("h1  kernel:api on web-1 until 2026-01-01T12:30:00Z (29m00s left), by alice (cli): "
            "db migration") in out
    assert ("c3  restore_from_snapshot config/app.yaml on web-1 (playbook config_drift_detected), "
            "expires in 4m00s: config/app.yaml drifted") in out
    assert out.index("  h2  ") < out.index("  h1  ") < out.index("  h3  ")  # ending first
    none = grace_cmd("dashboard", "--file", str(dest), "--at", "2026-01-01T13:00:00Z",
                     env={"COLUMNS": "200"}).stdout
    assert "holds: none active" in none and "approvals: none pending" in none


def test_the_readme_questions_about_holds_and_approvals_run_on_a_dashboard_file(
        tmp_path: Path) -> None:
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("-- 6. Who held what"):]
    block = block[:block.index("```")]
    store = build(tmp_path / "p.duckdb")
    dest = tmp_path / "dashboard.duckdb"
    store.publish(dest)
    store.close()
    con = duckdb.connect(str(dest), read_only=True)
    try:
        results = [con.execute(stmt).fetchall() for stmt in block.split(";") if "SELECT" in stmt]
    finally:
        con.close()
    # the story is from 2026-01-01: older than a week, over, decided
    holds_week, decided, active, pending = results
    assert holds_week == [] and active == [] and pending == []
    assert [r[1] for r in decided] == ["approval_expired", "approval_granted", "approval_denied"]
