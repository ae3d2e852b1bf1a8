"""`grace demo`: a working copy of the example system, and a fault injector to watch Grace heal.

Faults touch only the example system named by the config: its protected files,
its log, its code root, its advisory file, its kernels (found by the
GRACE_KERNEL/GRACE_HOST environment the supervisor gives them) and its queue.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import psutil

from grace import kernelstate, protect
from grace.cliutil import Context, fail, guarded, load_context, run, stage_options

FAULTS = ("model-corruption", "config-drift", "kill-kernel", "hang-kernel", "queue-flood",
          "cpu-burn", "error-storm", "syntax-error", "vulnerable-dependency", "latency", "memory-leak",
          "error-ramp")
CPU_BURN_S = 180  # cpu_saturation needs 3 samples 30 s apart, the playbook another minute
RAMP_S = 1200  # error-ramp: 20 minutes of a climbing error rate (the trend needs ~16 at 30 s)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples"  # the repository's examples/
RUNTIME = {".grace", ".grace_snapshots", "logs", "cache", "__pycache__", ".git"}
FLAGS = {"slow_health", "leak_memory"}  # fault switches the example kernels read
EXTERNAL = {"advisories.json"}  # fetched from an advisory feed, not part of the code


def init_copy(dest: Path, source: Path = EXAMPLE) -> bool:
    """Copy the example system into `dest` as its own git repo; False if it already exists."""
    if (dest / "grace.yaml").is_file():
        return False
    shutil.copytree(source, dest, ignore=lambda _d, names: [n for n in names if n in RUNTIME],
                    dirs_exist_ok=True)
    cfg = dest / "grace.yaml"
    # the copy lives elsewhere: point it at the shipped playbooks by absolute path
    playbooks = (source.parent / "playbooks").resolve()
    cfg.write_text(cfg.read_text().replace("playbooks: [../playbooks]", f"playbooks: [{playbooks}]"))
    git = ["git", "-c", "user.name=Grace", "-c", "user.email=grace@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(dest)], check=True)
    (dest / ".gitignore").write_text("\n".join(sorted(RUNTIME - {".git"} | FLAGS | EXTERNAL)) + "\n")
    subprocess.run([*git, "-C", str(dest), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(dest), "commit", "-q", "-m", "example system"], check=True)
    return True


def _first(cfg_paths: list[Path], what: str) -> Path:
    if not cfg_paths:
        fail(f"the config protects no {what} file to break; add one under protect.")
    return cfg_paths[0]


def kernel_processes(host: str, kernel: str, state_file: Path | None = None) -> list[psutil.Process]:
    """Processes the supervisor started for `kernel` on `host` (by their environment); with
    `state_file`, only those of the Grace keeping that record (another Grace on the same
    machine may use the same host name)."""
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            env = p.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
        if env.get("GRACE_KERNEL") == kernel and env.get("GRACE_HOST") == host and (
                state_file is None or env.get(kernelstate.STATE_ENV) == str(state_file)):
            found.append(p)
    return found


def inject(ctx: Context, kind: str) -> str:  # noqa: RET503 - fail() never returns
    """Break the example system in one way; return what was done."""
    cfg = ctx.cfg
    files = protect.protected_files(cfg)
    if kind == "model-corruption":
        path = _first([p for p, k in files if k == "model"], "model")
        path.write_bytes(os.urandom(256))
        return f"overwrote {path} with 256 random bytes"
    if kind == "config-drift":
        path = _first([p for p, k in files if k == "config"], "config")
        with open(path, "a") as f:
            f.write("\n# edited by hand at 3 a.m.\n" if path.suffix != ".json" else " ")
        return f"changed {path}"
    if kind in ("kill-kernel", "hang-kernel"):
        name = next((k.name for k in cfg.kernels if k.heartbeat_timeout), "")
        if not name:
            fail(f"no kernel with a heartbeat_timeout in the config for {kind}")
        procs = kernel_processes(cfg.host, name, kernelstate.state_path(cfg))
        if not procs:
            fail(f"kernel {name!r} of host {cfg.host!r} is not running; start Grace first (make run)")
        pids = ", ".join(str(p.pid) for p in procs)
        if kind == "kill-kernel":
            for p in procs:
                p.kill()
            return f"killed kernel {name} (pids {pids})"
        for p in procs:
            p.suspend()
        return f"stopped kernel {name} with SIGSTOP (pids {pids}): alive but silent"
    if kind == "queue-flood":
        return run(_flood(ctx))  # type: ignore[no-any-return]
    if kind == "memory-leak":
        flag = Path(cfg.config_dir) / "leak_memory"
        flag.write_text("300MB")
        return (f"the running example reporter now holds 300 MB over its 200 MB budget; a restart "
                f"frees it (remove {flag} to undo by hand)")
    if kind == "latency":
        flag = Path(cfg.config_dir) / "slow_health"
        flag.write_text("2")
        return f"the example api now answers /health in 2s (remove {flag} to undo)"
    if kind == "cpu-burn":
        seconds = CPU_BURN_S
        for _ in range(psutil.cpu_count() or 1):
            burn = f"import time\nt=time.time()+{seconds}\nwhile time.time()<t: pass"
            subprocess.Popen([sys.executable, "-c", burn], start_new_session=True)
        return f"burning every core for {seconds}s"
    if kind == "error-storm":
        if not cfg.logs:
            fail("the config names no log file")
        log = cfg.path(cfg.logs[0])
        log.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(log, "a") as f:
            for i in range(30):
                f.write(f"{stamp} ERROR payment 10{i} failed: timeout after {200 + i}ms on "
                        f"/srv/pay/{i:04x}\n")
        return f"appended 30 similar errors to {log}"
    if kind == "error-ramp":
        if not cfg.logs:
            fail("the config names no log file")
        log = cfg.path(cfg.logs[0])
        log.parent.mkdir(parents=True, exist_ok=True)
        script = "import sys; from grace.app.demo import ramp; ramp(sys.argv[1], int(sys.argv[2]))"
        subprocess.Popen([sys.executable, "-c", script, str(log), str(RAMP_S)], start_new_session=True)
        return (f"writing a climbing error rate into {log} for {RAMP_S // 60} min "
                "(1 line/s more every 20 s)")
    if kind == "syntax-error":
        root = cfg.code.root
        if not root:
            fail("the config names no code.root")
        path = cfg.path(root) / "shop" / "broken.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("def broken(:\n    return 1\n")
        return f"wrote a syntax error into {path}"
    if kind == "vulnerable-dependency":
        adv = cfg.dependencies.advisories or ""
        if not adv:
            fail("the config names no dependencies.advisories file")
        path = cfg.path(adv)
        records = json.loads(path.read_text()) if path.is_file() else []
        records.append({
            "id": "GHSA-demo-msgspec-0001", "aliases": ["CVE-2099-0001"],
            "summary": "Demo advisory: msgspec before 0.99.0",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "msgspec"},
                          "ranges": [{"type": "ECOSYSTEM",
                                      "events": [{"introduced": "0"}, {"fixed": "0.99.0"}]}]}]})
        path.write_text(json.dumps(records, indent=2))
        return f"added advisory GHSA-demo-msgspec-0001 (msgspec < 0.99.0) to {path}"
    fail(f"unknown fault {kind!r}; choose one of: {', '.join(FAULTS)}")


def ramp_lines(second: int) -> int:
    """Error lines the error-ramp fault writes in its `second`-th second (0-based)."""
    return second // 20


def write_ramp_second(log: Path, second: int) -> None:
    """One second of the error-ramp fault: its lines, appended to `log`."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(log, "a") as f:
        for i in range(ramp_lines(second)):
            f.write(f"{stamp} ERROR disk write {second}-{i} slow on /srv/db/{i:04x}\n")


