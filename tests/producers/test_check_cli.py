"""`grace check`: the real CLI on a temp system, healthy then with a corrupted model."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.producers.sample import write_system
from tests.support import grace_cmd

NO_NATS = {"GRACE_NATS_URL": ""}


def test_check_json_reports_nothing_when_healthy_and_model_corruption_after_corruption(
        tmp_path: Path) -> None:
    write_system(tmp_path)
    cfg = str(tmp_path / "grace.yaml")
    healthy = grace_cmd("check", "-c", cfg, "--json", env=NO_NATS)
    assert healthy.returncode == 0, healthy.stderr
    report = json.loads(healthy.stdout)
    assert report["healthy"] is True and report["findings"] == []
    assert {t["trigger"] for t in report["triggers"]} >= {"model_integrity", "config_drift"}

    (tmp_path / "models" / "m.pkl").write_bytes(os.urandom(1000))
    broken = grace_cmd("check", "-c", cfg, "--json", env=NO_NATS)
    assert broken.returncode == 1, broken.stderr
    [finding] = json.loads(broken.stdout)["findings"]
    assert finding["type"] == "model_corruption" and finding["key"] == {"path": "models/m.pkl"}
    data = finding["data"]
    assert data["expected_sha256"] and data["actual_sha256"]
    assert data["expected_sha256"] != data["actual_sha256"]
    assert not (tmp_path / "data" / "state").exists()  # a check writes no state


def test_check_without_nats_says_skipped_no_nats_for_queue_backlogs(tmp_path: Path) -> None:
    write_system(tmp_path, {"kernels": [{"name": "w", "command": ["x"],
                                         "queue": {"stream": "JOBS", "consumer": "workers"}}]})
    out = grace_cmd("check", "-c", str(tmp_path / "grace.yaml"), "--json", env=NO_NATS)
    rows = {t["trigger"]: t for t in json.loads(out.stdout)["triggers"]}
    assert rows["latency_queue"]["outcome"] == "skipped" and rows["latency_queue"]["reason"] == "no NATS"
    assert rows["health_signal"]["outcome"] == "ok"  # no kernel has a heartbeat timeout


def test_check_with_a_malformed_lock_exits_2_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "requirements.lock").write_text("requests>=2\n")
    write_system(tmp_path, {"dependencies": {"lock": "requirements.lock"}})
    out = grace_cmd("check", "-c", str(tmp_path / "grace.yaml"), env=NO_NATS)
    assert out.returncode == 2
    assert "requirements.lock:1" in out.stdout.replace("\n", "")


def test_check_uses_nats_when_reachable(tmp_path: Path, nats_url: str) -> None:
    write_system(tmp_path, {"kernels": [{"name": "svc", "command": ["x"], "heartbeat_timeout": "0.2s"}]})
    out = grace_cmd("check", "-c", str(tmp_path / "grace.yaml"), "--json", "--nats", nats_url,
                    "--listen", "0.3")
    report = json.loads(out.stdout)
    assert out.returncode == 1 and report["nats"]
    [finding] = report["findings"]
    assert finding["type"] == "kernel_heartbeat_gap" and finding["key"] == {"kernel": "svc", "instance": ""}


def test_check_without_nats_notes_the_skipped_backlog_and_still_probes_latency(tmp_path: Path) -> None:
    write_system(tmp_path, {"kernels": [
        {"name": "w", "command": ["x"], "queue": {"stream": "JOBS", "consumer": "workers"}},
        {"name": "api", "command": ["x"], "health_url": "http://127.0.0.1:9/health"}]})
    out = grace_cmd("check", "-c", str(tmp_path / "grace.yaml"), "--json", env=NO_NATS)
    row = {t["trigger"]: t for t in json.loads(out.stdout)["triggers"]}["latency_queue"]
    assert row["notes"] == ["queue backlog of w skipped: no NATS"]
    assert "127.0.0.1:9" in row["errors"][0] and out.returncode == 2  # the dead URL is an error
