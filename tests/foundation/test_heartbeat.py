"""grace.heartbeat against real nats-servers: a cluster URL list, the kernel role, restarts, TLS.

A beat counts only once the server confirmed it; every failure is logged and retried,
so each test also checks what a subscriber on the server actually received.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg

from grace import auth, config, heartbeat
from grace.app.cluster import LocalCluster
from grace.embedded import EmbeddedServer, ServerTls
from grace.errors import ConfigError
from tests import pki
from tests.support import wait_for


class Received:
    """Heartbeats a real subscriber got, by subject."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def on(self, msg: Msg) -> None:
        self.subjects.append(msg.subject)

    def count(self, subject: str) -> int:
        return self.subjects.count(subject)


async def listen(url: str, subject: str = "grace.>", **kw: object) -> tuple[Client, Received]:
    got = Received()
    nc = await nats.connect(url, **kw)
    await nc.subscribe(subject, cb=got.on)
    await nc.flush()
    return nc, got


@pytest.fixture
def authed(tmp_path: Path) -> Iterator[tuple[EmbeddedServer, dict[str, str]]]:
    """A server with the `grace auth init` users; yields it and the users' passwords."""
    data = tmp_path / "data"
    auth.init(data)
    users: dict[str, str] = json.loads((auth.auth_dir(data) / "users.json").read_text())
    server = EmbeddedServer(data, extra_conf=auth.server_conf(data))
    server.start()
    yield server, users
    server.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.make(tmp_path_factory.mktemp("pki"))


@pytest_asyncio.fixture
async def tls_server(tmp_path: Path, certs: pki.Pki) -> AsyncIterator[EmbeddedServer]:
    """A server that requires TLS and a client certificate signed by the test CA."""
    server = EmbeddedServer(tmp_path / "tls", tls=ServerTls(certs.server.cert, certs.server.key, certs.ca))
    server.start()
    yield server
    server.stop()


def client_tls(certs: pki.Pki) -> ssl.SSLContext:
    return heartbeat.TlsFiles(str(certs.ca), str(certs.client.cert), str(certs.client.key)).context()


