"""What Grace may touch: the protected files of the config, resolved and confined.

Globs come from `protect.models` / `protect.configs`, relative to the config
file's folder. A path is allowed only if, after resolving symlinks and `..`,
it lies inside that folder and matches one of the globs.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from grace.config import Config
from grace.errors import ConfinementError

Kind = Literal["model", "config"]


def root(cfg: Config) -> Path:
    return Path(cfg.config_dir or ".").resolve()


def protected_files(cfg: Config) -> list[tuple[Path, Kind]]:
    """Every existing file matching the protect globs, resolved, sorted, confined."""
    base = root(cfg)
    out: dict[Path, Kind] = {}
    inside = str(base).rstrip("/") + "/"  # confined: strictly below the config folder
    parents: dict[Path, Path] = {}  # resolving each folder once: a full resolve per file dominated
    for kind, globs in (("model", cfg.protect.models), ("config", cfg.protect.configs)):
        for pattern in globs:
            for p in base.glob(pattern):  # unsorted: the result is sorted once, below
                if p.is_symlink():
                    rp = p.resolve()
                else:  # not a link itself: its real path is its folder's real path and its name
                    if p.parent not in parents:
                        parents[p.parent] = p.parent.resolve()
                    rp = parents[p.parent] / p.name
                if rp not in out and str(rp).startswith(inside) and rp.is_file():
                    out[rp] = kind  # type: ignore[assignment]
    return sorted(out.items())


def kind_of(cfg: Config, path: Path) -> Kind | None:
    """'model' or 'config' if `path` (resolved) matches a protect glob, else None."""
    base = root(cfg)
    try:
        rel = path.relative_to(base)
    except ValueError:
        return None
    parts = rel.parts
    for kind, globs in (("model", cfg.protect.models), ("config", cfg.protect.configs)):
        if any(glob_match(parts, tuple(g.split("/"))) for g in globs):
            return kind  # type: ignore[return-value]
    return None


def glob_match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Path-segment glob match: `*` stays within a segment, `**` spans segments."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(glob_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pattern[0]) and glob_match(parts[1:], pattern[1:])


def confine(cfg: Config, value: str) -> tuple[Path, Kind]:
    """Resolve a path named by a command; refuse anything outside the protect globs."""
    base = root(cfg)
    raw = Path(value)
    candidate = raw if raw.is_absolute() else base / raw
    resolved = candidate.resolve()
    if not resolved.is_relative_to(base):
        raise ConfinementError(f"path {value!r} resolves to {resolved}, outside {base}: refused")
    kind = kind_of(cfg, resolved)
    # the unresolved name must match too: a protected-looking symlink to another file is refused
    if kind is None or (candidate != resolved and kind_of(cfg, candidate.absolute()) is None):
        raise ConfinementError(
            f"path {value!r} ({resolved}) matches none of protect.models/protect.configs: refused. "
            "Add a glob for it to the config if Grace should manage it.")
    linked = candidate.is_symlink() or any(p.is_symlink() for p in candidate.parents
                                           if p.is_relative_to(base))
    if linked and resolved != candidate.absolute():
        raise ConfinementError(f"path {value!r} goes through a symlink to {resolved}: refused")
    return resolved, kind


def relative(cfg: Config, path: Path) -> str:
    """The path as the config and the events name it (relative to the config folder)."""
    try:
        return path.resolve().relative_to(root(cfg)).as_posix()
    except ValueError:
        return str(path)
