"""Helpers for the projection tests that run `grace project` as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import duckdb

from grace import bus as bus_mod
from grace import events, topology
from grace.embedded import free_port
from projections import schema

GRACE = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"


def write_config(folder: Path, port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "grace.yaml"
    cfg.write_text(f'host: projtest\nhttp: {{listen: "127.0.0.1:{port}"}}\n'
                   "projection: {publish_every: 0.3s}\n")
    return cfg


class Projector:
    """`grace project` in a subprocess with its own data dir and HTTP port."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder, self.port = url, folder, free_port()
        self.data = folder / "data"
        self.cfg = write_config(folder, self.port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "projector.log"

    def start(self) -> Projector:
        env = {**os.environ, "GRACE_LOG_LEVEL": "INFO"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [GRACE, "project", "-c", str(self.cfg), "--nats", self.url, "--data-dir",
                 str(self.data)], stdout=log, stderr=log, env=env)
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except OSError:
            return 0, b""

    def last_seq(self) -> int:
        status, body = self.get("/healthz")
        return int(json.loads(body)["last_seq"]) if status == 200 else -1

    def wait_seq(self, seq: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.last_seq() < seq:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"projector not at {seq}: {self.log.read_text()}"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        assert self.proc.wait(timeout=30) == 0, self.log.read_text()


def until(predicate: Any, timeout: float = 60, what: str = "") -> None:
    """Poll `predicate` until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        time.sleep(0.02)


def filler(host: str, n: int, start: int = 0) -> list[tuple[str, bytes, str]]:
    """n trigger events (subject, raw, msg id) of `host`."""
    out = []
    for i in range(start, start + n):
        data: events.Payload
        if i % 2:
            data = events.CpuSaturation(scope="system", percent=91.0, threshold=90.0, samples=3,
                                        trigger="resource_pressure")
        else:
            data = events.QueueBacklog(kernel="worker", stream="J", consumer="c", pending=i,
                                       ack_pending=0, backlog=i, threshold=100,
                                       trigger="latency_queue")
        ev = events.make_event(data, host=host, source="grace/test/filler",
                               id=events.derive_id("filler", host, i))
        out.append((topology.event_subject(data.CATEGORY, data.TYPE, host), events.encode(ev), ev.id))
    return out


async def publish(url: str, items: list[tuple[str, bytes, str]]) -> int:
    """Publish with broker acks; returns the stream's last sequence."""
    b = await bus_mod.connect_and_ensure(url, host="test", source="grace/test/pytest")
    try:
        for i in range(0, len(items), 5000):
            await b.publish_raw_many(items[i: i + 5000])
        info = await b.js.stream_info(topology.EVENTS)
        return int(info.state.last_seq)
    finally:
        await b.close()


def publish_sync(url: str, items: list[tuple[str, bytes, str]]) -> int:
    return asyncio.run(publish(url, items))


def tables(path: Path) -> dict[str, Any]:
    """Every table's rows, sorted; projection_state without its wall-clock column."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out: dict[str, Any] = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                               for t in schema.TABLES}
        out["projection_state"] = con.execute(
            "SELECT last_seq, version, events, unknown_events, last_event_time "
            "FROM projection_state").fetchall()
        return out
    finally:
        con.close()
