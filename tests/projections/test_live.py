"""`grace project` as a real subprocess against a private nats-server: crash, replay, readers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from grace.embedded import EmbeddedServer
from tests.projections import sample
from tests.projections.live import Projector, filler, publish_sync, tables, until
from tests.support import grace_cmd

UNKNOWN = json.dumps({"specversion": "1.0", "id": "unknown-1", "source": "grace/x/newer",
                      "type": "quantum_flux", "time": "2026-01-01T00:00:00Z", "host": "web-1",
                      "data": {"flux": 3}}).encode()
BAD = json.dumps({"specversion": "1.0", "id": "bad-1", "source": "grace/x/y", "type": "check_failed",
                  "time": "2026-01-01T00:00:00Z", "host": "web-1",
                  "data": {"trigger": 7}}).encode()


@pytest.fixture(scope="module")
def log_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A private server whose log holds the sample story, two unreadable events and filler."""
    server = EmbeddedServer(tmp_path_factory.mktemp("projection-nats"))
    server.start()
    items = [(s, raw, f"story-{i}") for i, (s, raw) in enumerate(sample.encoded())]
    items += [("grace.events.future.quantum_flux.web-1", UNKNOWN, "unknown-1"),
              ("grace.events.check.check_failed.web-1", BAD, "bad-1")]
    publish_sync(server.url, items + filler("filler", 20_000))
    yield server
    server.stop()


def test_projector_killed_mid_stream_resumes_without_loss_or_double_count(
        log_server: EmbeddedServer, tmp_path: Path) -> None:
    url = log_server.url
    killed = Projector(url, tmp_path / "killed").start()
    steady = Projector(url, tmp_path / "steady").start()
    more = filler("burst", 60_000)
    publisher = threading.Thread(target=publish_sync, args=(url, more))
    publisher.start()
    killed.wait_seq(1)
    until(lambda: killed.last_seq() >= 15_000, what="15k events projected")  # mid-stream
    killed.kill()
    publisher.join()
    last = publish_sync(url, [])
    killed.start()
    killed.wait_seq(last)
    steady.wait_seq(last)
    killed.stop()
    steady.stop()
    a, b = tables(killed.data / "projection.duckdb"), tables(steady.data / "projection.duckdb")
    assert a == b
    assert a["projection_state"][0][0] == last
    seqs = [row[0] for row in a["events"]]
    assert seqs == list(range(1, last + 1))  # none lost, none twice
    starts = re.findall(r"projecting GRACE_EVENTS from sequence (\d+)", killed.log.read_text())
    assert starts[0] == "1" and int(starts[1]) > 15_000  # resumed at its stored position + 1


def test_replay_equals_live_projection_table_by_table(log_server: EmbeddedServer,
                                                      tmp_path: Path) -> None:
    live = Projector(log_server.url, tmp_path / "live").start()
    last = publish_sync(log_server.url, [])
    live.wait_seq(last)
    live.stop()
    out = tmp_path / "replayed.duckdb"
    done = grace_cmd("replay", "--into", str(out), "--nats", log_server.url, "--until", str(last))
    assert done.returncode == 0, done.stderr
    assert f"replayed sequences 1..{last}" in done.stdout
    assert tables(out) == tables(live.data / "projection.duckdb")
    refused = grace_cmd("replay", "--into", str(out), "--nats", log_server.url)
    assert refused.returncode != 0 and "--force" in refused.stderr


