"""The README's dashboard-file queries run on a real dashboard file and answer.

The file is built the way an operator builds one: events published to a real
nats-server, then `grace replay --into FILE`. The log holds the projection tests'
story (boot, checks, findings, commands, kernels, snapshots), moved to the last
minutes, plus a failed command, a hold, an approval and an event of a type this
version does not know, so that each question has something to find.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from grace import bus as bus_mod
from grace import events, topology
from grace.embedded import EmbeddedServer
from grace.events.base import Payload
from tests.docs.readme import block, section
from tests.projections import sample
from tests.support import grace_cmd

HOST = "web-1"
# README question number -> does each of its statements find rows in this log?
NON_EMPTY = {1: [True], 2: [True], 3: [True], 4: [True], 5: [True, True], 6: [True, True, True, True]}


def extra(now: datetime) -> list[Payload]:
    e = events
    return [
        e.CommandIssued(playbook="kernel_down", command_id="c9", action="restart_kernel",
                        target="api", cause_ids=["z"], reason="api silent for 20 s"),
        e.CommandFailed(command_id="c9", action="restart_kernel", target="api",
                        playbook="kernel_down", reason="api exited at once (code 3)"),
        e.HoldAdded(hold_id="h1", target="kernel:api", until=now + timedelta(minutes=30),
                    for_s=1800, reason="db migration", by="alice"),
        e.ApprovalRequested(playbook="config_drift_detected", command_id="c10",
                            action="restore_from_snapshot", target="config/app.yaml",
                            cause_ids=["e1"], reason="config/app.yaml drifted",
                            params={"path": "config/app.yaml"}, within_s=900,
                            expires_at=now + timedelta(minutes=15)),
        e.ApprovalRequested(playbook="config_drift_detected", command_id="c11",
                            action="restore_from_snapshot", target="config/db.yaml",
                            cause_ids=["e2"], reason="config/db.yaml drifted",
                            params={"path": "config/db.yaml"}, within_s=900,
                            expires_at=now + timedelta(minutes=15)),
        e.ApprovalGranted(command_id="c11", by="carol"),
    ]


async def publish_log(url: str) -> int:
    """The story, one second apart and ending now, and one event from a later Grace."""
    now = datetime.now(UTC)
    payloads = [p for _, p in sample.story()] + extra(now)
    start = now - timedelta(seconds=len(payloads))
    b = await bus_mod.connect_and_ensure(url, host=HOST, source="grace/test/docs")
    try:
        evs = [events.make_event(p, host=HOST, source="grace/test/docs",
                                 time=start + timedelta(seconds=i)) for i, p in enumerate(payloads)]
        await b.publish_many(evs)
        future = events.encode(events.make_event(events.MonitorStopped(), host=HOST,
                                                 source="grace/test/docs"))
        future = future.replace(b'"type":"monitor_stopped"', b'"type":"monitor_paused"', 1)
        await b.js.publish(topology.event_subject("system", "monitor_paused", HOST), future)
        return len(evs) + 1
    finally:
        await b.close()


@pytest.fixture(scope="module")
def dashboard_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    tmp = tmp_path_factory.mktemp("docs-sql")
    server = EmbeddedServer(tmp / "nats")
    server.start()
    try:
        published = asyncio.run(publish_log(server.url))
        dest = tmp / "dashboard.duckdb"
        done = grace_cmd("replay", "--into", str(dest), "--nats", server.url, cwd=tmp, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        server.stop()
    con = duckdb.connect(str(dest), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (published,)
    finally:
        con.close()
    return dest


def questions() -> dict[int, list[str]]:
    """README question number -> its SQL statements."""
    out: dict[int, list[str]] = {}
    number = 0
    for chunk in block("Querying the dashboard file", "sql").text.split(";"):
        lines = []
        for line in chunk.strip().splitlines():
            if m := re.match(r"--\s*(\d+)\.", line):
                number = int(m.group(1))
            elif not line.startswith("--"):
                lines.append(line)
        if lines:
            out.setdefault(number, []).append("\n".join(lines))
    return out


def test_the_readme_asks_the_questions_this_test_expects() -> None:
    assert {n: len(s) for n, s in questions().items()} == {n: len(v) for n, v in NON_EMPTY.items()}


@pytest.mark.parametrize("number", sorted(NON_EMPTY))
def test_a_readme_question_runs_on_a_replayed_dashboard_file(dashboard_file: Path, number: int) -> None:
    con = duckdb.connect(str(dashboard_file), read_only=True)
    try:
        for stmt, non_empty in zip(questions()[number], NON_EMPTY[number], strict=True):
            rows = con.execute(stmt).fetchall()
            assert bool(rows) == non_empty, f"README question {number}: {stmt}\n-> {rows}"
    finally:
        con.close()


def test_the_readme_python_snippet_opens_the_file(dashboard_file: Path) -> None:
    code = block("Querying the dashboard file", "python").text
    code = code.replace('".grace/dashboard.duckdb"', repr(str(dashboard_file)))
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own snippet
    con = scope["con"]
    assert isinstance(con, duckdb.DuckDBPyConnection)
    try:
        assert con.execute("SELECT last_seq FROM projection_state").fetchone() is not None
    finally:
        con.close()


def documented_columns() -> dict[str, list[str]]:
    """table -> the columns the README's table of tables lists."""
    out = {}
    for line in section("Querying the dashboard file").splitlines():
        cells = line.split(" | ")
        if not line.startswith("| `") or len(cells) != 2:
            continue
        names = re.findall(r"`(\w+)`", cells[0])
        if len(names) != 1:
            continue  # the views' row lists several names and describes them in prose
        cols = re.sub(r"\([^)]*\)", "", cells[1].split(" — ")[0])
        out[names[0]] = re.findall(r"`(\w+)`", cols)
    return out


def test_the_readme_lists_the_columns_each_dashboard_table_has(dashboard_file: Path) -> None:
    documented = documented_columns()
    assert {"events", "checks", "kernels", "holds", "projection_state"} <= set(documented)
    con = duckdb.connect(str(dashboard_file), read_only=True)
    try:
        for table, cols in documented.items():
            actual = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
            assert cols == actual, f"README lists {table} as {cols}; the file has {actual}"
        for view in ("holds_active", "approvals_pending"):
            assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (1,)  # noqa: S608 - a view name from the tuple above
    finally:
        con.close()
