"""The operator token: what the console's actions and the HTTP intake ask for.

One secret per data dir, `<data_dir>/auth/operator.token` (mode 0600). `grace auth init`
writes it; `grace up` creates it on its first start when it is missing, so the person who
started Grace can use the console at once. A request carries it as
`Authorization: Bearer <token>`; without it the console is read-only.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from grace.errors import ConfigError

TOKEN_FILE = "operator.token"  # noqa: S105 - a file name, not a secret


def token_path(data_dir: Path) -> Path:
    return data_dir / "auth" / TOKEN_FILE


def write_token(data_dir: Path) -> Path:
    """Write a new token (0600), replacing any; return its path."""
    path = token_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return path


def ensure_token(data_dir: Path) -> tuple[Path, bool]:
    """The token's path, and whether it was created now (it was missing)."""
    path = token_path(data_dir)
    if path.exists():
        return path, False
    return write_token(data_dir), True


def read_token(data_dir: Path) -> str | None:
    """The token, or None when there is none (then every action is refused)."""
    path = token_path(data_dir)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the operator token {path}: {exc.strerror}; check its "
                          "owner and mode (0600), or run `grace auth init --force`") from None
    return text or None


def bearer_ok(header: str | None, expected: str | None) -> bool:
    """Whether an `Authorization` header carries the expected token (constant-time compare)."""
    if not expected or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), expected.encode())
