"""The user projection apply path on a real DuckDB file, fed frames directly (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from projections.user.api import Batch, Projection
from projections.user.apply import Applier, ProjectionFailed
from projections.user.load import check
from projections.user.store import UserStore
from tests.projections.user_support import incidents


def frames(n: int) -> list[tuple[int, str, bytes]]:
    return [(i + 1, subject, raw) for i, (subject, raw, _) in enumerate(incidents(n))]


def every_form(batch: Batch) -> dict[str, Any]:
    """The same rows as an Arrow table, tuples and dicts."""
    seqs, types = batch.seqs, batch.types
    return {"as_arrow": pa.table({"type": types, "seq": seqs}),
            "as_tuples": list(zip(seqs, types, strict=True)),
            "as_dicts": [{"type": t, "seq": s} for s, t in zip(seqs, types, strict=True)]}


def store_for(tmp_path: Path, proj: Projection) -> UserStore:
    check(proj)
    return UserStore.open(tmp_path / "p.duckdb", proj)


def test_rows_as_arrow_tuples_or_dicts_land_alike_with_the_position(tmp_path: Path) -> None:
    tables = [f"CREATE TABLE {t} (seq BIGINT, type VARCHAR)"
              for t in ("as_arrow", "as_tuples", "as_dicts")]
    proj = Projection(name="forms", version=1, handles=("kernel_restarted", "command_issued"),
                      tables=tables, apply=every_form, source="test")
    store = store_for(tmp_path, proj)
    applier = Applier(store)
    items = frames(20)  # 100 events, 40 of the handled types
    applier.feed(items[:50])
    applier.feed(items[30:])  # sent again after a reconnect: applied once
    want = sorted((s, t) for s, t in zip((f[0] for f in items), Batch(items).types, strict=True)
                  if t in proj.handles)
    for t in ("as_arrow", "as_tuples", "as_dicts"):
        assert store.con.execute(f"SELECT seq, type FROM {t} ORDER BY seq").fetchall() == want  # noqa: S608
    assert store.con.execute("SELECT last_seq, events FROM grace_projection").fetchone() == (100, 40)
    store.close()


def test_a_sql_projection_reads_the_events_columns_of_its_batch(tmp_path: Path) -> None:
    proj = Projection(
        name="sqlp", version=1, handles=("command_issued",),
        tables=[("CREATE TABLE c (seq BIGINT, time TIMESTAMP, host VARCHAR, category VARCHAR, "
                 "command_id VARCHAR)")],
        statements=[("INSERT INTO c SELECT seq, time, host, category, data->>'command_id' "
                     "FROM batch")], source="test")
    store = store_for(tmp_path, proj)
    Applier(store).feed(frames(3))
    rows = store.con.execute("SELECT seq, CAST(time AS VARCHAR), host, category, command_id "
                             "FROM c ORDER BY seq").fetchall()
    assert rows == [(2, "2026-01-05 08:00:01", "web-1", "decision", "cmd-0"),
                    (7, "2026-01-05 09:00:01", "web-1", "decision", "cmd-1"),
                    (12, "2026-01-05 10:00:01", "web-1", "decision", "cmd-2")]
    store.close()


def test_a_batch_that_raises_keeps_every_event_before_the_failing_one(tmp_path: Path) -> None:
    def apply(batch: Batch) -> dict[str, Any]:
        for seq, _, data in batch.events():
            if data.command_id == "cmd-3":
                raise KeyError(f"no playbook for {seq}")
        return {"ok": [(s,) for s in batch.seqs]}

    proj = Projection(name="fails", version=1, handles=("command_issued",),
                      tables=["CREATE TABLE ok (seq BIGINT)"], apply=apply, source="test")
    store = store_for(tmp_path, proj)
    with pytest.raises(ProjectionFailed) as exc:
        Applier(store).feed(frames(10))
    assert exc.value.seq == 17 and exc.value.type == "command_issued"
    assert "KeyError" in str(exc.value) and "no playbook for 17" in str(exc.value)
    assert store.con.execute("SELECT list(seq ORDER BY seq) FROM ok").fetchone() == ([2, 7, 12],)
    assert store.last_seq() == 16
    store.close()
    con = duckdb.connect(str(tmp_path / "p.duckdb"), read_only=True)  # what survives a restart
    assert con.execute("SELECT last_seq FROM grace_projection").fetchone() == (16,)
    con.close()
