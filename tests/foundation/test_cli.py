"""The real `grace` CLI: schema, publish then tail, refusals with reasons."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.support import grace_cmd


def test_schema_prints_json_schema_of_every_type() -> None:
    out = grace_cmd("schema", check=True).stdout
    schema = json.loads(out)
    assert "ModelCorruptionEvent" in schema["$defs"]
    assert len(schema["anyOf"]) >= 50


def test_publish_then_tail_from_start_shows_the_event_decoded(nats_url: str) -> None:
    host = f"cli{int(time.time() * 1000) % 10**8}"
    pub = grace_cmd("events", "publish", "model_corruption", "--host", host, "--nats", nats_url,
                    "--data", '{"path": "models/m.pkl", "expected_sha256": "aa", '
                              '"actual_sha256": "bb", "reason": "hash mismatch"}')
    assert pub.returncode == 0, pub.stderr
    assert "published model_corruption" in pub.stdout
    tail = subprocess.Popen(
        [sys.executable, "-m", "grace.app", "events", "tail", f"grace.events.trigger.*.{host}",
         "--from-start", "--json", "--nats", nats_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stdout is not None
        line = tail.stdout.readline()
    finally:
        tail.terminate()
        tail.wait(10)
    ev = json.loads(line)
    assert ev["type"] == "model_corruption" and ev["host"] == host
    assert ev["data"]["path"] == "models/m.pkl"


def test_publish_refuses_invalid_data_with_field_and_reason(nats_url: str) -> None:
    res = grace_cmd("events", "publish", "model_corruption", "--nats", nats_url,
                    "--data", '{"path": 7}')
    assert res.returncode == 2
    assert "$.path" in res.stderr and "Expected `str`" in res.stderr


def test_unreachable_nats_fails_fast_with_url_and_advice() -> None:
    res = grace_cmd("events", "publish", "monitor_stopped", "--nats", "nats://127.0.0.1:1",
                    "--data", "{}", timeout=20)
    assert res.returncode == 2
    assert "nats://127.0.0.1:1" in res.stderr and "grace up" in res.stderr
