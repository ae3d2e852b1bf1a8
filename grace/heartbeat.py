"""One-line heartbeats for a Python service: `grace.heartbeat.start("api")`.

A daemon thread runs its own asyncio loop with a nats-py client and publishes a
Heartbeat JSON on `grace.heartbeat.<host>.<kernel>` every `interval` seconds. A
beat counts as sent only once the server has answered a flush. Any error (no
server, refused credentials, TLS, a server restart) is logged and retried with
exponential backoff capped at BACKOFF_MAX_S: the thread never gives up.

The supervisor starts kernels with their settings in the environment (`kernel_env`
writes them, `start` reads them):

    GRACE_NATS_URL       server URL, or a comma-separated cluster list
    GRACE_NATS_USER      user and password (the `kernel` role of `grace auth init`
    GRACE_NATS_PASSWORD  when nats.auth is on)
    GRACE_NATS_CREDS     a NATS .creds file (nats.credentials)
    GRACE_NATS_CA        TLS: CA file; GRACE_NATS_CERT / GRACE_NATS_KEY: client certificate
    GRACE_HOST, GRACE_KERNEL, GRACE_INSTANCE, GRACE_HEARTBEAT_INTERVAL

Without a URL it warns and does nothing, so a service runs the same outside Grace.
A kernel that uses NATS for its own work connects with `nats.connect(**nats_options())`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import nats
from nats.aio.client import Client

from grace import topology
from grace.errors import ConfigError

if TYPE_CHECKING:
    from grace.config import Config

DEFAULT_INTERVAL = 2.0
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
CONNECT_TIMEOUT_S = 2.0
FLUSH_TIMEOUT_S = 2.0
KERNEL_ROLE = "kernel"  # the NATS user kernels connect as when nats.auth is on
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    """TLS settings as file paths (the `nats.tls` section): CA, optional client cert and key."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        if self.cert and self.key:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


@dataclass(frozen=True)
class Connection:
    """Where and how to connect: a URL list and optional credentials and TLS."""

    url: str
    user: str | None = None
    password: str | None = None
    creds: str | None = None
    tls: TlsFiles | None = None

    @property
    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]


