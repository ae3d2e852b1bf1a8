"""The dashboard tells the truth when things fail (issue 12): a failed boot phase stays
visible, a file left behind by a crashed Grace says it is stale, re-published findings count
once, and fix tasks are open until reported. Recorded logs, real DuckDB files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from grace import events
from grace.embedded import EmbeddedServer
from grace.events import Payload
from projections import queries
from projections.http import ProjectionCollector
from projections.reducer import Reducer
from projections.store import Store
from tests.projections.live import Projector as LiveProjector
from tests.projections.live import publish_sync, tables, until
from tests.support import grace_cmd

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
PHASES = ("config validated", "bus ready", "pre-boot code diff", "snapshots verified",
          "kernels started", "warm-up", "monitoring active")


def project(path: Path, story: list[tuple[str, Payload]]) -> Store:
    """A projection of `story` ((host, payload), one second apart from T0)."""
    items = []
    for i, (host, payload) in enumerate(story):
        ev = events.make_event(payload, host=host, source="grace/test/truth",
                               id=events.derive_id("truth", i), time=T0 + timedelta(seconds=i))
        items.append((i + 1, f"grace.events.{payload.CATEGORY}.{payload.TYPE}.{host}",
                      events.encode(ev)))
    store = Store.open(path)
    store.apply(Reducer().reduce(items))
    return store


def at(seconds: float) -> datetime:
    """Naive UTC `seconds` after T0 (the dashboard's `now`)."""
    return (T0 + timedelta(seconds=seconds)).replace(tzinfo=None)


def boot_run(failed: int | None = None, upto: int = 7) -> list[tuple[str, Payload]]:
    """One `grace up` boot as grace/app/up.py publishes it: phases 1..upto, `failed` failing."""
    out: list[tuple[str, Payload]] = []
    for n in range(1, upto + 1):
        status = "failed" if n == failed else "completed"
        detail = "SyntaxError('invalid syntax', ('app/api.py', 3))" if n == failed else ""
        if n in (3, 4, 5, 6):
            out.append(("web-1", events.BootPhase(phase=n, name=PHASES[n - 1], status="started")))
        out.append(("web-1", events.BootPhase(phase=n, name=PHASES[n - 1], status=status,  # type: ignore[arg-type]
                                              detail=detail)))
    return out


def running(extra: list[tuple[str, Payload]] | None = None, failed: int | None = None
            ) -> list[tuple[str, Payload]]:
    return [*boot_run(failed),
            ("web-1", events.MonitorStarted(interval_s=30.0, triggers=["health_signal"])),
            ("web-1", events.CheckCompleted(trigger="health_signal", duration_ms=1, outcome="ok")),
            *(extra or [])]


def dash(store: Store, now: datetime, **kw: Any) -> dict[str, Any]:
    return queries.dashboard(store.con, now=now, window_s=600, **kw)


# ---------------------------------------------------------------- boot


def test_a_failed_phase_is_not_hidden_by_phase_7_completed(tmp_path: Path) -> None:
    story = running(failed=3)
    store = project(tmp_path / "p.duckdb", story)
    body = dash(store, at(len(story)))
    assert body["boot_phase"] == "failed"
    assert body["boot"]["failed_phase"] == 3 and body["boot"]["failed_name"] == "pre-boot code diff"
    assert "SyntaxError" in body["boot"]["failed_detail"]
    assert body["boot"]["phase"] == 7 and body["boot"]["status"] == "completed"
    # monitoring is active, so the system runs, but not as booted: degraded, not healthy
    assert body["system_state"] == "degraded" and body["health"] == "degraded"


def test_a_boot_that_stops_at_a_failed_phase_is_failed_then_stopped(tmp_path: Path) -> None:
    halted = boot_run(failed=3, upto=3)
    store = project(tmp_path / "p.duckdb", halted)
    body = dash(store, at(len(halted)))
    assert body["boot_phase"] == "failed" and body["system_state"] == "failed"
    assert body["health"] == "critical" and body["stale"] is False
    store.close()
    store = project(tmp_path / "q.duckdb", [*halted, ("web-1", events.SystemStopped(reason="boot"))])
    body = dash(store, at(len(halted) + 86_400))  # a day later: a stop is not stale
    assert body["boot_phase"] == "failed" and body["boot"]["stopped"] is True
    assert body["system_state"] == "stopped" and body["stale"] is False
    assert body["health"] == "critical"


def test_the_next_boot_is_judged_on_its_own(tmp_path: Path) -> None:
    story = [*running(failed=4), ("web-1", events.SystemStopped()), *running()]
    store = project(tmp_path / "p.duckdb", story)
    body = dash(store, at(len(story)))
    assert body["boot_phase"] == "complete" and body["boot"]["failed_phase"] is None
    assert body["system_state"] == "running" and body["health"] == "healthy"


# ---------------------------------------------------------------- as_of, stale


def test_staleness_is_judged_at_read_time_against_three_monitor_intervals(tmp_path: Path) -> None:
    story = running()
    store = project(tmp_path / "p.duckdb", story)
    last = len(story) - 1  # the last event's offset from T0
    fresh = dash(store, at(last + 90))
    assert fresh["as_of"] == queries.iso(at(last))
    assert fresh["stale"] is False and fresh["stale_after_s"] == 90
    assert fresh["system_state"] == "running" and fresh["health"] == "healthy"
    late = dash(store, at(last + 91))
    assert late["stale"] is True and late["system_state"] == "unknown" and late["health"] == "unknown"
    assert late["as_of"] == fresh["as_of"]
    assert late["boot_phase"] == "complete"  # the rest stays as of as_of


def test_the_interval_comes_from_the_log_else_from_the_config(tmp_path: Path) -> None:
    slow = [*boot_run(), ("web-1", events.MonitorStarted(interval_s=60.0, triggers=["x"]))]
    store = project(tmp_path / "p.duckdb", slow)
    last = len(slow) - 1
    assert dash(store, at(last + 150), interval_s=30)["stale"] is False  # 3 x 60 s from the log
    assert dash(store, at(last + 181), interval_s=30)["stale"] is True
    store.close()
    store = project(tmp_path / "q.duckdb", boot_run())  # no monitor_started
    last = len(boot_run()) - 1
    assert dash(store, at(last + 100), interval_s=30)["stale"] is True
    assert dash(store, at(last + 100), interval_s=40)["stale"] is False


def test_a_clean_stop_is_stopped_not_stale_and_an_empty_file_is_unknown(tmp_path: Path) -> None:
    story = [*running(), ("web-1", events.SystemStopped())]
    store = project(tmp_path / "p.duckdb", story)
    body = dash(store, at(len(story) + 86_400))
    assert body["system_state"] == "stopped" and body["stale"] is False
    assert body["health"] == "healthy" and body["boot_phase"] == "stopped"
    store.close()
    empty = Store.open(tmp_path / "e.duckdb")
    body = dash(empty, at(0))
    assert body["system_state"] == "unknown" and body["as_of"] is None and body["stale"] is True


# ---------------------------------------------------------------- distinct findings


def backlog(host: str = "web-1", kernel: str = "worker") -> tuple[str, Payload]:
    return (host, events.QueueBacklog(kernel=kernel, stream="J", consumer="c", pending=500,
                                      ack_pending=0, backlog=500, threshold=100,
                                      trigger="latency_queue"))


def cleared(kernel: str = "worker") -> tuple[str, Payload]:
    return ("web-1", events.ConditionCleared(condition="queue_backlog", key={"kernel": kernel},
                                             trigger="latency_queue"))


def test_a_finding_re_published_while_active_counts_once(tmp_path: Path) -> None:
    story = running([backlog(), backlog(), backlog(),  # one finding, re-published each cycle
                     cleared(), backlog(),             # cleared, then back: a second one
                     backlog(kernel="api"),            # another key
                     backlog(host="web-2"),            # the same key on another host
                     cleared(kernel="api"), cleared(kernel="api")])
    store = project(tmp_path / "p.duckdb", story)
    t = dash(store, at(len(story)))["triggers"]
    assert t["issues_published"] == 6
    assert t["issues_detected"] == 4
    assert t["issue_counts"] == {"latency_queue": 4}


def test_news_that_is_not_a_problem_is_no_issue(tmp_path: Path) -> None:
    low = events.QueueBacklogLow(kernel="worker", stream="JOBS", consumer="workers", backlog=3,
                                 threshold=10, workers=3, min_workers=1)
    store = project(tmp_path / "p.duckdb", running([("web-1", low), ("web-1", low), backlog()]))
    t = dash(store, at(20))["triggers"]
    assert (t["issues_published"], t["issues_detected"]) == (1, 1)  # only the backlog


# ---------------------------------------------------------------- fix tasks


def escalated(task: str) -> tuple[str, Payload]:
    return ("web-1", events.CommandSucceeded(command_id=f"c-{task}", action="escalate_to_coding_agent",
                                             target="app/api.py",
                                             details={"task_id": task, "files": ["app/api.py"]}))


def report(task: str, outcome: str) -> tuple[str, Payload]:
    return ("web-1", events.FixReport(task_id=task, kind="fix", outcome=outcome))  # type: ignore[arg-type]


def reviewed(n: int, outcome: str) -> tuple[str, Payload]:
    return ("web-1", events.CommandSucceeded(command_id=f"r{n}", action="review_code",
                                             details={"files": [], "outcome": outcome}))


def fix_story() -> list[tuple[str, Payload]]:
    return running([escalated("t1"), escalated("t2"), escalated("t3"), escalated("t4"),
                    escalated("t5"), report("t1", "passed"), report("t2", "failed"),
                    report("t3", "unverified"), report("t5", "error"),
                    report("t2", "failed"),  # a duplicate report: the task counts once
                    reviewed(1, "findings"), reviewed(2, "passed"), reviewed(3, "unverified")])


def test_fix_tasks_are_open_until_reported_then_counted_by_outcome(tmp_path: Path) -> None:
    store = project(tmp_path / "p.duckdb", fix_story())
    body = dash(store, at(len(fix_story())))
    assert body["fix_tasks"] == {"open": 1, "passed": 2, "failed": 2, "unverified": 2, "error": 1}


def test_metrics_count_unverified_fix_tasks_and_distinct_findings_apart(tmp_path: Path) -> None:
    store = project(tmp_path / "p.duckdb", [*fix_story(), backlog(), backlog()])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProjectionCollector(store.con))
    text = generate_latest(registry).decode()
    assert 'grace_fix_tasks{state="unverified"} 2.0' in text
    assert 'grace_fix_tasks{state="open"} 1.0' in text
    assert 'grace_issues_total{trigger="latency_queue",type="queue_backlog"} 2.0' in text
    assert 'grace_findings_total{trigger="latency_queue",type="queue_backlog"} 1.0' in text


