"""`grace up` on a copy of the example system, for end-to-end tests of the seed playbooks.

One Grace runs for the whole module (booting takes seconds); each test injects
one fault with the real fault injector and watches the world and the log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio

from grace import bus as bus_mod
from grace import cliutil, events, kernelstate, topology
from grace.app import demo
from grace.embedded import free_port, read_url
from grace.logwatch import LogWatcher, last_seq

BOOT_TIMEOUT_S = 120
# the kernel records of the Graces this test session started: other sessions on the machine
# (other checkouts, CI jobs) also run example systems with host `demo`, whose kernels the
# pid helpers below must not count or signal
OURS: set[Path] = set()


def register(root: Path) -> Path:
    """Note the kernel record of a Grace this session runs on `root` (a working copy)."""
    mark = (root / ".grace").resolve() / "actuator" / "demo-kernels.json"
    OURS.add(mark)
    return mark


@dataclass
class Running:
    root: Path  # the example system's working copy
    config: Path
    proc: subprocess.Popen[bytes]
    http: str
    log: Path

    @property
    def data_dir(self) -> Path:
        return self.root / ".grace"

    def ctx(self) -> cliutil.Context:
        return cliutil.load_context(str(self.config))

    def dashboard(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.http}/operator/dashboard", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def dashboard_file(self) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "grace.app", "dashboard", "--json", "-c",
                              str(self.config)], capture_output=True, check=False, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def fault(self, kind: str) -> str:
        out = subprocess.run([sys.executable, "-m", "grace.app", "demo", "fault", kind, "-c",
                              str(self.config)], capture_output=True, check=False, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout


def _configure(root: Path) -> Path:
    """Fast cycles and free ports, so tests don't wait and don't collide."""
    cfg = root / "grace.yaml"
    text = cfg.read_text()
    api_port, http_port = free_port(), free_port()
    text = text.replace("interval: 30s", "interval: 1s")
    text = text.replace("18080", str(api_port))
    text = text.replace("18090", str(free_port()))  # the plain http.server kernel
    text = re.sub(r'listen: "127.0.0.1:\d+"', f'listen: "127.0.0.1:{http_port}"', text)
    # cpu_percent 98: only the test's burners saturate, not a busy CI machine; the trend
    # fits the last 8 samples so a ramp is judged on its own
    text += ("thresholds: {sustained_samples: 2, cpu_percent: 98, error_repeats: 5, "
             "trend_samples: 8, trend_min_samples: 6, error_rate_limit: 2000}\n")
    cfg.write_text(text)
    _commit(root, "test settings")
    return cfg


def _commit(root: Path, message: str) -> None:
    # keep the example's git tree clean: create_upgrade_pr refuses a dirty one
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-C", str(root),
                    "commit", "-q", "-am", message], check=True)


def shipped_copy(root: Path, host: str = "demo") -> Path:
    """The example exactly as shipped (30 s cycles, shipped thresholds and playbooks) in
    `root`; only its ports (and, if asked, its host) change, so runs never collide."""
    demo.init_copy(root)
    register(root)
    cfg = root / "grace.yaml"
    text = cfg.read_text()
    assert "interval: 30s" in text and "thresholds" not in text  # as shipped
    text = text.replace("host: demo", f"host: {host}")
    text = text.replace("18080", str(free_port())).replace("18090", str(free_port()))
    cfg.write_text(re.sub(r'listen: "127.0.0.1:\d+"', f'listen: "127.0.0.1:{free_port()}"', text))
    _commit(root, "test ports")
    return cfg


@contextmanager
def booted(root: Path, cfg: Path, *args: str) -> Iterator[Running]:
    """`grace up -c cfg [args]` until phase 7; SIGTERM (then SIGKILL after 60 s) at the end."""
    http = re.search(r'listen: "([^"]+)"', cfg.read_text())
    assert http
    log = root / "up.log"
    with open(log, "wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", "grace.app", "up", "-c", str(cfg), *args],
                                stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    running = Running(root, cfg, proc, f"http://{http.group(1)}", log)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while "phase 7/7" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"grace up did not boot:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    try:
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@pytest.fixture(scope="module")
def grace_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The example with 1 s cycles and lowered thresholds: the seed playbooks' quick tour."""
    root = tmp_path_factory.mktemp("e2e") / "system"
    demo.init_copy(root)
    register(root)
    with booted(root, _configure(root)) as running:
        yield running


@pytest.fixture(scope="module")
def shipped_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The example as shipped (see shipped_copy): one per test module."""
    root = tmp_path_factory.mktemp("shipped") / "system"
    with booted(root, shipped_copy(root)) as running:
        yield running


async def _bus_of(running: Running) -> AsyncIterator[bus_mod.Bus]:
    """A client of the running Grace's embedded NATS, for reading its log."""
    url = read_url(running.data_dir)
    assert url, "grace up wrote no nats.url"
    b = await bus_mod.connect(url, host="demo", source="grace/demo/e2e-test")
    yield b
    await b.close()


