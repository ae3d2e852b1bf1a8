"""Shared pieces of the `grace` CLI: common options, loading, running coroutines.

Stage packages add their commands through a `register(group)` function in
their own `cli` module; `grace.app.cli` lists those modules.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import msgspec

from grace import auth, parentdeath
from grace import config as config_mod
from grace.bus import Bus, connect_and_ensure, resolve_url
from grace.errors import ConfigError, ExitCode, GraceError

F = TypeVar("F", bound=Callable[..., Any])
# settings read from the environment only (no CLI option): container deployments use them
ENV_SETTINGS = ("GRACE_HOST", "GRACE_HTTP_LISTEN", "GRACE_NATS_REPLICAS", "GRACE_LOG_LEVEL",
                "GRACE_FAST_PATH")


def config_option(f: F) -> F:
    return click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                        envvar="GRACE_CONFIG", show_envvar=True,
                        help="grace.yaml to use (env GRACE_CONFIG). Default: grace.yaml in the "
                             "current folder if present, else built-in defaults.")(f)


def nats_option(f: F) -> F:
    return click.option("--nats", "nats_url", envvar="GRACE_NATS_URL", show_envvar=True,
                        help="NATS URL (env GRACE_NATS_URL). Default: the config's nats.url, else "
                             "the embedded server named in <data_dir>/nats.url.")(f)


def data_dir_option(f: F) -> F:
    return click.option("--data-dir", "data_dir", type=click.Path(file_okay=False),
                        envvar="GRACE_DATA_DIR", show_envvar=True,
                        help="Data folder (env GRACE_DATA_DIR). Default: the config's data_dir.")(f)


def stage_options(f: F) -> F:
    """-c, --nats, --data-dir: the options every stage command takes."""
    return config_option(nats_option(data_dir_option(f)))


@dataclass
class Context:
    cfg: config_mod.Config
    nats_url: str | None  # explicit URL (flag, env or config); None: embedded

    @property
    def data_dir(self) -> Path:
        return self.cfg.data_path

    def url(self) -> str:
        return resolve_url(self.nats_url, self.data_dir)

    async def bus(self, component: str) -> Bus:
        """Connect as `component` and ensure the topology."""
        tls = None
        if self.cfg.nats.tls:
            import ssl

            t = self.cfg.nats.tls
            tls = ssl.create_default_context(cafile=str(self.cfg.path(t.ca)) if t.ca else None)
            if t.cert and t.key:
                tls.load_cert_chain(str(self.cfg.path(t.cert)), str(self.cfg.path(t.key)))
        creds = str(self.cfg.path(self.cfg.nats.credentials)) if self.cfg.nats.credentials else None
        user = password = None
        if self.cfg.nats.auth:
            user, password = auth.credentials(self.data_dir, component)
        return await connect_and_ensure(
            self.url(), host=self.cfg.host, source=f"grace/{self.cfg.host}/{component}",
            name=f"grace-{component}", replicas=self.cfg.nats.replicas, credentials=creds, tls=tls,
            user=user, password=password, fast_path=self.cfg.nats.fast_path)


def load_context(config_path: str | None, nats_url: str | None = None,
                 data_dir: str | None = None) -> Context:
    """Load and validate the config, apply the CLI overrides."""
    if config_path is None and Path("grace.yaml").is_file():
        config_path = "grace.yaml"
    cfg = config_mod.load(config_path)
    if not cfg.nats.fast_path:  # processes this one starts (stages, the replay reader) follow
        os.environ["GRACE_FAST_PATH"] = "0"
    if data_dir:
        cfg = msgspec.structs.replace(cfg, data_dir=str(Path(data_dir).resolve()))
    # container deployments configure these through the environment (compose.yaml)
    if os.environ.get("GRACE_HOST"):
        cfg = msgspec.structs.replace(cfg, host=os.environ["GRACE_HOST"])
    if os.environ.get("GRACE_HTTP_LISTEN"):
        cfg = msgspec.structs.replace(cfg, http=config_mod.Http(listen=os.environ["GRACE_HTTP_LISTEN"]))
    if os.environ.get("GRACE_NATS_REPLICAS"):
        cfg = msgspec.structs.replace(cfg, nats=msgspec.structs.replace(
            cfg.nats, replicas=_replicas(os.environ["GRACE_NATS_REPLICAS"])))
    return Context(cfg, nats_url or cfg.nats.url)


def _replicas(text: str) -> int:
    if text.strip() not in ("1", "3", "5"):
        raise ConfigError(f"GRACE_NATS_REPLICAS={text!r}: must be 1, 3 or 5 (the JetStream replicas of "
                          "Grace's streams and buckets, as nats.replicas); fix or unset it")
    return int(text)


def setup_logging(verbose: bool = False) -> None:
    level = os.environ.get("GRACE_LOG_LEVEL", "DEBUG" if verbose else "INFO").upper()
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def fail(message: str, code: ExitCode = ExitCode.ERROR) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine; GraceErrors become a message and their exit code, Ctrl-C exits 130."""
    try:
        return asyncio.run(coro)
    except GraceError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, Any]]) -> Any:
    """Run `main(stop)`; SIGINT and SIGTERM set `stop` so it can finish cleanly."""
    async def go() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        parent = parentdeath.expected_parent()  # started by `grace up`: stop when it is gone
        if parent is not None:
            parentdeath.watch_parent(parent, stop.set, loop)
        return await main(stop)

    return run(go())


def guarded(f: F) -> F:
    """Turn GraceErrors raised synchronously (config loading) into messages and exit codes."""
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except GraceError as exc:
            fail(str(exc), exc.exit_code)
    return wrapper  # type: ignore[return-value]
