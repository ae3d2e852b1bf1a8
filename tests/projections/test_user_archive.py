"""A user projection over an archived log, against a real nats-server: replay and a live
projection read the events that left the stream from the archive; without it they stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from grace.embedded import EmbeddedServer
from projections.user.live import live_path
from tests.projections.live import GRACE, publish_sync
from tests.projections.test_archive import (
    AFTER,
    SEGMENT,
    apply_retention,
    archive_now,
    lift_retention,
    server,  # noqa: F401 - the fixture
    stream_state,
    write_config,
)
from tests.projections.user_support import EXAMPLES, incidents, position, user_tables
from tests.support import grace_cmd

MTTR = EXAMPLES / "mttr.py"


def _config(folder: Path, archive: bool) -> Path:
    """grace.yaml for `grace project`/`grace replay`: with or without the archive."""
    folder.mkdir(parents=True, exist_ok=True)
    text = "host: projtest\nprojection: {publish_every: 0.3s}\n"
    if archive:  # the archive of tmp_path/archive, the folder test_archive's config writes
        text += (f"archive:\n  dir: {folder.parent / 'archive'}\n  segment: {SEGMENT}\n"
                 f"  after: {AFTER}\n")
    path = folder / "grace.yaml"
    path.write_text(text)
    return path


def _replay(url: str, cfg: Path, into: Path) -> subprocess.CompletedProcess[str]:
    return grace_cmd("replay", "-c", str(cfg), "--projection", str(MTTR), "--into", str(into),
                     "--nats", url, timeout=120)


def _project(url: str, cfg: Path, into: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([GRACE, "project", "-c", str(cfg), "--nats", url, "--projection",
                                 str(MTTR), "--into", str(into)], stdout=out, stderr=out,
                                env={**os.environ, "GRACE_LOG_LEVEL": "INFO"})


def _follow_to(proc: subprocess.Popen[bytes], into: Path, seq: int, log: Path) -> None:
    """Wait until `into` is published at `seq`, then stop the projection with SIGTERM."""
    deadline = time.monotonic() + 120
    try:
        while position(into) < seq:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{into} not at {seq}: {log.read_text()}"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()


def _same(got: Path, want: Path) -> None:
    a, b = user_tables(got), user_tables(want)
    assert a.keys() == b.keys()
    for table in b:  # table by table, for a readable failure
        assert a[table] == b[table], f"{table} differs between {got.name} and {want.name}"


def test_a_user_projection_reads_expired_events_from_the_archive_and_stops_without_it(
        server: EmbeddedServer, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    url, log = server.url, tmp_path / "project.log"
    plain, with_archive = _config(tmp_path / "plain", False), _config(tmp_path / "arch", True)
    into = tmp_path / "live.duckdb"

    first = publish_sync(url, incidents(100))
    _follow_to(_project(url, plain, into, log), into, first, log)  # stopped before the expiry
    last = publish_sync(url, incidents(100, 100))
    before = tmp_path / "before.duckdb"
    r = _replay(url, plain, before)
    assert r.returncode == 0, r.stderr
    assert user_tables(before)["grace_projection"][0][2] == last

    retention = write_config(tmp_path, "1s")  # archive in tmp_path/archive, events.max_age 1s
    assert archive_now(url, retention)[-1].last_seq == last
    apply_retention(url, retention)
    deadline = time.monotonic() + 60
    while stream_state(url)[0] <= last:  # the server expires every archived event
        assert time.monotonic() < deadline, "GRACE_EVENTS kept its events past max_age"
        time.sleep(0.1)
    lift_retention(url)

    after = tmp_path / "after.duckdb"
    r = _replay(url, with_archive, after)
    assert r.returncode == 0, r.stderr
    _same(after, before)

    # without the archive the live projection cannot go on: it says which events are gone
    kept = user_tables(into)
    refused = subprocess.run([GRACE, "project", "-c", str(plain), "--nats", url, "--projection",
                              str(MTTR), "--into", str(into)], capture_output=True, text=True,
                             timeout=120, check=False)
    assert refused.returncode != 0, refused.stderr
    assert f"sequences {first + 1}..{last} are gone" in refused.stderr, refused.stderr
    assert "no archive is configured (archive.dir)" in refused.stderr
    assert position(live_path(into)) == first and user_tables(into) == kept

    # with it, the live projection catches up from the archive, then follows the stream
    more = publish_sync(url, incidents(20, 200))
    _follow_to(_project(url, with_archive, into, log), into, more, log)
    assert f"sequences {first + 1}..{last} have left GRACE_EVENTS" in log.read_text()
    full = tmp_path / "full.duckdb"
    r = _replay(url, with_archive, full)
    assert r.returncode == 0, r.stderr
    _same(into, full)
    assert user_tables(full)["grace_projection"][0][2] == more
