"""The DuckDB writer: batches are atomic with their position; bad files are set aside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from projections.reducer import Reducer
from projections.store import ProjectionError, Store, open_live
from tests.projections import sample


def batch(first: int, last: int) -> list[tuple[int, str, bytes]]:
    pairs = sample.encoded()
    return [(i, *pairs[i - 1]) for i in range(first, last + 1)]


def test_a_batch_that_fails_leaves_neither_rows_nor_position(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.duckdb")
    reducer = Reducer()
    store.apply(reducer.reduce(batch(1, 10)))
    rows = reducer.reduce(batch(11, 30))
    assert rows.count("results") == 2
    store.con.execute("DROP TABLE results")  # the batch fails after its events went in
    with pytest.raises(duckdb.CatalogException):
        store.apply(rows)
    assert store.last_seq() == 10
    assert store.con.execute("SELECT count(*), max(seq) FROM events").fetchone() == (10, 10)
    assert store.con.execute("SELECT events FROM projection_state").fetchone() == (10,)


def test_position_and_kernels_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    store = Store.open(path)
    store.apply(Reducer().reduce(batch(1, 15)))
    store.close()
    again = Store.open(path)
    assert again.last_seq() == 15
    assert {(k.kernel, k.instance, k.state) for k in again.kernels()} == {
        ("api", 0, "running"), ("worker", 0, "running"), ("worker", 1, "suspended"),
        ("batch", 0, "failed")}
    again.close()


def test_corrupt_live_file_is_quarantined_never_deleted_and_a_new_one_started(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "projection.duckdb"
    path.write_bytes(b"this is not a duckdb file" * 1000)
    store = open_live(path)
    assert store.last_seq() == 0
    store.close()
    (kept,) = tmp_path.glob("projection.duckdb.corrupt-*")
    assert kept.read_bytes() == b"this is not a duckdb file" * 1000
    assert "rebuilding the projection from the log" in caplog.text


def test_file_of_another_projection_version_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "projection.duckdb"
    Store.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE projection_state SET version = version + 100")
    con.close()
    with pytest.raises(ProjectionError, match="version"):
        Store.open(path)
    open_live(path).close()
    assert len(list(tmp_path.glob("projection.duckdb.corrupt-*"))) == 1


async def test_redelivered_events_after_a_reconnect_are_not_applied_twice(tmp_path: Path) -> None:
    from projections.projector import Projector

    projector = Projector(Store.open(tmp_path / "p.duckdb"))
    await projector.feed(batch(1, 10))
    await projector.feed(batch(5, 20))  # a re-created consumer starts a little early
    await projector.flush()
    con = projector.store.con
    assert con.execute("SELECT count(*), count(DISTINCT seq) FROM events").fetchone() == (20, 20)
    assert projector.applied_seq == projector.store.last_seq() == 20
    await projector.close()


def test_values_that_do_not_fit_a_column_become_null_and_the_event_is_kept(tmp_path: Path) -> None:
    import json

    not_utf8 = (b'{"specversion":"1.0","id":"x","source":"s","type":"future","time":'
                b'"2026-01-01T00:00:00Z","host":"h","data":{"a":"\xff\xfe"}}')
    huge_pid = json.dumps({"specversion": "1.0", "id": "k", "source": "s", "type": "kernel_started",
                           "time": "2026-01-01T00:00:01Z", "host": "h",
                           "data": {"kernel": "api", "pid": 2**64 - 1}}).encode()
    store = Store.open(tmp_path / "p.duckdb")
    store.apply(Reducer().reduce([(1, "grace.events.x.future.h", not_utf8),
                                  (2, "grace.events.kernel.kernel_started.h", huge_pid)]))
    assert store.con.execute("SELECT seq, type, data IS NULL, error IS NOT NULL FROM events "
                             "ORDER BY seq").fetchall() == [(1, "future", True, True),
                                                            (2, "kernel_started", False, False)]
    assert store.con.execute("SELECT kernel, state, pid FROM kernels").fetchall() == [
        ("api", "running", None)]
    assert store.last_seq() == 2


def test_an_uncommitted_batch_is_dropped_at_close(tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    store = Store.open(path)
    reducer = Reducer()
    store.apply(reducer.reduce(batch(1, 10)))
    store.apply(reducer.reduce(batch(11, 20)), commit=False)  # a replay's open transaction
    store.close()
    again = Store.open(path)
    assert again.last_seq() == 10
    assert again.con.execute("SELECT count(*) FROM events").fetchone() == (10,)
    again.close()


def test_replay_writer_in_chunks_equals_one_batch(tmp_path: Path) -> None:
    from projections.replay import ChunkedWriter
    from tests.projections.live import tables

    items = batch(1, len(sample.encoded()))
    kernel_events = [i for i in items if ".kernel." in i[1]]
    assert len(kernel_events) >= 6  # instances change state in several batches of one chunk
    whole = Store.open(tmp_path / "whole.duckdb")
    whole.apply(Reducer().reduce(items))
    whole.close()
    writer = ChunkedWriter(Store.open(tmp_path / "chunked.duckdb"), write_every=7, commit_every=20)
    for i in range(0, len(items), 3):
        assert writer.submit(items[i:i + 3]) == items[min(i + 3, len(items)) - 1][0]
    assert writer.finish() == len(items)
    writer.close()
    assert tables(tmp_path / "chunked.duckdb") == tables(tmp_path / "whole.duckdb")


def test_a_file_another_process_writes_is_refused_as_in_use_and_never_set_aside(
        tmp_path: Path) -> None:
    path = tmp_path / "projection.duckdb"
    Store.open(path).close()
    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(ProjectionError, match="in use by another process") as info:
            open_live(path)
        assert info.value.in_use
        assert not list(tmp_path.glob("projection.duckdb.corrupt-*"))  # not set aside
    finally:
        holder.kill()
        holder.wait()
    open_live(path).close()  # free again once the holder is gone
