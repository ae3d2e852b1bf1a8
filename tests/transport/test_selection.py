"""Which transport a process uses: `nats.fast_path` in the config, GRACE_FAST_PATH=0 over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace import bus as bus_mod
from grace import config as config_mod
from grace.transport import fast_path_enabled


def test_the_fast_path_is_the_default_and_the_config_can_turn_it_off(tmp_path: Path) -> None:
    on = tmp_path / "on.yaml"
    on.write_text("host: h\n")
    off = tmp_path / "off.yaml"
    off.write_text("host: h\nnats: {fast_path: false}\n")
    assert config_mod.load(str(on)).nats.fast_path is True
    assert config_mod.load(str(off)).nats.fast_path is False


@pytest.mark.parametrize(("env", "configured", "expected"), [
    (None, True, True), (None, False, False), ("0", True, False), ("false", True, False),
    ("1", True, True), ("1", False, False)])
def test_grace_fast_path_0_overrides_the_config(monkeypatch: pytest.MonkeyPatch, env: str | None,
                                                configured: bool, expected: bool) -> None:
    if env is None:
        monkeypatch.delenv("GRACE_FAST_PATH", raising=False)
    else:
        monkeypatch.setenv("GRACE_FAST_PATH", env)
    assert fast_path_enabled(configured) is expected


@pytest.mark.parametrize("fast", [True, False])
async def test_connect_builds_the_chosen_implementation(nats_url: str, fast: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRACE_FAST_PATH", raising=False)
    b = await bus_mod.connect(nats_url, host="h", source="grace/h/test", fast_path=fast)
    try:
        assert b.transport.fast is fast
        assert type(b.transport).__module__ == ("grace.transport.fast" if fast
                                                 else "grace.transport.public")
    finally:
        await b.close()
