"""`grace events publish --data JSON|@FILE|-`, and its refusal of an event over max_payload."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import grace_cmd

DATA = {"path": "models/m.pkl", "expected_sha256": "aa", "actual_sha256": "bb",
        "reason": "hash mismatch"}


def host() -> str:
    return f"pub{int(time.time() * 1000) % 10**8}"


@pytest.mark.parametrize("fast_path", ["1", "0"])
def test_data_from_a_file_is_published(nats_url: str, tmp_path: Path, fast_path: str) -> None:
    f = tmp_path / "data.json"
    f.write_text(json.dumps(DATA))
    res = grace_cmd("events", "publish", "model_corruption", "--host", host(), "--nats", nats_url,
                    "--data", f"@{f}", env={"GRACE_FAST_PATH": fast_path})
    assert res.returncode == 0, res.stderr
    assert "published model_corruption" in res.stdout


def test_data_from_stdin_is_published(nats_url: str) -> None:
    exe = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"
    res = subprocess.run([exe, "events", "publish", "model_corruption", "--host", host(),
                          "--nats", nats_url, "--data", "-"], input=json.dumps(DATA),
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert "published model_corruption" in res.stdout


def test_an_unreadable_data_file_is_a_clear_error(nats_url: str, tmp_path: Path) -> None:
    res = grace_cmd("events", "publish", "model_corruption", "--nats", nats_url,
                    "--data", f"@{tmp_path / 'missing.json'}")
    assert res.returncode == 2
    assert "missing.json" in res.stderr and "cannot read" in res.stderr


@pytest.mark.parametrize("fast_path", ["1", "0"])
def test_an_event_over_max_payload_exits_2_naming_type_size_and_limit(
        nats_url: str, tmp_path: Path, fast_path: str) -> None:
    f = tmp_path / "big.json"
    f.write_text(json.dumps({**DATA, "reason": "x" * (1024 * 1024 + 10)}))
    res = grace_cmd("events", "publish", "model_corruption", "--host", host(), "--nats", nats_url,
                    "--data", f"@{f}", env={"GRACE_FAST_PATH": fast_path})
    assert res.returncode == 2, res.stdout
    assert "model_corruption" in res.stderr and "max_payload" in res.stderr
    assert "1048576" in res.stderr  # the server's limit
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("bad_id", ["", "fix\r\nNats-Expected-Stream: X", "a\tb"])
def test_an_id_with_control_characters_is_refused_before_sending(nats_url: str, bad_id: str) -> None:
    res = grace_cmd("events", "publish", "model_corruption", "--host", host(), "--nats", nats_url,
                    "--id", bad_id, "--data", json.dumps(DATA))
    assert res.returncode == 2, res.stdout
    assert "--id" in res.stderr and "control characters" in res.stderr
    assert "published" not in res.stdout


@pytest.mark.parametrize("bad_host", ["web.1", "a b", "*", ""])
def test_a_host_that_is_not_one_subject_token_is_refused(nats_url: str, bad_host: str) -> None:
    res = grace_cmd("events", "publish", "model_corruption", "--host", bad_host, "--nats", nats_url,
                    "--data", json.dumps(DATA))
    assert res.returncode == 2, res.stdout
    assert "--host" in res.stderr and "subject token" in res.stderr
