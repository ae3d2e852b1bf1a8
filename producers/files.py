"""Hashing protected files cheaply: rehash only when size/mtime/inode changed.

Every `full_verify_every` runs (or on request) everything is rehashed anyway,
because a same-size rewrite within one mtime tick would otherwise hide.
Hashing happens off the event loop (the caller uses asyncio.to_thread).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from grace import integrity, manifest
from grace.config import Config
from producers.base import CheckError


@dataclass(frozen=True)
class Stamp:
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int


@dataclass(frozen=True)
class Verdict:
    sha256: str | None  # None: missing or unreadable
    structure: str | None  # None: sound; else the reason
    error: str | None = None  # why it could not be read


def stamp(path: Path) -> Stamp:
    st = os.stat(path)
    return Stamp(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class HashCache:
    """(stamp -> verdict) per path; `structure` also runs the no-load structure check."""

    def __init__(self, structure: bool) -> None:
        self.structure = structure
        self._cache: dict[Path, tuple[Stamp, Verdict]] = {}
        self.rehashed = 0

    def verdict(self, path: Path, force: bool = False) -> Verdict:
        try:
            st = stamp(path)
        except FileNotFoundError:
            self._cache.pop(path, None)
            return Verdict(None, "file is missing")
        except OSError as exc:
            return Verdict(None, None, f"cannot stat {path}: {exc.strerror or exc}")
        cached = self._cache.get(path)
        if cached and cached[0] == st and not force:
            return cached[1]
        try:
            sha = integrity.sha256_file(path)
        except FileNotFoundError:
            return Verdict(None, "file is missing")
        except OSError as exc:
            return Verdict(None, None, f"cannot read {path}: {exc.strerror or exc}")
        reason = integrity.check_structure(path) if self.structure else None
        v = Verdict(sha, reason)
        self.rehashed += 1
        self._cache[path] = (st, v)
        return v


def read_manifest(cfg: Config) -> manifest.Manifest:
    """The snapshot manifest (the accepted baselines); CheckError when it is unreadable."""
    try:
        return manifest.load(cfg)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CheckError(f"snapshot manifest {manifest.manifest_path(cfg)} is unreadable: "
                         f"{exc}; restore it or retake snapshots (grace snapshot take)") from None
