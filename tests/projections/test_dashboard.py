"""Dashboard numbers from a known event sequence, computed by hand (real DuckDB files)."""

from __future__ import annotations

from pathlib import Path

from projections import queries
from projections.dashboard import read_dashboard
from projections.reducer import Reducer
from projections.store import Store
from tests.projections import sample


def build(path: Path, pairs: list[tuple[str, bytes]], split: int = 10) -> Store:
    store = Store.open(path)
    reducer = Reducer()
    items = [(i + 1, s, raw) for i, (s, raw) in enumerate(pairs)]
    store.apply(reducer.reduce(items[:split]))
    store.apply(reducer.reduce(items[split:]))
    return store


def test_dashboard_numbers_equal_the_hand_computed_ones(tmp_path: Path) -> None:
    store = build(tmp_path / "p.duckdb", sample.encoded())
    body = queries.dashboard(store.con, now=sample.NOW, window_s=600)
    assert body.pop("timestamp") == sample.NOW_ISO
    assert body == sample.EXPECTED


def test_dashboard_has_exactly_the_seed_keys(tmp_path: Path) -> None:
    store = build(tmp_path / "p.duckdb", sample.encoded())
    body = queries.dashboard(store.con, now=sample.NOW, window_s=600)
    # the seed's keys in the seed's order, then what issues 12 and 13 added
    assert list(body) == ["timestamp", "system_state", "boot_phase", "kernels", "security",
                          "triggers", "snapshots", "watchdogs", "health",
                          "as_of", "stale", "stale_after_s", "boot", "fix_tasks",
                          "holds", "approvals", "stages"]
    assert list(body["triggers"]) == ["total_checks", "issues_detected", "issues_published",
                                      "actions_executed", "last_run", "running", "check_interval",
                                      "issue_counts", "triggers_monitored"]
    assert isinstance(body["boot_phase"], str)
    assert list(body["snapshots"]) == ["running", "refresh_interval_hours", "max_age_hours",
                                       "model_snapshots", "config_snapshots", "total_snapshots"]


def test_failed_action_inside_the_window_degrades_health_and_expires_after_it(tmp_path: Path) -> None:
    from grace import events

    pairs = sample.encoded()[:3]  # boot complete, monitor started: healthy
    failed = events.make_event(events.CommandFailed(command_id="c9", action="restart_kernel",
                                                    reason="boom"),
                               host="web-1", source="t", time=sample.T0)
    pairs.append(("grace.events.result.command_failed.web-1", events.encode(failed)))
    store = build(tmp_path / "p.duckdb", pairs, split=2)
    assert queries.dashboard(store.con, now=sample.NOW, window_s=900)["health"] == "degraded"
    later = queries.dashboard(store.con, now=sample.NOW, window_s=60)
    assert later["health"] == "healthy" and later["system_state"] == "running"


def test_system_stopped_stops_monitor_snapshots_and_watchdogs(tmp_path: Path) -> None:
    from grace import events

    pairs = sample.encoded()
    stop = events.make_event(events.SystemStopped(), host="web-1", source="t", time=sample.T0)
    pairs.append(("grace.events.boot.system_stopped.web-1", events.encode(stop)))
    store = build(tmp_path / "p.duckdb", pairs)
    body = queries.dashboard(store.con, now=sample.NOW, window_s=600)
    assert body["system_state"] == "stopped" and body["boot_phase"] == "stopped"
    assert body["triggers"]["running"] is False and body["snapshots"]["running"] is False
    assert body["watchdogs"] == {"tier_count": 0, "active": False}


def test_published_file_gives_the_same_dashboard_read_only(tmp_path: Path) -> None:
    store = build(tmp_path / "p.duckdb", sample.encoded())
    live = queries.dashboard(store.con, now=sample.NOW, window_s=600)
    dest = tmp_path / "dashboard.duckdb"
    store.publish(dest)
    assert not (tmp_path / "dashboard.duckdb.tmp").exists()
    assert read_dashboard(dest, window_s=600, now=sample.NOW) == live
    store.close()


def test_a_crash_looping_stage_is_counted_and_degrades_the_system(tmp_path: Path) -> None:
    from datetime import timedelta

    from grace import events

    pairs = sample.encoded()[:3]  # boot complete, monitor started: healthy and running
    for n in (1, 2):
        restarted = events.make_event(
            events.StageRestarted(stage="process", exit_code=1, attempt=n, recent=n,
                                  last_error="ValidationErrors: playbooks/x.yaml:3: unknown action"),
            host="web-1", source="t", time=sample.T0 + timedelta(seconds=30 + n))
        pairs.append(("grace.events.stage.stage_restarted.web-1", events.encode(restarted)))
    store = build(tmp_path / "p.duckdb", pairs, split=2)
    body = queries.dashboard(store.con, now=sample.NOW, window_s=60)
    assert body["stages"] == {"process": {
        "stage_restarted": 2, "crash_looping": True,
        "last_error": "ValidationErrors: playbooks/x.yaml:3: unknown action"}}
    assert body["system_state"] == "degraded" and body["health"] == "degraded"
    # two minutes without a restart: still counted for the run, no longer crash-looping
    later = queries.dashboard(store.con, now=sample.NOW + timedelta(minutes=3), window_s=60)
    assert later["stages"]["process"]["stage_restarted"] == 2
    assert later["stages"]["process"]["crash_looping"] is False