class Heartbeater:
    """Sends heartbeats from a background thread until `stop()`; retries every error with backoff."""

    def __init__(self, url: str | Connection, host: str, name: str,
                 interval: float = DEFAULT_INTERVAL, instance: int = 0) -> None:
        self.conn = url if isinstance(url, Connection) else Connection(url)
        self.url = self.conn.url
        self.host, self.name, self.interval, self.instance = host, name, interval, instance
        self.subject = topology.heartbeat_subject(host, name)
        self.sent = 0  # beats the server confirmed (flush answered while connected)
        self.failures = 0  # failed attempts since the start
        self.last_error: str | None = None  # None while beats go through
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"grace-heartbeat-{name}", daemon=True)

    def start(self) -> Heartbeater:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending (a gap follows, as when the service dies)."""
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _payload(self) -> bytes:
        t = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return json.dumps({"name": self.name, "kind": "kernel", "pid": os.getpid(), "time": t,
                           "seq": self.sent, "instance": self.instance}).encode()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                asyncio.run(self._main())
            except BaseException:  # the thread must outlive any bug of its own
                log.exception("heartbeats of %s: loop crashed; restarting it", self.name)
                self._stop.wait(BACKOFF_MAX_S)

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _connect(self) -> Client:
        async def quiet(exc: Exception) -> None:  # errors surface through the loop below
            log.debug("heartbeats of %s: %r", self.name, exc)

        c = self.conn
        # nats-py's own reconnects are off: one loop owns retries, so a beat is counted only
        # when sent on a live connection and every failure is logged the same way
        return await asyncio.wait_for(nats.connect(
            servers=c.servers, name=f"heartbeat-{self.name}", user=c.user, password=c.password,
            user_credentials=c.creds, tls=c.tls.context() if c.tls else None,
            allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.1,
            connect_timeout=CONNECT_TIMEOUT_S,
            error_cb=quiet), timeout=CONNECT_TIMEOUT_S * (2 * len(c.servers) + 1))

    async def _beat(self, nc: Client) -> None:
        await nc.publish(self.subject, self._payload())
        await nc.flush(timeout=FLUSH_TIMEOUT_S)  # type: ignore[arg-type]  # annotated int
        if not nc.is_connected:
            raise ConnectionError("connection lost before the server confirmed the beat")
        self.sent += 1

    async def _main(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        if self._stop.is_set():
            return
        nc: Client | None = None
        backoff = BACKOFF_MIN_S
        try:
            while not self._stop.is_set():
                try:
                    if nc is None or not nc.is_connected:
                        if nc is not None:
                            await _close(nc)
                        nc = None
                        nc = await self._connect()
                    await self._beat(nc)
                except Exception as exc:  # noqa: BLE001 - never die: log, back off, retry
                    self.failures += 1
                    self._failed(exc, backoff)
                    if nc is not None:
                        await _close(nc)
                    nc = None
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
                if self.last_error is not None:
                    log.info("heartbeats of %s to %s: sending again", self.name, self.url)
                self.last_error = None
                backoff = BACKOFF_MIN_S
                await self._sleep(self.interval)
        finally:
            if nc is not None:
                await _close(nc)

    def _failed(self, exc: Exception, backoff: float) -> None:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)
        # the first failure of an outage and every change of cause at WARNING, repeats at INFO
        level = logging.WARNING if text != self.last_error else logging.INFO
        log.log(level, "heartbeats of %s (%s) to %s failing: %s; retrying in %.1fs (attempt %d). "
                "Check the server is up and GRACE_NATS_* (URL, user, TLS files) are right.",
                self.name, self.subject, self.url, text, backoff, self.failures)
        self.last_error = text


async def _close(nc: Client) -> None:
    # closing a broken connection may fail; it is gone either way
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), CONNECT_TIMEOUT_S)


def connection_from_env(url: str | None = None) -> Connection | None:
    """The connection the supervisor described in GRACE_NATS_*; None without a URL."""
    env = os.environ
    url = url or env.get("GRACE_NATS_URL")
    if not url:
        return None
    tls = None
    if env.get("GRACE_NATS_CA") or env.get("GRACE_NATS_CERT"):
        tls = TlsFiles(env.get("GRACE_NATS_CA"), env.get("GRACE_NATS_CERT"), env.get("GRACE_NATS_KEY"))
    return Connection(url, env.get("GRACE_NATS_USER") or None, env.get("GRACE_NATS_PASSWORD") or None,
                      env.get("GRACE_NATS_CREDS") or None, tls)


class NatsOptions(TypedDict):
    servers: list[str]
    user: str | None
    password: str | None
    user_credentials: str | None
    tls: ssl.SSLContext | None


def nats_options(url: str | None = None) -> NatsOptions:
    """`nats.connect` keyword arguments for a kernel's own NATS work, from GRACE_NATS_*:
    the server list, credentials and TLS the supervisor gave it. ConfigError without a URL."""
    conn = connection_from_env(url)
    if conn is None:
        raise ConfigError("GRACE_NATS_URL is not set: Grace sets it for the kernels it starts; "
                          "outside Grace, set it to the NATS server's URL")
    return {"servers": conn.servers, "user": conn.user, "password": conn.password,
            "user_credentials": conn.creds, "tls": conn.tls.context() if conn.tls else None}


def kernel_env(cfg: Config) -> dict[str, str]:
    """GRACE_NATS_* (except the URL) for the kernels of `cfg`: credentials and TLS files."""
    env: dict[str, str] = {}
    if cfg.nats.auth:
        from grace import auth  # only when auth is on: kernels never need click

        env["GRACE_NATS_USER"], env["GRACE_NATS_PASSWORD"] = auth.credentials(cfg.data_path, KERNEL_ROLE)
    if cfg.nats.credentials:
        env["GRACE_NATS_CREDS"] = str(cfg.path(cfg.nats.credentials))
    t = cfg.nats.tls
    if t is not None:
        for key, value in (("CA", t.ca), ("CERT", t.cert), ("KEY", t.key)):
            if value:
                env[f"GRACE_NATS_{key}"] = str(Path(cfg.path(value)).resolve())
    return env


def start(name: str | None = None, *, url: str | None = None, host: str | None = None,
          interval: float | None = None, instance: int | None = None) -> Heartbeater | None:
    """Start heartbeats for this service; None (with a warning) when no NATS URL is known."""
    conn = connection_from_env(url)
    name = name or os.environ.get("GRACE_KERNEL")
    host = host or os.environ.get("GRACE_HOST") or socket.gethostname().split(".")[0]
    if conn is None or not name:
        missing = "GRACE_NATS_URL" if conn is None else "GRACE_KERNEL (or a name)"
        warnings.warn(f"grace.heartbeat: {missing} is not set; no heartbeats are sent. Grace sets "
                      "it for the kernels it starts.", RuntimeWarning, stacklevel=2)
        return None
    try:
        every = interval or float(os.environ.get("GRACE_HEARTBEAT_INTERVAL", DEFAULT_INTERVAL))
    except ValueError:
        every = DEFAULT_INTERVAL
    if instance is None:
        try:
            instance = int(os.environ.get("GRACE_INSTANCE", "0"))
        except ValueError:
            instance = 0
    return Heartbeater(conn, host, name, every, instance).start()
