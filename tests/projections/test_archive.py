"""The log's Parquet archive against a real nats-server: archive, expire, replay, tamper, crash."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grace import bus as bus_mod
from grace import config, topology
from grace.embedded import EmbeddedServer
from grace.errors import ValidationErrors
from projections import archive
from projections.archiver import archive_closed
from projections.replay import ReplayError, replay_into
from tests.projections import sample
from tests.projections.live import GRACE, filler, publish_sync, tables
from tests.support import grace_cmd

SEGMENT, AFTER, MAX_AGE = "200ms", "200ms", "1s"  # retention settings, not trigger thresholds


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    s = EmbeddedServer(tmp_path / "nats")
    s.start()
    yield s
    s.stop()


def write_config(folder: Path, max_age: str | None = None) -> Path:
    """A grace.yaml with the archive in folder/archive (and events.max_age when given)."""
    text = (f"data_dir: data\narchive:\n  dir: archive\n  segment: {SEGMENT}\n"
            f"  after: {AFTER}\n")
    if max_age:
        text += f"events:\n  max_age: {max_age}\n"
    path = folder / "grace.yaml"
    path.write_text(text)
    return path


def story_items() -> list[tuple[str, bytes, str]]:
    return [(s, raw, f"story-{i}") for i, (s, raw) in enumerate(sample.encoded())]


def archive_now(url: str, cfg_path: Path) -> list[archive.Manifest]:
    """One archiver pass at a clock 10 s ahead (virtual time): every segment so far is closed."""
    cfg = config.load(cfg_path)

    async def go() -> list[archive.Manifest]:
        b = await bus_mod.connect_and_ensure(url, host="test", source="grace/test/pytest")
        try:
            return await archive_closed(b, cfg.path("archive"), cfg.archive, now=time.time() + 10)
        finally:
            await b.close()
    return asyncio.run(go())


def apply_retention(url: str, cfg_path: Path) -> None:
    """Start a process with the config's events.max_age, as every Grace process does."""
    async def go() -> None:
        b = await bus_mod.connect_and_ensure(url, host="test", source="grace/test/pytest",
                                             events_max_age=config.load(cfg_path).events.max_age)
        await b.close()
    asyncio.run(go())


def stream_state(url: str) -> tuple[int, int, float]:
    async def go() -> tuple[int, int, float]:
        b = await bus_mod.connect(url, host="test", source="grace/test/pytest")
        try:
            info = await b.js.stream_info(topology.EVENTS)
            return int(info.state.first_seq), int(info.state.last_seq), info.config.max_age or 0
        finally:
            await b.close()
    return asyncio.run(go())


def lift_retention(url: str) -> None:
    async def go() -> None:
        b = await bus_mod.connect(url, host="test", source="grace/test/pytest")
        try:
            info = await b.js.stream_info(topology.EVENTS)
            info.config.max_age = 0
            await b.js.update_stream(info.config)
        finally:
            await b.close()
    asyncio.run(go())


