"""One-line heartbeats for a Python service: `grace.heartbeat.start("api")`.

A daemon thread speaks the NATS text protocol over a plain socket (CONNECT,
PUB, PING/PONG; no asyncio, standard library only) and publishes a Heartbeat
JSON on `grace.heartbeat.<host>.<kernel>` every `interval` seconds. The URL,
host, kernel name and instance (index within its pool) come from GRACE_NATS_URL /
GRACE_HOST / GRACE_KERNEL / GRACE_INSTANCE, which the supervisor sets for the
kernels it starts; the instance lets Grace tell a hung instance from its siblings. Without a URL it warns
and does nothing, so a service runs the same outside Grace.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import threading
import warnings
from datetime import UTC, datetime
from urllib.parse import unquote, urlparse

from grace import topology

DEFAULT_INTERVAL = 2.0
log = logging.getLogger(__name__)


class Heartbeater:
    """Sends heartbeats from a background thread until `stop()`; reconnects on errors."""

    def __init__(self, url: str, host: str, name: str, interval: float = DEFAULT_INTERVAL,
                 instance: int = 0) -> None:
        self.url, self.host, self.name, self.interval = url, host, name, interval
        self.instance = instance
        self.subject = topology.heartbeat_subject(host, name)
        self.sent = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"grace-heartbeat-{name}", daemon=True)

    def start(self) -> Heartbeater:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop sending (a gap follows, as when the service dies)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _payload(self) -> bytes:
        t = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return json.dumps({"name": self.name, "kind": "kernel", "pid": os.getpid(), "time": t,
                           "seq": self.sent, "instance": self.instance}).encode()

    def _connect(self) -> socket.socket:
        u = urlparse(self.url if "://" in self.url else f"nats://{self.url}")
        sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=5)
        f = sock.makefile("rb")
        info = f.readline()
        if not info.startswith(b"INFO"):
            raise ConnectionError(f"not a NATS server at {self.url}: {info[:80]!r}")
        opts: dict[str, object] = {"verbose": False, "pedantic": False, "lang": "python-raw",
                                   "version": "1", "name": f"heartbeat-{self.name}", "protocol": 0}
        if u.username:
            if u.password is None:
                opts["auth_token"] = unquote(u.username)
            else:
                opts["user"], opts["pass"] = unquote(u.username), unquote(u.password)
        sock.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        reply = f.readline()
        if not reply.startswith(b"PONG"):
            raise ConnectionError(f"NATS at {self.url} refused the connection: {reply[:200]!r}")
        sock.settimeout(5)
        return sock

    def _answer_pings(self, sock: socket.socket) -> None:
        # The server PINGs idle clients and drops those that never PONG.
        while select.select([sock], [], [], 0)[0]:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError("NATS closed the connection")
            if b"PING" in data:
                sock.sendall(b"PONG\r\n")
            if b"-ERR" in data:
                raise ConnectionError(data.decode(errors="replace").strip())

    def _run(self) -> None:
        sock: socket.socket | None = None
        wait = 0.0
        while not self._stop.wait(wait):
            try:
                if sock is None:
                    sock = self._connect()
                self._answer_pings(sock)
                body = self._payload()
                sock.sendall(b"PUB %s %d\r\n%s\r\n" % (self.subject.encode(), len(body), body))
                self.sent += 1
                self.last_error = None
                wait = self.interval
            except OSError as exc:
                if self.last_error is None:  # once per outage, not once per retry
                    log.warning("heartbeats of %s to %s failing (%s); retrying every %.1fs",
                                self.name, self.url, exc, min(self.interval, 1.0))
                self.last_error = f"{exc}"
                if sock is not None:
                    sock.close()
                sock = None
                wait = min(self.interval, 1.0)
        if sock is not None:
            sock.close()


def start(name: str | None = None, *, url: str | None = None, host: str | None = None,
          interval: float | None = None, instance: int | None = None) -> Heartbeater | None:
    """Start heartbeats for this service; None (with a warning) when no NATS URL is known."""
    url = url or os.environ.get("GRACE_NATS_URL")
    name = name or os.environ.get("GRACE_KERNEL")
    host = host or os.environ.get("GRACE_HOST") or socket.gethostname().split(".")[0]
    if not url or not name:
        missing = "GRACE_NATS_URL" if not url else "GRACE_KERNEL (or a name)"
        warnings.warn(f"grace.heartbeat: {missing} is not set; no heartbeats are sent. Grace sets "
                      "it for the kernels it starts.", RuntimeWarning, stacklevel=2)
        return None
    every = interval or float(os.environ.get("GRACE_HEARTBEAT_INTERVAL", DEFAULT_INTERVAL))
    if instance is None:
        try:
            instance = int(os.environ.get("GRACE_INSTANCE", "0"))
        except ValueError:
            instance = 0
    return Heartbeater(url, host, name, every, instance).start()