def ramp(log: str, seconds: int) -> None:
    """The error-ramp fault's writer process: a climbing error rate for `seconds`."""
    start = time.monotonic()
    for second in range(seconds):
        write_ramp_second(Path(log), second)
        time.sleep(max(0.0, start + second + 1 - time.monotonic()))


async def _flood(ctx: Context, n: int = 1000) -> str:
    kernel = next((k for k in ctx.cfg.kernels if k.queue), None)
    if kernel is None or kernel.queue is None:
        fail("no kernel with a queue in the config")
    bus = await ctx.bus("demo")
    try:
        subject = "jobs.demo"
        futures = [await bus.js.publish_async(subject, b'{"job": %d}' % i) for i in range(n)]
        await asyncio.gather(*futures)
    finally:
        await bus.close()
    return f"published {n} jobs to {kernel.queue.stream}"


@click.group()
def demo() -> None:
    """The example system: make a working copy, inject faults."""


@demo.command("init")
@click.argument("dest", type=click.Path(file_okay=False), default=".demo")
def demo_init(dest: str) -> None:
    """Copy the example system into DEST (a git repo of its own), unless it exists."""
    made = init_copy(Path(dest).resolve())
    click.echo(f"{'created' if made else 'kept existing'} example system in {dest}")


@demo.command("fault")
@click.argument("kind", type=click.Choice(FAULTS))
@stage_options
@guarded
def demo_fault(kind: str, config_path: str | None, nats_url: str | None, data_dir: str | None) -> None:
    """Inject a fault of KIND into the example system and watch Grace heal it."""
    ctx = load_context(config_path, nats_url, data_dir)
    click.echo(inject(ctx, kind))


def register(group: click.Group) -> None:
    group.add_command(demo)
