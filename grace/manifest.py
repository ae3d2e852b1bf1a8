"""The snapshot manifest: the accepted baseline of every protected file.

Layout (DESIGN.md section 10, the seed's snapshot rules):

    <snapshots.dir>/models/<name>_YYYYmmdd_HHMMSS.<ext>   timestamped copies
    <snapshots.dir>/models/<name>.<ext>                   the latest good copy
    <snapshots.dir>/configs/...                           the same for configs
    <snapshots.dir>/manifest.json                         baseline hashes

Actuators write it (take_snapshot, accept); producers read it (config_drift,
model_integrity compare against `baseline()`). Writes are atomic (tmp + rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

import msgspec

from grace.config import Config

Kind = Literal["model", "config"]
SUBDIR: dict[str, str] = {"model": "models", "config": "configs"}


class Copy(msgspec.Struct, kw_only=True):
    file: str  # relative to the snapshot dir, e.g. models/m_20251115_073000.pkl
    sha256: str
    size: int
    taken_at: str  # RFC 3339


class Entry(msgspec.Struct, kw_only=True):
    path: str  # relative to the config folder, as events name it
    kind: Kind
    sha256: str  # the accepted baseline
    size: int
    latest: str  # relative to the snapshot dir: the last good copy
    copies: list[Copy] = []
    accepted_at: str = ""


class Manifest(msgspec.Struct, kw_only=True):
    version: int = 1
    files: dict[str, Entry] = {}

    def baseline(self, rel: str) -> str | None:
        e = self.files.get(rel)
        return e.sha256 if e else None


def snapshot_dir(cfg: Config) -> Path:
    return cfg.path(cfg.snapshots.dir)


def manifest_path(cfg: Config) -> Path:
    return snapshot_dir(cfg) / "manifest.json"


def load(cfg: Config) -> Manifest:
    """The manifest, or an empty one when no snapshot was ever taken."""
    p = manifest_path(cfg)
    try:
        return msgspec.json.decode(p.read_bytes(), type=Manifest)
    except FileNotFoundError:
        return Manifest()


def save(cfg: Config, manifest: Manifest) -> None:
    p = manifest_path(cfg)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".manifest-")
    with os.fdopen(fd, "wb") as f:
        f.write(json.dumps(msgspec.to_builtins(manifest), indent=2, sort_keys=True).encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def latest_name(manifest: Manifest, rel: str, kind: Kind) -> str:
    """`models/<basename>` for a file's latest copy, disambiguated if another file has that name."""
    existing = manifest.files.get(rel)
    if existing:
        return existing.latest
    name = f"{SUBDIR[kind]}/{Path(rel).name}"
    taken = {e.latest for r, e in manifest.files.items() if r != rel}
    if name in taken:
        stem, ext = Path(rel).stem, Path(rel).suffix
        name = f"{SUBDIR[kind]}/{rel.replace('/', '__').removesuffix(ext) or stem}{ext}"
    return name


def stamped_name(latest: str, stamp: str) -> str:
    """`models/m.pkl` + `20251115_073000` -> `models/m_20251115_073000.pkl`."""
    p = Path(latest)
    return (p.parent / f"{p.stem}_{stamp}{p.suffix}").as_posix()
