"""The embedded server's TLS, from `nats.tls`: what it demands and what a bad config says."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import msgspec
import pytest

from grace import config
from grace.embedded import EmbeddedServer, server_tls
from grace.errors import ConfigError
from tests import pki


def _cfg(tmp_path: Path, tls: config.Tls) -> config.Config:
    return msgspec.structs.replace(config.load(None), config_dir=str(tmp_path),
                                   nats=config.Nats(tls=tls))


def test_without_a_certificate_the_embedded_server_cannot_serve_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nats\.tls\.cert and nats\.tls\.key"):
        server_tls(_cfg(tmp_path, config.Tls(ca="ca.pem")))


def test_nats_tls_makes_the_embedded_server_demand_tls_and_client_certificates(tmp_path: Path) -> None:
    certs = pki.make(tmp_path / "pki")
    tls = server_tls(_cfg(tmp_path, config.Tls(ca="pki/ca.pem", cert="pki/grace.pem",
                                               key="pki/grace-key.pem")))
    assert tls is not None and tls.ca == certs.ca.resolve()
    server = EmbeddedServer(tmp_path / "data", tls=tls)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", int(server.port or 0)), timeout=5) as s:
            line = s.makefile("rb").readline()
    finally:
        server.stop()
    info = json.loads(line.removeprefix(b"INFO "))
    assert info["tls_required"] is True and info["tls_verify"] is True
