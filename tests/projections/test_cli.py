"""The projection commands as an operator runs them: `grace dashboard`, `grace replay`."""

from __future__ import annotations

import json
from pathlib import Path

from projections.reducer import Reducer
from projections.store import Store
from tests.projections import sample
from tests.support import grace_cmd


def published_sample(tmp_path: Path) -> Path:
    store = Store.open(tmp_path / "projection.duckdb")
    store.apply(Reducer().reduce([(i + 1, s, raw) for i, (s, raw) in enumerate(sample.encoded())]))
    dest = tmp_path / "dashboard.duckdb"
    store.publish(dest)
    store.close()
    return dest


def test_dashboard_json_prints_the_seed_shape_with_the_projected_numbers(tmp_path: Path) -> None:
    dest = published_sample(tmp_path)
    done = grace_cmd("dashboard", "--json", "--file", str(dest), "--at", sample.NOW_ISO)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body.pop("timestamp") == sample.NOW_ISO
    assert body == sample.EXPECTED


def test_dashboard_read_now_says_the_old_file_is_stale(tmp_path: Path) -> None:
    dest = published_sample(tmp_path)  # its events are from 2026-01-01, long before now
    body = json.loads(grace_cmd("dashboard", "--json", "--file", str(dest)).stdout)
    assert body["stale"] is True and body["system_state"] == "unknown" and body["health"] == "unknown"
    assert body["as_of"] == sample.EXPECTED["as_of"]
    bad = grace_cmd("dashboard", "--json", "--file", str(dest), "--at", "yesterday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr


def test_dashboard_reads_the_data_dir_file_and_renders_for_a_terminal(tmp_path: Path) -> None:
    published_sample(tmp_path)
    done = grace_cmd("dashboard", "--data-dir", str(tmp_path), "--at", sample.NOW_ISO)
    assert done.returncode == 0, done.stderr
    assert "degraded" in done.stdout and "issues by trigger" in done.stdout
    assert "STALE" not in done.stdout
    later = grace_cmd("dashboard", "--data-dir", str(tmp_path))
    assert later.returncode == 0 and "STALE" in later.stdout, later.stderr
    missing = grace_cmd("dashboard", "--data-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "grace project" in missing.stderr


def test_replay_reports_an_unreachable_server_and_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "r.duckdb"
    done = grace_cmd("replay", "--into", str(out), "--nats", "nats://127.0.0.1:1")
    assert done.returncode == 2
    assert "cannot connect to NATS at nats://127.0.0.1:1" in done.stderr
    assert list(tmp_path.iterdir()) == []