def test_max_age_is_refused_without_the_archive_or_below_its_margin(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("events:\n  max_age: 30d\n")
    with pytest.raises(ValidationErrors, match=r"events.max_age.*only with the archive on"):
        config.load(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("archive:\n  dir: arch\nevents:\n  max_age: 169h\n")
    with pytest.raises(ValidationErrors, match=r"at least 170h"):
        config.load(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("archive:\n  dir: arch\nevents:\n  max_age: 170h\n")
    assert config.load(tmp_path / "c.yaml").events.max_age == 170 * 3600


def test_archived_segments_expired_from_the_stream_replay_to_the_same_dashboard(
        server: EmbeddedServer, tmp_path: Path) -> None:
    url, cfg_path = server.url, write_config(tmp_path, MAX_AGE)
    last = publish_sync(url, story_items() + filler("web-1", 3000))
    before = tmp_path / "before.duckdb"
    assert replay_into(url, before) == last  # the dashboard while the stream holds everything

    written = archive_now(url, cfg_path)
    assert sum(m.events for m in written) == last and written[-1].last_seq == last
    apply_retention(url, cfg_path)
    assert stream_state(url)[2] == pytest.approx(1.0)  # events.max_age applied to GRACE_EVENTS
    deadline = time.monotonic() + 60
    while stream_state(url)[0] <= last:  # the server expires the archived events
        assert time.monotonic() < deadline, "GRACE_EVENTS kept its events past max_age"
        time.sleep(0.1)

    after = tmp_path / "after.duckdb"
    assert replay_into(url, after, archive=tmp_path / "archive") == last
    assert tables(after) == tables(before)

    # the stream goes on past the archive: replay reads the archive, then the stream
    lift_retention(url)
    more = publish_sync(url, filler("web-2", 500))
    full = tmp_path / "full.duckdb"
    assert replay_into(url, full, archive=tmp_path / "archive") == more
    seqs = [r[0] for r in tables(full)["events"]]
    assert sorted(seqs) == list(range(1, more + 1))
    refused = tmp_path / "no-archive.duckdb"
    with pytest.raises(ReplayError, match=rf"sequences 1..{last} are gone"):
        replay_into(url, refused)


def test_a_tampered_or_missing_segment_is_reported_by_verify_and_refused_by_replay(
        server: EmbeddedServer, tmp_path: Path) -> None:
    url, cfg_path = server.url, write_config(tmp_path)
    for i in range(3):  # three periods of 200 ms: three segments
        publish_sync(url, filler(f"h{i}", 200))
        time.sleep(0.25)
    written = archive_now(url, cfg_path)
    assert len(written) >= 3
    ok = grace_cmd("archive", "verify", "-c", str(cfg_path))
    assert ok.returncode == 0, ok.stderr
    assert f"sequences 1..{written[-1].last_seq}" in ok.stdout

    folder = tmp_path / "archive"
    altered = folder / written[1].file
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0x01
    altered.write_bytes(bytes(data))
    gone = folder / written[2].file
    gone.unlink()
    bad = grace_cmd("archive", "verify", "-c", str(cfg_path))
    assert bad.returncode == 1
    assert f"{altered}: altered" in bad.stdout and f"{gone}: missing" in bad.stdout
    assert written[0].file not in bad.stdout

    refused = grace_cmd("replay", "-c", str(cfg_path), "--nats", url, "--into",
                        str(tmp_path / "r.duckdb"))
    assert refused.returncode != 0
    assert f"archive segment {altered} was altered" in refused.stderr
    assert not (tmp_path / "r.duckdb").exists()


def test_an_archiver_killed_at_random_moments_writes_each_segment_once(
        server: EmbeddedServer, tmp_path: Path) -> None:
    url, cfg_path = server.url, write_config(tmp_path)
    folder, rnd = tmp_path / "archive", random.Random(17)
    seen: dict[str, tuple[int, int]] = {}  # segment -> (inode, mtime): a rewrite changes them
    log = tmp_path / "archiver.log"

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen([GRACE, "archive", "run", "-c", str(cfg_path), "--nats", url],
                                    stdout=out, stderr=out,
                                    env={**os.environ, "GRACE_LOG_LEVEL": "INFO"})

    def check_unchanged() -> None:
        for p in folder.glob("events-*.parquet"):
            st = p.stat()
            assert seen.setdefault(p.name, (st.st_ino, st.st_mtime_ns)) == (st.st_ino,
                                                                            st.st_mtime_ns)

    last = 0
    for round_ in range(5):
        proc = start()
        for _ in range(3):
            last = publish_sync(url, filler(f"r{round_}", rnd.randrange(500, 3000)))
            time.sleep(0.25)
        time.sleep(rnd.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check_unchanged()
    def runs() -> int:
        return log.read_text().count("archiving GRACE_EVENTS into")

    started = runs()
    proc = start()  # the last run archives every period that has closed meanwhile
    deadline = time.monotonic() + 60
    while runs() == started or archive.last_seq(folder) < last:  # up (SIGTERM is handled), done
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    check_unchanged()
    assert archive.problems(folder) == []
    ms = archive.manifests(folder)
    assert ms[0].first_seq == 1 and ms[-1].last_seq == last
    assert sum(m.events for m in ms) == last
    wrote = [line.split("wrote ")[1].split()[0] for line in log.read_text().splitlines()
             if "archive: wrote" in line]
    assert len(wrote) == len(set(wrote))  # no segment written twice


def test_a_crash_between_the_renames_keeps_the_segment_and_completes_its_manifest(
        server: EmbeddedServer, tmp_path: Path) -> None:
    url, cfg_path = server.url, write_config(tmp_path)
    publish_sync(url, filler("a", 300))
    # one segment, or two when a loaded machine spread the 300 events over two 200 ms periods
    first_pass = archive_now(url, cfg_path)
    assert first_pass[0].first_seq == 1 and first_pass[-1].last_seq == 300
    crashed = first_pass[-1]
    folder = tmp_path / "archive"
    parquet = folder / crashed.file
    inode = parquet.stat().st_ino
    parquet.with_suffix(".json").unlink()  # killed after the Parquet rename, before the manifest
    (folder / "events-000000000301.parquet.tmp").write_bytes(b"half a file")  # killed mid-write
    time.sleep(0.25)  # the next events fall in a later period
    last = publish_sync(url, filler("b", 300))
    written = archive_now(url, cfg_path)
    # the pass goes on after the kept segment (its events are not written again), with no gap
    assert written[0].first_seq == 301 and written[-1].last_seq == last
    assert all(a.last_seq + 1 == b.first_seq for a, b in itertools.pairwise(written))
    assert parquet.stat().st_ino == inode  # kept, not rewritten
    assert crashed in archive.manifests(folder)  # the completed manifest says what it said
    assert archive.problems(folder) == [] and not list(folder.glob("*.tmp"))