@pytest_asyncio.fixture(loop_scope="session")
async def shipped_bus(shipped_up: Running) -> AsyncIterator[bus_mod.Bus]:
    async for b in _bus_of(shipped_up):
        yield b


@pytest_asyncio.fixture(loop_scope="session")
async def log_bus(grace_up: Running) -> AsyncIterator[bus_mod.Bus]:
    async for b in _bus_of(grace_up):
        yield b


async def watch_from_now(b: bus_mod.Bus) -> LogWatcher:
    return LogWatcher(b, await last_seq(b) + 1).start()


def of_type(seen: list[events.Event], cls: type[events.Payload],
            pred: Callable[[Any], bool] = lambda _d: True) -> list[Any]:
    return [e.data for e in seen if isinstance(e.data, cls) and pred(e.data)]


async def expect(w: LogWatcher, cls: type[events.Payload], pred: Callable[[Any], bool] = lambda _d: True,
                 timeout: float = 30.0) -> Any:
    """Wait for an event of `cls` matching `pred` in the log; fail with what was seen."""
    ok = await w.wait(lambda seen: bool(of_type(seen, cls, pred)), timeout)
    if not ok:
        kinds: dict[str, int] = {}
        for e in w.seen:
            kinds[e.type] = kinds.get(e.type, 0) + 1
        why = [repr(e.data) for e in w.seen if isinstance(e.data, (
            events.CommandFailed, events.DecisionSuppressed, events.CheckFailed, events.VerifyFailed))]
        raise AssertionError(f"no {cls.TYPE} within {timeout}s; the log had: {kinds}; "
                             f"failures and suppressions: {why[:6]}")
    return of_type(w.seen, cls, pred)[0]


def succeeded(action: str) -> Callable[[Any], bool]:
    return lambda d: d.action == action


async def eventually(pred: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.2)


def _ours(host: str, kernel: str) -> list[psutil.Process]:
    if not OURS:
        return demo.kernel_processes(host, kernel)
    return [p for mark in OURS for p in demo.kernel_processes(host, kernel, mark)]


def kernel_pids(host: str, kernel: str) -> set[int]:
    return {p.pid for p in _ours(host, kernel)}


def instance_pids(running: Running, kernel: str) -> dict[int, int]:
    """{instance: pid} of this Grace's `kernel` processes, found in the world by their
    environment (other Graces on the machine also use host `demo`, so the state-file mark
    the supervisor sets tells ours apart)."""
    mark = str(kernelstate.state_path(running.ctx().cfg).resolve())
    out: dict[int, int] = {}
    for p in psutil.process_iter(["pid"]):
        try:
            env = p.environ()
            if (env.get("GRACE_KERNEL") == kernel and env.get("GRACE_KERNEL_STATE") == mark
                    and os.getsid(p.pid) == p.pid and p.status() != psutil.STATUS_ZOMBIE):
                out[int(env.get("GRACE_INSTANCE", "0"))] = p.pid
        except (psutil.Error, OSError, ValueError):
            continue
    return out


def pids(running: Running, kernel: str) -> set[int]:
    """Pids of this Grace's `kernel` processes (see instance_pids)."""
    return set(instance_pids(running, kernel).values())


def all_states(running: Running) -> dict[str, set[str]]:
    """kernel -> the process states of this Grace's instances of it."""
    out: dict[str, set[str]] = {}
    for k in running.ctx().cfg.kernels:
        for pid in instance_pids(running, k.name).values():
            with suppress(psutil.Error):
                out.setdefault(k.name, set()).add(str(psutil.Process(pid).status()))
    return out


def kernel_states(host: str, kernel: str) -> set[str]:
    out = set()
    for p in _ours(host, kernel):
        with suppress(Exception):  # exited meanwhile
            out.add(p.status())
    return out


def stage_process(up_pid: int, stage: str) -> psutil.Process:
    """The running `stage` (process, act, ...) under the `grace up` of pid `up_pid`."""
    for child in psutil.Process(up_pid).children():
        cmd = child.cmdline()
        if "grace.app" in cmd and stage in cmd:
            return child
    raise AssertionError(f"no {stage} stage under grace up")


__all__ = [
    "Running",
    "all_states",
    "eventually",
    "expect",
    "instance_pids",
    "kernel_pids",
    "kernel_states",
    "of_type",
    "os",
    "stage_process",
    "succeeded",
    "topology",
    "watch_from_now",
]
