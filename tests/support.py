"""Helpers for tests: run the real CLI, poll for a condition, count stream messages."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from grace import bus as bus_mod
from grace import topology


def grace_cmd(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
              cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real `grace` CLI in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    exe = shutil.which("grace", path=str(Path(sys.executable).parent)) or "grace"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd, check=check)


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `predicate` (sync or async) until truthy; fail with a clear message on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        await asyncio.sleep(interval)


async def stream_messages(b: bus_mod.Bus, stream: str = topology.EVENTS) -> int:
    info = await b.js.stream_info(stream)
    return int(info.state.messages)
