"""The reducer alone: raw events in, rows out (no DuckDB, no NATS)."""

from __future__ import annotations

import json
import typing
from datetime import datetime

from grace import events
from projections import schema
from projections.reducer import Reducer
from projections.rows import ROW_TYPES, TABLE_NAMES, Tables, column_names, named
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
    first = named("events", rows.tables.events[0])
    assert (first["seq"], first["type"], first["category"], first["host"]) == (1, "boot_phase", "boot",
                                                                               "web-1")
    assert json.loads(first["data"]) == {"phase": 1, "name": "preflight", "status": "started", "detail": "",
                                     "blocks": False}


def test_issue_rows_carry_trigger_name_and_finding_key() -> None:
    rows = Reducer().reduce(items(sample.encoded()))
    issues = [named("issues", r) for r in rows.tables.issues]
    backlog = next(r for r in issues if r["type"] == "queue_backlog")
    assert backlog["trigger"] == "latency_queue"
    assert json.loads(backlog["finding_key"]) == {"kernel": "worker"}
    assert backlog["kernel"] == "worker"


def test_kernel_state_is_carried_across_batches() -> None:
    pairs = sample.encoded()
    r = Reducer()
    r.reduce(items(pairs[:12]))
    rows = r.reduce(items(pairs[12:], first=13))
    states = {(k["kernel"], k["instance"]): k["state"]
              for k in (named("kernels", row) for row in rows.pop_kernels())}
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
    (row,) = rows.pop_kernels()
    k = named("kernels", row)
    assert (k["state"], k["pid"], k["critical"], k["exit_code"], k["restarts"]) == ("stopped", 3, False, 0, 2)


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
    ev = {r["seq"]: r for r in (named("events", row) for row in rows.tables.events)}
    assert ev[1]["error"] is None
    assert ev[2]["type"] == "future_thing" and ev[2]["category"] == "future"
    assert "unknown event type" in ev[2]["error"] and json.loads(ev[2]["data"]) == {"a": 1}
    assert ev[3]["type"] == "kernel_started" and "invalid data" in ev[3]["error"]
    assert ev[4]["category"] == "weird" and ev[4]["type"] is None and "envelope" in ev[4]["error"]
    assert rows.count("kernels") == 0  # the invalid kernel_started changed no state


def test_a_kernel_left_stopped_by_a_hold_is_held_not_failed() -> None:
    evs = [events.KernelStarted(kernel="reporter", pid=1),
           events.KernelExited(kernel="reporter", pid=1, code=-9),
           events.KernelHeld(kernel="reporter", hold_id="h1", target="kernel:reporter",
                             until=events.now(), by="ana", pid=1)]
    raws = [("s", events.encode(events.make_event(p, host="h", source="t"))) for p in evs]
    (k,) = Reducer().reduce(items(raws)).pop_kernels()
    assert named("kernels", k)["state"] == "held"


_PYTHON_TYPES = {"BIGINT": int, "INTEGER": int, "DOUBLE": float, "BOOLEAN": bool, "VARCHAR": str,
                 "TIMESTAMP": datetime, "JSON": (str, bytes)}


def test_every_table_has_one_row_type_whose_columns_are_its_columns_in_order() -> None:
    assert list(ROW_TYPES) == list(schema.TABLES) == list(TABLE_NAMES)
    for table, cols in schema.TABLES.items():
        row = ROW_TYPES[table]
        assert column_names(row) == [c for c, _ in cols], table
        assert typing.get_type_hints(Tables, include_extras=True)[table] == list[row], table
        for (column, duckdb_type), item in zip(cols, typing.get_args(row), strict=True):
            hint = typing.get_args(item)[0]  # Annotated[hint, column]
            wanted = _PYTHON_TYPES[duckdb_type]
            declared = {a for a in typing.get_args(hint) if a is not type(None)} or {hint}
            allowed = set(wanted) if isinstance(wanted, tuple) else {wanted}
            assert declared <= allowed, f"{table}.{column}: {hint} for a {duckdb_type} column"


def test_every_row_the_reducer_builds_fits_its_table_and_names_its_event() -> None:
    pairs = sample.encoded()
    rows = Reducer().reduce(items(pairs))
    assert rows.count("issues") and rows.count("kernels") and rows.count("decisions")
    sent = {i + 1: events.decode(raw) for i, (_, raw) in enumerate(pairs)}
    for table, built in rows.tables.items():
        for row in built:
            r = named(table, row)  # raises when the row's length is not the table's
            for column, value in r.items():
                hint = typing.get_args(typing.get_args(ROW_TYPES[table])[
                    column_names(ROW_TYPES[table]).index(column)])[0]
                assert value is None or isinstance(value, typing.get_args(hint) or hint), (table, column)
            if table in ("events", "kernels"):
                continue
            # a derived row says which event it came from: same time, host and (where kept) type
            ev = sent[r["seq"]]
            assert (r["time"], r["host"]) == (ev.time, ev.host), (table, r)
            if "type" in r:
                assert r["type"] == ev.type, (table, r)
