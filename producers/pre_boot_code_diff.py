"""pre_boot_code_diff: the code tree's hash against the last good one; changed .py compiled.

The tree hash covers every file under `code.root` (relative path + sha256;
caches, VCS and hidden folders skipped). Each changed .py is compiled with
compile() (never imported); a syntax error -> syntax_error with file, line and
message. A change -> code_changed. A tree that compiles cleanly becomes the new
last good one (persisted), so code_changed is reported once per change and
cleared on the next run; while a syntax error remains both stay active.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import ClassVar

from grace import events
from producers.base import CheckError, CheckResult, Env

SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", "node_modules", ".mypy_cache",
             ".pytest_cache", ".tox"}
STATE = "pre_boot_code_diff"


class PreBootCodeDiff:
    NAME: ClassVar[str] = "pre_boot_code_diff"
    WATCHES_FILES: ClassVar[bool] = True

    def __init__(self, env: Env) -> None:
        self.env = env
        self._hashes: dict[str, tuple[tuple[int, int, int], str]] = {}  # rel -> (stamp, sha)

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        return await asyncio.to_thread(self._check)

    def _tree(self, root: Path) -> dict[str, str]:
        out: dict[str, str] = {}
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            for name in files:
                if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                    continue
                p = Path(folder, name)
                rel = p.relative_to(root).as_posix()
                try:
                    st = p.stat()
                    key = (st.st_size, st.st_mtime_ns, st.st_ino)
                    cached = self._hashes.get(rel)
                    if cached is None or cached[0] != key:
                        cached = (key, hashlib.sha256(p.read_bytes()).hexdigest())
                        self._hashes[rel] = cached
                except FileNotFoundError:
                    continue  # deleted while walking
                except OSError as exc:
                    raise CheckError(f"cannot read {p}: {exc.strerror or exc}; fix its "
                                     "permissions or exclude it from code.root") from None
                out[rel] = cached[1]
        return out

    def _check(self) -> CheckResult:
        cfg = self.env.cfg
        if not cfg.code.root:
            return CheckResult(skipped="no code.root configured")
        root = cfg.path(cfg.code.root)
        if not root.is_dir():
            raise CheckError(f"code.root {root} is not a folder; fix code.root in the config")
        files = self._tree(root)
        tree = hashlib.sha256("\n".join(f"{r}\0{h}" for r, h in sorted(files.items())).encode()
                              ).hexdigest()
        state = self.env.state.load(STATE)
        good: dict[str, str] = state.get("files", {})
        previous = state.get("tree_hash")
        if previous is None:
            changed = sorted(files)  # first run: check everything, report no change
        else:
            changed = sorted(r for r in set(files) | set(good) if files.get(r) != good.get(r))
        res = CheckResult(stats={"files": float(len(files)),
                                 "changed": float(len(changed) if previous else 0)})
        for rel in changed:
            if rel.endswith(".py") and rel in files:
                err = _compile(root / rel)
                if err is not None:
                    res.findings.append(events.SyntaxErrorFound(
                        path=rel, line=err[0], column=err[1], message=err[2], severity="critical",
                        trigger=self.NAME))
        if previous is not None and tree != previous:
            res.findings.append(events.CodeChanged(root=cfg.code.root, previous_hash=previous,
                                                   current_hash=tree, changed=changed[:200],
                                                   trigger=self.NAME))
        if not any(isinstance(f, events.SyntaxErrorFound) for f in res.findings) and tree != previous:
            self.env.state.save(STATE, {"tree_hash": tree, "files": files})
        return res


def _compile(path: Path) -> tuple[int | None, int | None, str] | None:
    """None when the file compiles, else (line, column, message)."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        return None, None, f"cannot read: {exc.strerror or exc}"
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc.lineno, exc.offset, exc.msg
    except ValueError as exc:  # null bytes
        return None, None, str(exc)
    return None
