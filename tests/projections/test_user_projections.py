"""User projections against a real nats-server: live across SIGKILLs equals replay; a failing
projection stops at its event; a new version rebuilds."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest

from grace.embedded import EmbeddedServer
from tests.projections.live import publish_sync
from tests.projections.user_support import (
    EXAMPLES,
    incidents,
    position,
    start_project,
    user_tables,
)
from tests.support import grace_cmd

CHUNKS, PER_CHUNK = 30, 20  # 30 x 20 incidents x 5 events = 3,000 events, published over ~5 s


def _replay(url: str, projection: Path, into: Path) -> subprocess.CompletedProcess[str]:
    return grace_cmd("replay", "--projection", str(projection), "--into", str(into),
                     "--nats", url, timeout=120)


def _wait_position(into: Path, seq: int, procs: list[subprocess.Popen[bytes]], log: Path,
                   timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while position(into) < seq:
        assert all(p.poll() is None for p in procs), log.read_text()
        assert time.monotonic() < deadline, f"{into} not at {seq}: {log.read_text()}"
        time.sleep(0.05)


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has installed its SIGTERM handler (its SigCgt mask in /proc)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _wait_started(procs: list[subprocess.Popen[bytes]], log: Path, timeout: float = 60) -> None:
    """Until each process stops cleanly on SIGTERM: one still importing would die of it."""
    deadline = time.monotonic() + timeout
    while not all(_handles_sigterm(p.pid) for p in procs):
        assert all(p.poll() is None for p in procs), log.read_text()
        assert time.monotonic() < deadline, f"no SIGTERM handler after {timeout}s: {log.read_text()}"
        time.sleep(0.05)


def test_user_projections_kept_live_across_sigkills_equal_their_replay(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    url, seed = fresh_server.url, random.randrange(1 << 30)
    rnd = random.Random(seed)
    examples = sorted(EXAMPLES.iterdir())
    assert {p.suffix for p in examples} == {".py", ".sql"}
    log = tmp_path / "project.log"
    intos = {p: tmp_path / f"live-{p.stem}.duckdb" for p in examples}

    def start_all() -> list[subprocess.Popen[bytes]]:
        return [start_project(url, tmp_path / p.stem, p, intos[p], log) for p in examples]

    published: list[int] = []

    def publish_steadily() -> None:  # the projections apply while they are killed
        for chunk in range(CHUNKS):
            published.append(publish_sync(url, incidents(PER_CHUNK, chunk * PER_CHUNK)))
            time.sleep(0.15)

    publisher = threading.Thread(target=publish_steadily)
    procs = start_all()
    publisher.start()
    try:
        kills = 0
        while publisher.is_alive() or kills < 3:
            time.sleep(rnd.uniform(0.3, 1.0))  # a random moment: starting, applying or idle
            for p in procs:
                p.send_signal(signal.SIGKILL)
                p.wait()
            kills += 1
            procs = start_all()
        publisher.join()
        last = published[-1]
        for p in examples:
            _wait_position(intos[p], last, procs, log)
        _wait_started(procs, log)  # the files may be at `last` already from before the kill
    finally:
        publisher.join()
        for p in procs:
            p.terminate()
        codes = [p.wait(timeout=60) for p in procs]
    assert codes == [0] * len(procs), log.read_text()
    assert last == CHUNKS * PER_CHUNK * 5
    for p in examples:
        replayed = tmp_path / f"replayed-{p.stem}.duckdb"
        r = _replay(url, p, replayed)
        assert r.returncode == 0, r.stderr
        live, built = user_tables(intos[p]), user_tables(replayed)
        assert live.keys() == built.keys()
        for table in built:  # table by table, for a readable failure
            assert live[table] == built[table], f"{p.name}: {table} differs (seed {seed})"
        assert built["grace_projection"][0][2] == last


FAILING = '''
from projections.user.api import Projection

def apply(batch):
    rows = []
    for seq, env, data in batch.events():
        if data.command_id == "cmd-{bad}":
            raise RuntimeError("cannot handle " + data.command_id)
        rows.append((seq, data.command_id))
    return {{"issued": rows}}

PROJECTION = Projection(name="issued", version=1, handles=("command_issued",),
                        tables=["CREATE TABLE issued (seq BIGINT, command_id VARCHAR)"],
                        apply=apply)
'''


def test_a_failing_projection_stops_at_its_event_with_nothing_applied_past_it(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    url = fresh_server.url
    items = incidents(40)
    publish_sync(url, items)
    bad = 23
    bad_seq = next(i + 1 for i, (_, raw, _) in enumerate(items) if f'"cmd-{bad}"'.encode() in raw
                   and b"command_issued" in raw)
    projection = tmp_path / "issued.py"
    projection.write_text(FAILING.format(bad=bad))
    into, log = tmp_path / "issued.duckdb", tmp_path / "project.log"

    proc = start_project(url, tmp_path / "live", projection, into, log)
    code = proc.wait(timeout=120)
    out = log.read_text()
    assert code != 0, out
    assert f"failed on event sequence {bad_seq} (type command_issued)" in out
    assert "Traceback" in out and f"cannot handle cmd-{bad}" in out
    con = duckdb.connect(str(into), read_only=True)
    try:
        assert con.execute("SELECT last_seq FROM grace_projection").fetchone() == (bad_seq - 1,)
        seqs = [r[0] for r in con.execute("SELECT seq FROM issued ORDER BY seq").fetchall()]
    finally:
        con.close()
    assert len(seqs) == bad and max(seqs) < bad_seq  # cmd-0 .. cmd-22, each once

    r = _replay(url, projection, tmp_path / "replayed.duckdb")
    assert r.returncode != 0
    assert f"failed on event sequence {bad_seq} (type command_issued)" in r.stderr
    assert not (tmp_path / "replayed.duckdb").exists()


VERSIONED = '''
from projections.user.api import Projection

def apply(batch):
    if {version} == 1:
        return {{"restarts": [(s,) for s in batch.seqs]}}
    return {{"restarts": list(zip(batch.seqs, batch.types))}}

PROJECTION = Projection(name="restarts", version={version}, handles=("kernel_restarted",),
                        tables=["CREATE TABLE restarts (seq BIGINT{extra})"], apply=apply)
'''


def test_a_new_version_rebuilds_the_projection_from_sequence_1(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    url = fresh_server.url
    last = publish_sync(url, incidents(30))
    projection, into = tmp_path / "restarts.py", tmp_path / "restarts.duckdb"
    projection.write_text(VERSIONED.format(version=1, extra=""))
    r = _replay(url, projection, into)
    assert r.returncode == 0, r.stderr
    assert user_tables(into)["grace_projection"] == [("restarts", 1, last, 30)]

    projection.write_text(VERSIONED.format(version=2, extra=", type VARCHAR"))
    log = tmp_path / "project.log"
    proc = start_project(url, tmp_path / "live", projection, into, log)
    try:
        deadline = time.monotonic() + 120
        while user_tables(into)["grace_projection"][0][1] != 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        _wait_position(into, last, [proc], log)
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0, log.read_text()
    assert "rebuilding projection 'restarts' from sequence 1" in log.read_text()
    rows = user_tables(into)
    assert rows["grace_projection"] == [("restarts", 2, last, 30)]
    assert len(rows["restarts"]) == 30 and {t for _, t in rows["restarts"]} == {"kernel_restarted"}


def _bad(name: str = "'p'", handles: str = "('kernel_restarted',)",
         ddl: str = "CREATE TABLE t (x INT)") -> str:
    return (f"PROJECTION = Projection(name={name}, version=1, handles={handles}, "
            f"tables=[{ddl!r}], apply=lambda b: {{}})")


@pytest.mark.parametrize(("body", "says"), [
    (_bad(name="''"), "name '' is missing"),
    (_bad(ddl="CREATE TABLE t (x NOSUCHTYPE)"), "table DDL failed"),
    (_bad(handles="('kernel_rebooted',)"), "unknown event type(s) kernel_rebooted"),
    ("X = 1", "defines no PROJECTION"),
])
def test_a_bad_projection_file_is_refused_naming_the_file_and_the_fix(
        tmp_path: Path, body: str, says: str) -> None:
    from projections.user.load import ProjectionFileError, load

    path = tmp_path / "bad.py"
    path.write_text("from projections.user.api import Projection\n" + body + "\n")
    with pytest.raises(ProjectionFileError) as exc:
        load(str(path))
    assert str(path) in str(exc.value) and says in str(exc.value)


def test_grace_replay_refuses_a_bad_sql_projection_before_reading_the_log(tmp_path: Path) -> None:
    path = tmp_path / "bad.sql"
    path.write_text("-- name: p\n-- version: 1\n-- handles: kernel_restarted\n-- tables\n"
                    "CREATE TABLE t (x INT);\n-- apply\nINSERT INTO t SELECT nosuch FROM batch;\n")
    r = grace_cmd("replay", "--projection", str(path), "--into", str(tmp_path / "o.duckdb"),
                  "--nats", "nats://127.0.0.1:1")
    assert r.returncode == 2
    assert str(path) in r.stderr and "statement over `batch` failed" in r.stderr