def test_the_log_reader_hands_a_slow_writer_every_event_before_it_exits(
        log_server: EmbeddedServer) -> None:
    from projections import reader

    last = publish_sync(log_server.url, [])
    proc = subprocess.Popen([sys.executable, "-m", "projections.reader", log_server.url, "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    frames = reader.read_frames(proc.stdout)
    assert msgspec.msgpack.decode(next(frames)) == {"until": last}
    seqs: list[int] = []
    paused = False
    for body in frames:
        if not paused and seqs and seqs[-1] >= last - 2000:
            paused = True
            time.sleep(2)  # the writer is busy (a DuckDB commit): the reader buffers the rest
        seqs += [seq for seq, _, _ in reader.decode_batch(body)]
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    assert seqs == list(range(1, last + 1))


def test_unknown_types_and_bad_payloads_are_kept_and_counted(log_server: EmbeddedServer,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "replayed.duckdb"
    assert grace_cmd("replay", "--into", str(out), "--nats", log_server.url).returncode == 0
    t = tables(out)
    kept = {(r[2], r[7]) for r in t["events"] if r[9] is not None}
    assert kept == {("quantum_flux", "unknown-1"), ("check_failed", "bad-1")}
    assert t["projection_state"][0][3] == 2
    assert len(t["checks"]) == 3  # the bad check_failed fed no derived table


def test_corrupt_live_file_is_quarantined_and_rebuilt_from_the_log(log_server: EmbeddedServer,
                                                                  tmp_path: Path) -> None:
    p = Projector(log_server.url, tmp_path / "corrupt")
    p.data.mkdir(parents=True)
    (p.data / "projection.duckdb").write_bytes(b"\x00garbage" * 4096)
    p.start()
    last = publish_sync(log_server.url, [])
    p.wait_seq(last)
    p.stop()
    (kept,) = p.data.glob("projection.duckdb.corrupt-*")
    assert kept.read_bytes() == b"\x00garbage" * 4096
    assert "rebuilding the projection from the log" in p.log.read_text()
    assert tables(p.data / "projection.duckdb")["projection_state"][0][0] == last


READER = r"""
import json, sys, time, duckdb
path, seconds = sys.argv[1], float(sys.argv[2])
reads, errors, seqs = 0, [], []
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        con = duckdb.connect(path, read_only=True)
        seqs.append(con.execute("SELECT last_seq FROM projection_state").fetchone()[0])
        con.execute("SELECT count(*), max(seq) FROM events").fetchone()
        con.close()
        reads += 1
    except Exception as exc:
        errors.append(repr(exc))
print(json.dumps({"reads": reads, "errors": errors[:5], "seqs": seqs}))
"""


def test_dashboard_file_is_readable_by_other_processes_while_the_writer_runs(
        log_server: EmbeddedServer, tmp_path: Path) -> None:
    p = Projector(log_server.url, tmp_path / "readers").start()
    p.wait_seq(1)
    dash = p.data / "dashboard.duckdb"
    until(dash.exists, what="the first published dashboard file")
    reader = subprocess.Popen([sys.executable, "-c", READER, str(dash), "6"], stdout=subprocess.PIPE)
    publish_sync(log_server.url, filler("readers", 30_000))
    out, _ = reader.communicate(timeout=60)
    p.stop()
    seen = json.loads(out)
    assert seen["errors"] == []
    assert seen["reads"] > 20
    assert seen["seqs"] == sorted(seen["seqs"]) and seen["seqs"][-1] > seen["seqs"][0]


def test_http_endpoints_return_the_same_numbers_as_the_file(log_server: EmbeddedServer,
                                                           tmp_path: Path) -> None:
    from projections.dashboard import read_dashboard

    p = Projector(log_server.url, tmp_path / "http").start()
    last = publish_sync(log_server.url, [])
    p.wait_seq(last)
    dash = p.data / "dashboard.duckdb"
    until(lambda: tables(dash)["projection_state"][0][0] >= last, what="publish of the last seq")
    status, body = p.get("/operator/dashboard")
    assert status == 200
    served = json.loads(body)
    from_file = read_dashboard(dash, window_s=600)
    served.pop("timestamp"), from_file.pop("timestamp")
    assert served == from_file
    assert served["triggers"]["issues_detected"] > 0
    status, metrics = p.get("/metrics")
    text = metrics.decode()
    checks = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("grace_checks_total{"))
    assert checks == served["triggers"]["total_checks"]
    issues = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("grace_issues_total{"))
    assert issues == served["triggers"]["issues_published"]
    findings = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("grace_findings_total{"))
    assert findings == served["triggers"]["issues_detected"] < issues
    assert f"grace_projection_last_seq {float(last)}" in text
    assert "grace_projection_lag_events 0.0" in text
    assert 'grace_actions_total{action="scale_workers",outcome="succeeded"} 1.0' in text
    status, health = p.get("/healthz")
    assert status == 200 and json.loads(health)["lag_events"] == 0
    p.stop()


def test_projector_survives_a_server_restart_and_resumes_from_its_position(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    url = fresh_server.url
    first = publish_sync(url, filler("restart", 40_000))
    p = Projector(url, tmp_path / "restart").start()
    until(lambda: p.last_seq() >= 5_000, what="5k events projected")
    fresh_server.kill()
    fresh_server.restart()
    p.wait_seq(first)
    last = publish_sync(url, filler("restart", 1_000, start=40_000))
    p.wait_seq(last)
    p.stop()
    out = tmp_path / "replayed.duckdb"
    assert grace_cmd("replay", "--into", str(out), "--nats", url).returncode == 0
    assert tables(out) == tables(p.data / "projection.duckdb")
