"""Helpers for the reliability tests: stages as real `grace` subprocesses, a temp config,
the whole log read back."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from grace import bus as bus_mod
from grace import events, topology
from grace.consume import Delivery, read_range

GRACE = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"


class Stage:
    """`grace <name> -c CFG --nats URL --data-dir DIR [extra]` as a child process, logging to a file."""

    def __init__(self, name: str, cfg: Path, url: str, data: Path, *extra: str,
                 env: dict[str, str] | None = None, log_name: str | None = None) -> None:
        self.name = name
        self.argv = [GRACE, name, "-c", str(cfg), "--nats", url, "--data-dir", str(data), *extra]
        self.env = {**os.environ, "GRACE_LOG_LEVEL": "INFO", **(env or {})}
        self.log = cfg.parent / f"{log_name or name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Stage:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env)
        return self

    def tail(self, lines: int = 25) -> str:
        """The end of the stage's log, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait for a clean exit (SIGKILL only if it hangs, which fails the caller)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
                return -9
        return self.proc.returncode


def write_config(folder: Path, body: str, playbooks: str) -> Path:
    """grace.yaml (HTTP off) plus a playbooks.yaml beside it; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "playbooks.yaml").write_text(playbooks)
    cfg = folder / "grace.yaml"
    cfg.write_text('http: {listen: ""}\nplaybooks: [playbooks.yaml]\n' + body)
    return cfg


async def read_log(b: bus_mod.Bus, filter_subject: str = topology.EVENTS_ALL) -> list[Any]:
    """Every event in GRACE_EVENTS (envelopes, data kept raw), in log order."""
    out: list[Any] = []

    async def keep(items: list[Delivery[Any]]) -> None:
        out.extend(d.item for d in items)

    await read_range(b, 1, keep, decoder=events.decode_envelope, filter_subject=filter_subject,
                     stage="reliability-test")
    return out


async def count_subjects(b: bus_mod.Bus, subjects_filter: str) -> int:
    """How many stored events match `subjects_filter` (the server counts; nothing is read)."""
    info = await b.js.stream_info(topology.EVENTS, subjects_filter=subjects_filter)
    return sum((info.state.subjects or {}).values())


def duplicates(ids: list[str]) -> dict[str, int]:
    return {i: n for i, n in Counter(ids).items() if n > 1}


def data_of(ev: Any) -> dict[str, Any]:
    """The raw data of an envelope as a dict."""
    import msgspec

    raw = ev.data
    return msgspec.json.decode(bytes(raw)) if isinstance(raw, (bytes, msgspec.Raw)) else dict(raw)
