"""The README's archive queries run on a real archive: events published to a real
nats-server, written to Parquet by the archiver, queried with DuckDB as the README shows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import duckdb
import pytest

from grace import bus as bus_mod
from grace import config, events
from grace.embedded import EmbeddedServer
from projections.archiver import archive_closed
from tests.docs.readme import block
from tests.projections import sample


async def archived(url: str, folder: Path) -> int:
    payloads = [p for _, p in sample.story()]
    payloads.append(events.CheckFailed(trigger="config_drift", duration_ms=4.0, error="boom"))
    b = await bus_mod.connect_and_ensure(url, host="web-1", source="grace/test/docs")
    try:
        await b.publish_many([events.make_event(p, host="web-1", source="grace/test/docs")
                              for p in payloads])
        cfg = config.Archive(dir=str(folder))
        written = await archive_closed(b, folder, cfg, now=time.time() + float(cfg.after) + 7200)
        return sum(m.events for m in written)
    finally:
        await b.close()


def statements() -> list[str]:
    text = block("Archive and retention", "sql").text
    return [s for s in ("\n".join(ln for ln in c.splitlines() if not ln.startswith("--")).strip()
                        for c in text.split(";")) if s]


def test_the_readme_archive_queries_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    try:
        count = asyncio.run(archived(server.url, tmp_path / "archive"))
    finally:
        server.stop()
    assert count == len(sample.story()) + 1
    monkeypatch.chdir(tmp_path)  # the README's paths are relative to where duckdb runs
    stmts = statements()
    assert len(stmts) == 3
    con = duckdb.connect()
    try:
        for stmt in stmts:
            assert con.execute(stmt).fetchall(), stmt
        assert ("config_drift", "boom") in [r[3:] for r in con.execute(stmts[1]).fetchall()]
        assert con.execute(stmts[2]).fetchone()[:3] == (1, count, count)  # type: ignore[index]
    finally:
        con.close()