async def test_heartbeats_go_through_a_three_node_cluster_url_list_and_survive_two_nodes_dying(
        tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster")
    url = cluster.start()
    assert url.count(",") == 2  # the list `grace cluster up` prints
    nc, got = await listen(cluster.nodes[2].url)
    hb = heartbeat.Heartbeater(url, "clu", "api", interval=0.05).start()
    try:
        await wait_for(lambda: got.count("grace.heartbeat.clu.api") >= 2, timeout=15)
        cluster.nodes[0].kill()
        cluster.nodes[1].kill()
        before = got.count("grace.heartbeat.clu.api")
        await wait_for(lambda: got.count("grace.heartbeat.clu.api") >= before + 3, timeout=30)
        assert hb._thread.is_alive()
    finally:
        hb.stop()
        await nc.close()
        cluster.stop()


async def test_kernel_role_from_the_environment_is_accepted_and_may_publish_only_heartbeats(
        authed: tuple[EmbeddedServer, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    server, users = authed
    assert "kernel" in users  # `grace auth init` wrote its password
    nc, got = await listen(server.url, ">", user="admin", password=users["admin"])
    monkeypatch.setenv("GRACE_NATS_URL", server.url)
    monkeypatch.setenv("GRACE_NATS_USER", "kernel")
    monkeypatch.setenv("GRACE_NATS_PASSWORD", users["kernel"])
    hb = heartbeat.start("api", host="auth", interval=0.05)
    assert hb is not None
    kernel = await nats.connect(server.url, user="kernel", password=users["kernel"])
    try:
        await wait_for(lambda: got.count("grace.heartbeat.auth.api") >= 2 and hb.sent >= 2, timeout=10)
        assert hb.failures == 0 and hb.last_error is None
        # the role: a finding is refused, a heartbeat of any kernel on any host goes through; one
        # connection's messages arrive in order, so once the second is seen the first would have been
        await kernel.publish("grace.events.trigger.cpu_saturation.auth", b"{}")
        await kernel.publish("grace.heartbeat.other.worker", b"{}")
        await kernel.flush()
        await wait_for(lambda: got.count("grace.heartbeat.other.worker") == 1, timeout=10)
        assert not [s for s in got.subjects if s.startswith("grace.events.")]
    finally:
        hb.stop()
        await kernel.close()
        await nc.close()


async def test_a_wrong_password_is_refused_logged_retried_and_never_counted(
        authed: tuple[EmbeddedServer, dict[str, str]], caplog: pytest.LogCaptureFixture) -> None:
    server, users = authed
    nc, got = await listen(server.url, ">", user="admin", password=users["admin"])
    conn = heartbeat.Connection(server.url, user="kernel", password="not-" + users["kernel"])
    caplog.set_level(logging.INFO, logger="grace.heartbeat")
    hb = heartbeat.Heartbeater(conn, "auth", "api", interval=0.05).start()
    try:
        await wait_for(lambda: hb.failures >= 3, timeout=15)
        assert hb.sent == 0 and hb._thread.is_alive()
        assert hb.last_error is not None and "authorization" in hb.last_error.lower()
    finally:
        hb.stop()
        await nc.close()
    logged = [r for r in caplog.records if r.name == "grace.heartbeat"]
    assert logged[0].levelno == logging.WARNING and "heartbeats of api" in logged[0].getMessage()
    assert len(logged) >= 3  # each retry says so
    assert got.count("grace.heartbeat.auth.api") == 0


async def test_beats_resume_with_credentials_after_the_server_restarts(
        authed: tuple[EmbeddedServer, dict[str, str]]) -> None:
    server, users = authed
    conn = heartbeat.Connection(server.url, user="kernel", password=users["kernel"])
    hb = heartbeat.Heartbeater(conn, "rs", "api", interval=0.05).start()
    try:
        await wait_for(lambda: hb.sent >= 2, timeout=10)
        server.kill()
        await wait_for(lambda: hb.last_error is not None, timeout=10)
        failed_at = hb.sent
        server.restart()
        nc, got = await listen(server.url, ">", user="admin", password=users["admin"])
        await wait_for(lambda: got.count("grace.heartbeat.rs.api") >= 2, timeout=20)
        assert hb.sent > failed_at and hb._thread.is_alive()
        await nc.close()
    finally:
        hb.stop()


async def test_heartbeats_over_mutual_tls_with_the_test_ca(tls_server: EmbeddedServer,
                                                           certs: pki.Pki) -> None:
    nc, got = await listen(tls_server.url, tls=client_tls(certs))
    files = heartbeat.TlsFiles(str(certs.ca), str(certs.client.cert), str(certs.client.key))
    hb = heartbeat.Heartbeater(heartbeat.Connection(tls_server.url, tls=files), "tls", "api",
                               interval=0.05).start()
    try:
        await wait_for(lambda: got.count("grace.heartbeat.tls.api") >= 2, timeout=10)
        assert hb.failures == 0
    finally:
        hb.stop()
        await nc.close()


@pytest.mark.parametrize("case", ["unknown CA", "no client certificate", "no TLS"])
async def test_tls_failures_are_retried_and_never_counted(tls_server: EmbeddedServer, certs: pki.Pki,
                                                          case: str) -> None:
    files = {"unknown CA": heartbeat.TlsFiles(str(certs.rogue_ca), str(certs.client.cert),
                                              str(certs.client.key)),
             "no client certificate": heartbeat.TlsFiles(str(certs.ca)),
             "no TLS": None}[case]
    nc, got = await listen(tls_server.url, tls=client_tls(certs))
    hb = heartbeat.Heartbeater(heartbeat.Connection(tls_server.url, tls=files), "tlsbad", "api",
                               interval=0.05).start()
    try:
        await wait_for(lambda: hb.failures >= 3, timeout=20)
        assert hb.sent == 0 and hb.last_error and hb._thread.is_alive()
    finally:
        hb.stop()
        await nc.close()
    assert got.count("grace.heartbeat.tlsbad.api") == 0


def test_kernel_env_carries_the_kernel_user_and_absolute_tls_files(tmp_path: Path) -> None:
    auth.init(tmp_path / "data")
    cfg = msgspec.structs.replace(
        config.load(None), config_dir=str(tmp_path), data_dir=str(tmp_path / "data"),
        nats=config.Nats(auth=True, tls=config.Tls(ca="ca.pem", cert="c.pem", key="k.pem")))
    env = heartbeat.kernel_env(cfg)
    users = json.loads((tmp_path / "data" / "auth" / "users.json").read_text())
    assert env["GRACE_NATS_USER"] == "kernel" and env["GRACE_NATS_PASSWORD"] == users["kernel"]
    assert env["GRACE_NATS_CA"] == str((tmp_path / "ca.pem").resolve())
    assert env["GRACE_NATS_CERT"] == str(tmp_path / "c.pem") and env["GRACE_NATS_KEY"].endswith("k.pem")


def test_users_written_before_the_kernel_role_say_to_rerun_auth_init(tmp_path: Path) -> None:
    folder = auth.init(tmp_path / "data")
    users = json.loads((folder / "users.json").read_text())
    del users["kernel"]
    (folder / "users.json").write_text(json.dumps(users))
    with pytest.raises(ConfigError, match="grace auth init --force"):
        auth.credentials(tmp_path / "data", "kernel")


def test_nats_options_for_a_kernels_own_work_come_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, certs: pki.Pki) -> None:
    monkeypatch.setenv("GRACE_NATS_URL", "nats://127.0.0.1:1, nats://127.0.0.1:2")
    monkeypatch.setenv("GRACE_NATS_USER", "kernel")
    monkeypatch.setenv("GRACE_NATS_PASSWORD", "pw")
    monkeypatch.setenv("GRACE_NATS_CA", str(certs.ca))
    opts = heartbeat.nats_options()
    assert opts["servers"] == ["nats://127.0.0.1:1", "nats://127.0.0.1:2"]
    assert (opts["user"], opts["password"]) == ("kernel", "pw") and opts["tls"] is not None
    monkeypatch.delenv("GRACE_NATS_URL")
    with pytest.raises(ConfigError, match="GRACE_NATS_URL"):
        heartbeat.nats_options()
