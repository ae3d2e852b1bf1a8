"""Code files named in log lines and tracebacks, kept only when they lie under code.root.

A repeated error is handed to a coding agent with the files it is about; a log
line can name any path (site-packages, /etc, another service), so only those
that resolve (symlinks and `..` included) inside the configured code root are
kept, relative to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from grace.config import Config

# `File "/srv/app/src/shop/pricing.py", line 12` (a Python traceback frame), or a bare
# `src/shop/pricing.py:12` / `/srv/app/src/shop/pricing.py` in a message
_FRAME = re.compile(r'File "([^"]+\.py)", line \d+')
_PATH = re.compile(r'(?<![\w/.\-])((?:[A-Za-z]:)?[\w.\-/\\]*[\w\-]\.py)(?!\w|\.\w)')


def named_paths(line: str) -> list[str]:
    """Every .py path a log line names, in order, without repeats."""
    found = _FRAME.findall(line) + _PATH.findall(line)
    return list(dict.fromkeys(found))


def under_code_root(cfg: Config, paths: Iterable[str]) -> list[str]:
    """The paths that lie inside code.root, relative to it (nothing without a code root)."""
    if not cfg.code.root:
        return []
    root = cfg.path(cfg.code.root).resolve()
    out: list[str] = []
    for raw in paths:
        p = Path(raw)
        # a relative path in a log is relative to the service's folder: the config's or the root
        candidates = [p] if p.is_absolute() else [root / p, cfg.path(raw)]
        for c in candidates:
            try:
                resolved = c.resolve()
            except (OSError, RuntimeError):  # a symlink loop: not a file of ours
                continue
            if resolved.is_relative_to(root) and (p.is_absolute() or resolved.exists()):
                rel = str(resolved.relative_to(root))
                if rel not in out:
                    out.append(rel)
                break
    return out
