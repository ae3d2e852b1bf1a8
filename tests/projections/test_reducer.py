"""The reducer alone: raw events in, rows out (no DuckDB, no NATS)."""

from __future__ import annotations

import json
import typing
from datetime import datetime

from grace import events
from projections import schema
from projections.reducer import Reducer
from projections.rows import ROW_TYPES, EventRow, IssueRow
from tests.projections import sample


def items(pairs: list[tuple[str, bytes]], first: int = 1) -> list[tuple[int, str, bytes]]:
    return [(first + i, s, raw) for i, (s, raw) in enumerate(pairs)]


def test_every_event_becomes_an_events_row_and_derived_rows_follow_their_type() -> None:
    rows = Reducer().reduce(items(sample.encoded()))
    assert rows.count("events") == len(sample.story())
    assert rows.last_seq == len(sample.story())
    assert rows.unknown == 0
    assert rows.count("issues") == 5
    assert rows.count("clearances") == 1
    assert rows.count("checks") == 3
    assert rows.count("commands") == 2
    assert rows.count("results") == 2
    assert rows.count("boot_phases") == 2
    first = rows.tables["events"][0]
    assert isinstance(first, EventRow) and first.data is not None
    assert (first.seq, first.type, first.category, first.host) == (1, "boot_phase", "boot", "web-1")
    assert json.loads(first.data) == {"phase": 1, "name": "preflight", "status": "started", "detail": "",
                                     "blocks": False}


def test_issue_rows_carry_trigger_name_and_finding_key() -> None:
    rows = Reducer().reduce(items(sample.encoded()))
    backlog = next(r for r in rows.tables["issues"] if isinstance(r, IssueRow) and r.type == "queue_backlog")
    assert isinstance(backlog, IssueRow) and backlog.trigger == "latency_queue"
    assert json.loads(backlog.finding_key) == {"kernel": "worker"}
    assert backlog.kernel == "worker"


def test_kernel_state_is_carried_across_batches() -> None:
    pairs = sample.encoded()
    r = Reducer()
    r.reduce(items(pairs[:12]))
    rows = r.reduce(items(pairs[12:], first=13))
    states = {(row.kernel, row.instance): row.state for row in rows.pop_kernels()}
    assert states == {("batch", 0): "failed", ("worker", 1): "suspended"}
    assert {(k.kernel, k.instance): k.state for k in r.kernels.values()} == {
        ("api", 0): "running", ("worker", 0): "running", ("worker", 1): "suspended",
        ("batch", 0): "failed"}


def test_restart_counts_and_expected_exit_is_stopped_not_failed() -> None:
    evs = [events.KernelStarted(kernel="api", pid=1), events.KernelRestarted(kernel="api", pid=2),
           events.KernelRestarted(kernel="api", pid=3, attempt=2),
           events.KernelExited(kernel="api", pid=3, code=0, expected=True)]
    raws = [("s", events.encode(events.make_event(p, host="h", source="t"))) for p in evs]
    rows = Reducer().reduce(items(raws))
    (k,) = rows.pop_kernels()
    assert (k.state, k.pid, k.critical, k.exit_code, k.restarts) == ("stopped", 3, False, 0, 2)


def test_unknown_type_bad_payload_and_garbage_are_kept_and_counted() -> None:
    good = events.encode(events.make_event(events.SystemStopped(), host="h", source="t"))
    unknown = json.dumps({"specversion": "1.0", "id": "u1", "source": "x", "type": "future_thing",
                          "time": "2026-01-01T00:00:00Z", "host": "h", "data": {"a": 1}}).encode()
    bad = json.dumps({"specversion": "1.0", "id": "b1", "source": "x", "type": "kernel_started",
                      "time": "2026-01-01T00:00:00Z", "host": "h", "data": {"kernel": 5}}).encode()
    garbage = b"\x00not json"
    rows = Reducer().reduce([(1, "grace.events.boot.system_stopped.h", good),
                             (2, "grace.events.future.future_thing.h", unknown),
                             (3, "grace.events.kernel.kernel_started.h", bad),
                             (4, "grace.events.weird.x.h", garbage)])
    assert rows.unknown == 3
    ev = {r.seq: r for r in rows.tables["events"] if isinstance(r, EventRow)}
    assert ev[1].error is None
    assert ev[2].type == "future_thing" and ev[2].category == "future"
    assert "unknown event type" in (ev[2].error or "") and json.loads(ev[2].data or b"") == {"a": 1}
    assert ev[3].type == "kernel_started" and "invalid data" in (ev[3].error or "")
    assert ev[4].category == "weird" and ev[4].type is None and "envelope" in (ev[4].error or "")
    assert rows.count("kernels") == 0  # the invalid kernel_started changed no state


def test_a_kernel_left_stopped_by_a_hold_is_held_not_failed() -> None:
    evs = [events.KernelStarted(kernel="reporter", pid=1),
           events.KernelExited(kernel="reporter", pid=1, code=-9),
           events.KernelHeld(kernel="reporter", hold_id="h1", target="kernel:reporter",
                             until=events.now(), by="ana", pid=1)]
    raws = [("s", events.encode(events.make_event(p, host="h", source="t"))) for p in evs]
    (k,) = Reducer().reduce(items(raws)).pop_kernels()
    assert k.state == "held"


_PYTHON_TYPES = {"BIGINT": int, "INTEGER": int, "DOUBLE": float, "BOOLEAN": bool, "VARCHAR": str,
                 "TIMESTAMP": datetime, "JSON": (str, bytes)}


def test_every_table_has_one_row_type_whose_fields_are_its_columns_in_order() -> None:
    assert list(ROW_TYPES) == list(schema.TABLES)
    for table, cols in schema.TABLES.items():
        row = ROW_TYPES[table]
        assert table == row.TABLE
        assert row.__struct_fields__ == tuple(c for c, _ in cols), table
        hints = typing.get_type_hints(row)
        for column, duckdb_type in cols:
            wanted = _PYTHON_TYPES[duckdb_type]
            declared = {a for a in typing.get_args(hints[column]) if a is not type(None)} or {hints[column]}
            allowed = set(wanted) if isinstance(wanted, tuple) else {wanted}
            assert declared <= allowed, f"{table}.{column}: {hints[column]} for a {duckdb_type} column"


def test_every_row_the_reducer_builds_is_its_tables_row_type() -> None:
    rows = Reducer().reduce(items(sample.encoded()))
    assert rows.count("issues") and rows.count("kernels")
    for table, built in rows.tables.items():
        assert all(type(r) is ROW_TYPES[table] for r in built), table
