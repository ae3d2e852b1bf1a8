"""The operator token: written 0600, kept across starts, compared as a bearer header."""

from __future__ import annotations

import stat
from pathlib import Path

from grace import auth, tokens


def test_ensure_creates_once_and_keeps_it(tmp_path: Path) -> None:
    path, created = tokens.ensure_token(tmp_path)
    assert created and path == tmp_path / "auth" / "operator.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = tokens.read_token(tmp_path)
    assert first and len(first) >= 32
    again, created = tokens.ensure_token(tmp_path)
    assert (again, created) == (path, False)
    assert tokens.read_token(tmp_path) == first


def test_auth_init_writes_a_new_token(tmp_path: Path) -> None:
    tokens.ensure_token(tmp_path)
    before = tokens.read_token(tmp_path)
    auth.init(tmp_path)
    after = tokens.read_token(tmp_path)
    assert after and after != before


def test_bearer_header_must_carry_the_token(tmp_path: Path) -> None:
    assert tokens.read_token(tmp_path) is None
    tokens.ensure_token(tmp_path)
    token = tokens.read_token(tmp_path)
    assert tokens.bearer_ok(f"Bearer {token}", token)
    assert not tokens.bearer_ok(f"Bearer {token}x", token)
    assert not tokens.bearer_ok(str(token), token)
    assert not tokens.bearer_ok(None, token)
    assert not tokens.bearer_ok(f"Bearer {token}", None)
