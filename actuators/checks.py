"""Targeted code checks for the coding-agent hand-off and review_code.

Each check runs as an argument list with a timeout, never a shell. Files must
lie inside the code root or be named by a kernel's `code:` in the config
(resolved); anything else is refused. An outcome says only what was checked:
no compile, lint or test check run -> `unverified`, never `passed`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from grace.config import Config
from grace.errors import ConfinementError

# checks that verify code; an agent command's exit code is its own claim, not a check of the code
VERIFYING = frozenset({"py_compile", "pyflakes", "pytest"})


def code_root(cfg: Config) -> Path:
    return cfg.path(cfg.code.root or ".").resolve()


def kernel_code(cfg: Config, name: str | None) -> list[str]:
    """The files a kernel's `code:` names, folders expanded to their .py files (config-relative)."""
    k = cfg.kernel(name) if name else None
    if k is None:
        return []
    base = Path(cfg.config_dir or ".").resolve()
    out: list[str] = []
    for entry in k.code:
        p = cfg.path(entry).resolve()
        found = sorted(f for f in p.rglob("*.py") if "__pycache__" not in f.parts) if p.is_dir() else [p]
        for f in found:
            rel = str(f.relative_to(base)) if f.is_relative_to(base) else str(f)
            if rel not in out:
                out.append(rel)
    return out


def _allowed(cfg: Config) -> list[Path]:
    """Where checked files may lie: the code root and what the kernels' `code:` names."""
    return [code_root(cfg), *(cfg.path(c).resolve() for k in cfg.kernels for c in k.code)]


def confine_code(cfg: Config, files: list[str]) -> list[Path]:
    """Resolve files named by a command against the code root; refuse escapes."""
    root = code_root(cfg)
    allowed = _allowed(cfg)
    out = []
    for f in files:
        p = Path(f)
        # producers name files relative to the config folder or to the code root: try both
        candidates = [p] if p.is_absolute() else [root / p, cfg.path(f)]
        resolved = next((c.resolve() for c in candidates if c.exists()), candidates[0].resolve())
        if not any(resolved.is_relative_to(a) for a in allowed):
            raise ConfinementError(f"file {f!r} resolves to {resolved}, outside the code root "
                                   f"{root}: refused")
        out.append(resolved)
    return out


def partition_code(cfg: Config, files: list[str]) -> tuple[list[Path], list[str]]:
    """(files inside the code root, names of those outside it: never checked or run)."""
    inside, outside = [], []
    for f in files:
        try:
            inside += confine_code(cfg, [f])
        except ConfinementError:
            outside.append(f)
    return inside, outside


async def run_argv(argv: list[str], cwd: Path, timeout: float) -> dict[str, Any]:
    """Run one command; its exit code and the tail of its output."""
    proc = await asyncio.create_subprocess_exec(*argv, cwd=str(cwd), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"argv": argv, "ok": False, "code": None, "output": f"timed out after {timeout:.0f}s"}
    text = out.decode(errors="replace")
    return {"argv": argv, "ok": proc.returncode == 0, "code": proc.returncode, "output": text[-4000:]}


def compile_check(path: Path) -> dict[str, Any]:
    """py_compile without writing a .pyc: compile the source."""
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as exc:
        return {"check": "py_compile", "file": str(path), "ok": False,
                "output": f"{exc.msg} (line {exc.lineno})"}
    except OSError as exc:
        return {"check": "py_compile", "file": str(path), "ok": False, "output": str(exc)}
    return {"check": "py_compile", "file": str(path), "ok": True, "output": ""}


async def static_checks(cfg: Config, files: list[Path], timeout: float) -> list[dict[str, Any]]:
    """py_compile each .py file, then pyflakes (a dependency of Grace) over them all."""
    py = [f for f in files if f.suffix == ".py"]
    checks = [compile_check(f) for f in py]
    if py and importlib.util.find_spec("pyflakes") is None:
        checks.append({"check": "pyflakes", "ok": False, "code": None,
                       "output": f"pyflakes is not installed in {sys.executable}: "
                                 "reinstall Grace (pip install -e .) to lint the files"})
    elif py:
        r = await run_argv([sys.executable, "-m", "pyflakes", *map(str, py)], code_root(cfg), timeout)
        checks.append({"check": "pyflakes", **r})
    return checks


def outcome(found: list[dict[str, Any]]) -> str:
    """failed if any check failed; passed only if some check verified the code; else unverified."""
    if any(not c["ok"] for c in found):
        return "failed"
    return "passed" if any(c["check"] in VERIFYING for c in found) else "unverified"


def tests_naming(cfg: Config, files: list[Path]) -> list[Path]:
    """Test files under code.tests that name one of the implicated modules."""
    if not cfg.code.tests:
        return []
    tests_dir = cfg.path(cfg.code.tests)
    if not tests_dir.is_dir():
        return []
    modules = {f.stem for f in files if f.suffix == ".py" and not f.stem.startswith("test_")
               and f.stem != "__init__"}
    found = []
    for t in sorted(tests_dir.rglob("test_*.py")):
        text = t.read_text(errors="replace")
        if any(re.search(rf"\b{re.escape(m)}\b", text) for m in modules):  # `api` is not `rapid`
            found.append(t)
    return found


async def targeted_tests(cfg: Config, files: list[Path], timeout: float) -> list[dict[str, Any]]:
    tests = tests_naming(cfg, files)
    if not tests:
        return []
    if importlib.util.find_spec("pytest") is None:
        return [{"check": "pytest", "ok": False, "code": None,
                 "output": f"pytest is not installed in {sys.executable}; {len(tests)} test files name "
                           "the files: pip install pytest to run them"}]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, tests)]
    return [{"check": "pytest", **await run_argv(argv, code_root(cfg), timeout)}]
