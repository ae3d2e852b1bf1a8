"""A log for the user projection tests: incidents the example projections all read."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from grace import events, topology
from tests.projections.live import GRACE, write_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "projections"
T0 = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)


def _item(data: events.Payload, i: int, t: datetime, host: str = "web-1"
          ) -> tuple[str, bytes, str]:
    ev = events.make_event(data, host=host, source="grace/test/incidents",
                           id=events.derive_id("incident", data.TYPE, i), time=t)
    return topology.event_subject(data.CATEGORY, data.TYPE, host), events.encode(ev), ev.id


def incidents(n: int, start: int = 0) -> list[tuple[str, bytes, str]]:
    """n incidents of 5 events each: a finding, its command and result, a restart, a check."""
    e, out = events, []
    for i in range(start, start + n):
        t = T0 + timedelta(hours=i)  # a few thousand events span several weeks
        if i % 2:
            finding: events.Payload = e.ModelCorruption(
                path=f"models/m{i % 3}.pkl", expected_sha256="a", actual_sha256="b",
                reason="sha256 mismatch", trigger="model_integrity")
            playbook, action, params = "model_corruption_detected", "restore_model_weights", {
                "path": f"models/m{i % 3}.pkl"}
        else:
            finding = e.QueueBacklog(kernel="worker", stream="J", consumer="c", pending=500,
                                     ack_pending=0, backlog=500, threshold=100,
                                     trigger="latency_queue")
            playbook, action, params = "high_queue_backlog", "scale_workers", {"kernel": "worker"}
        fid_item = _item(finding, i, t)
        cid = f"cmd-{i}"
        target = str(params.get("path", "worker"))
        out.append(fid_item)
        out.append(_item(e.CommandIssued(playbook=playbook, command_id=cid, action=action,
                                         target=target, cause_ids=[fid_item[2]], params=params),
                         i, t + timedelta(seconds=1)))
        ok = i % 7 != 0
        result: events.Payload = (
            e.CommandSucceeded(command_id=cid, action=action, target=target, playbook=playbook)
            if ok else e.CommandFailed(command_id=cid, action=action, target=target,
                                       playbook=playbook, reason="no snapshot"))
        out.append(_item(result, i, t + timedelta(seconds=2 + i % 11)))
        out.append(_item(e.KernelRestarted(kernel="api", pid=1000 + i, instance=i % 2), i,
                         t + timedelta(seconds=3)))
        out.append(_item(e.CheckCompleted(trigger="latency_queue", duration_ms=1.0,
                                          outcome="ok"), i, t + timedelta(seconds=4)))
    return out


def user_tables(path: Path) -> dict[str, Any]:
    """Every base table's rows, sorted; the position row without its wall clock."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
        out: dict[str, Any] = {t: con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall()  # noqa: S608
                               for t in names if t != "grace_projection"}
        out["grace_projection"] = con.execute(
            "SELECT name, version, last_seq, events FROM grace_projection").fetchall()
        return out
    finally:
        con.close()


def position(path: Path) -> int:
    """The last sequence of a (published) projection file; 0 when absent or being replaced."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return 0
    try:
        row = con.execute("SELECT last_seq FROM grace_projection").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def project_cmd(url: str, folder: Path, projection: Path, into: Path) -> list[str]:
    cfg = write_config(folder, 0)
    return [GRACE, "project", "-c", str(cfg), "--nats", url, "--data-dir", str(folder / "data"),
            "--projection", str(projection), "--into", str(into)]


def start_project(url: str, folder: Path, projection: Path, into: Path,
                  log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GRACE_LOG_LEVEL": "INFO"}
    with open(log, "ab") as out:
        return subprocess.Popen(project_cmd(url, folder, projection, into), stdout=out,
                                stderr=out, env=env)
