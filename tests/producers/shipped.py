"""The shipped example system (examples/) in a temp folder, for tests at the shipped defaults.

Only the ports change (so parallel runs do not collide); every threshold, interval and
playbook is the one Grace ships. A virtual clock stands in where waiting would be long.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from grace import cliutil, config, kernelstate
from grace.app import demo
from grace.embedded import free_port

INTERVAL_S = 30.0  # examples/grace.yaml: monitor.interval


class VirtualClock:
    """A clock a test moves by hand: `clock()` reads it, `advance(s)` moves it."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = INTERVAL_S) -> float:
        self.now += seconds
        return self.now


def shipped_system(root: Path) -> config.Config:
    """A working copy of examples/ (as `grace demo init` makes it) with free ports; its config."""
    demo.init_copy(root)
    cfg_file = root / "grace.yaml"
    text = cfg_file.read_text()
    assert "interval: 30s" in text  # the shipped interval, untouched
    text = text.replace("18080", str(free_port())).replace("127.0.0.1:8181", f"127.0.0.1:{free_port()}")
    cfg_file.write_text(text)
    return config.load(cfg_file)


def context(cfg: config.Config) -> cliutil.Context:
    return cliutil.Context(cfg, cfg.nats.url)


@contextmanager
def kernel_process(cfg: config.Config, name: str, nats_url: str = "") -> Iterator[subprocess.Popen[bytes]]:
    """Run one example kernel as the supervisor would (its command, cwd and env)."""
    k = cfg.kernel(name)
    assert k is not None
    env = {**os.environ, **k.env, "GRACE_HOST": cfg.host, "GRACE_KERNEL": k.name,
           "GRACE_INSTANCE": "0", kernelstate.STATE_ENV: str(kernelstate.state_path(cfg))}
    env.pop("GRACE_NATS_URL", None)
    if nats_url:
        env["GRACE_NATS_URL"] = nats_url
    argv = [sys.executable if a == "python" else a for a in k.command]
    proc = subprocess.Popen(argv, cwd=cfg.path(k.cwd or "."), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if k.health_url:
            _wait_http(k.health_url, proc)
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kernel exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")