# ---------------------------------------------------------------- the same, through `grace project`


def test_a_recorded_failed_boot_through_a_real_projector_shows_on_every_surface(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    """A recorded log (a run whose phase 3 failed, then monitoring, a re-published finding and
    an unverified fix report) published to a real nats-server and followed by `grace project`:
    /operator/dashboard, /metrics and the published file all say so."""
    story = [*running(failed=3), backlog(), backlog(), escalated("t1"), report("t1", "unverified")]
    start = datetime.now(UTC) - timedelta(seconds=len(story))  # recent: not stale
    items = []
    for i, (host, payload) in enumerate(story):
        ev = events.make_event(payload, host=host, source="grace/test/truth",
                               id=events.derive_id("truth-live", i), time=start + timedelta(seconds=i))
        items.append((f"grace.events.{payload.CATEGORY}.{payload.TYPE}.{host}", events.encode(ev),
                      ev.id))
    last = publish_sync(fresh_server.url, items)
    p = LiveProjector(fresh_server.url, tmp_path / "live").start()
    try:
        p.wait_seq(last)
        status, body = p.get("/operator/dashboard")
        assert status == 200
        served = json.loads(body)
        assert served["boot_phase"] == "failed" and served["boot"]["failed_phase"] == 3
        assert served["stale"] is False and served["system_state"] == "degraded"
        assert served["triggers"]["issues_detected"] == 1
        assert served["triggers"]["issues_published"] == 2
        assert served["fix_tasks"]["unverified"] == 1
        _, metrics = p.get("/metrics")
        assert 'grace_fix_tasks{state="unverified"} 1.0' in metrics.decode()
        dash_file = p.data / "dashboard.duckdb"
        until(lambda: dash_file.exists() and tables(dash_file)["projection_state"][0][0] >= last,
              what="publish of the last seq")
    finally:
        p.stop()
    done = grace_cmd("dashboard", "--json", "--file", str(dash_file))
    assert done.returncode == 0, done.stderr
    from_file = json.loads(done.stdout)
    assert from_file["boot_phase"] == "failed" and from_file["fix_tasks"] == served["fix_tasks"]
