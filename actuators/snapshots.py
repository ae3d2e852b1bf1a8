"""Snapshot hygiene: copies of the protected files that passed integrity, the
baseline manifest, pruning, accept and restore.

A file is snapshotted only if its structure is sound and, once it has an
accepted baseline, only while its hash still equals that baseline: a corrupt or
drifted file never becomes a restore source. An intended change is blessed with
`accept`. Pruning (by age, then by count) never removes a file's last good copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from grace import events, integrity, manifest, protect
from grace.config import Config
from grace.errors import ActionError
from grace.manifest import Copy, Entry, Manifest
from grace.protect import Kind

Clock = Callable[[], datetime]


@contextlib.contextmanager
def locked(cfg: Config) -> Iterator[Manifest]:
    """The manifest under an exclusive file lock (the CLI and the actuator both write it)."""
    d = manifest.snapshot_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield manifest.load(cfg)


def policy(cfg: Config) -> events.SnapshotPolicy:
    s = cfg.snapshots
    return events.SnapshotPolicy(dir=str(manifest.snapshot_dir(cfg)), every_s=float(s.every),
                                 max_age_s=float(s.max_age), keep=s.keep)


def copy_verified(src: Path, dst: Path, expect_sha256: str | None = None) -> tuple[str, int, str | None]:
    """Copy src to a temp file beside dst, fsync, verify, rename over dst.

    Verified means: the copy's sha256 equals `expect_sha256` when given (a baseline
    whose structure was checked when it was accepted), else its structure is sound.
    Returns (sha256, size, reason); with a reason nothing was renamed.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".grace-tmp-", suffix=dst.suffix)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            while chunk := f.read(integrity.CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha, size = integrity.sha256_file(tmp), os.path.getsize(tmp)
        if expect_sha256 is None:
            reason = integrity.check_structure(tmp)
        elif sha != expect_sha256:
            reason = f"copy has sha256 {sha[:12]}…, expected {expect_sha256[:12]}…"
        else:
            reason = None
        if reason is None:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, os.stat(dst).st_mode & 0o7777)
            os.replace(tmp, dst)
            _fsync_dir(dst.parent)
        return sha, size, reason
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refused(rel: str, kind: Kind, reason: str) -> events.SnapshotRefused:
    return events.SnapshotRefused(path=rel, kind=kind, reason=reason)


def _take_one(cfg: Config, m: Manifest, path: Path, kind: Kind, now: datetime) -> events.Payload:
    rel = protect.relative(cfg, path)
    entry = m.files.get(rel)
    latest = manifest.latest_name(m, rel, kind)
    stamped = manifest.stamped_name(latest, now.strftime("%Y%m%d_%H%M%S"))
    base = manifest.snapshot_dir(cfg)
    if not path.is_file():
        return _refused(rel, kind, "file is missing")
    # copy first, then judge the copy: the file may change while we read it
    staging = base / Path(stamped).parent / f".incoming-{Path(stamped).name}"
    try:
        sha, size, reason = copy_verified(path, staging)
        if reason is not None:
            return _refused(rel, kind, f"integrity check failed: {reason}")
        if entry is not None and sha != entry.sha256:
            return _refused(rel, kind, f"sha256 {sha[:12]}… differs from the accepted baseline "
                                       f"{entry.sha256[:12]}…; if the change is intended, run "
                                       f"`grace snapshot accept {rel}`")
        os.replace(staging, base / stamped)
    finally:
        staging.unlink(missing_ok=True)
    copy_verified(base / stamped, base / latest, sha)
    copy = Copy(file=stamped, sha256=sha, size=size, taken_at=now.isoformat())
    if entry is None:
        entry = m.files[rel] = Entry(path=rel, kind=kind, sha256=sha, size=size, latest=latest,
                                     accepted_at=now.isoformat())
    entry.latest = latest
    entry.copies = [c for c in entry.copies if c.file != stamped] + [copy]
    return events.SnapshotTaken(path=rel, snapshot=stamped, kind=kind, sha256=sha, size=size)


def targets(cfg: Config, paths: list[str] | None) -> list[tuple[Path, Kind]]:
    """The protected files named (confined; raises ConfinementError), or all of them."""
    if not paths:
        return protect.protected_files(cfg)
    return [protect.confine(cfg, p) for p in paths]


def take(cfg: Config, paths: list[str] | None = None, now: Clock = events.now
         ) -> list[events.Payload]:
    """Snapshot the protected files that pass integrity; SnapshotTaken/Refused events."""
    chosen = targets(cfg, paths)
    t = now()
    with locked(cfg) as m:
        out = [_take_one(cfg, m, p, kind, t) for p, kind in chosen]
        manifest.save(cfg, m)
    return out


def accept(cfg: Config, path: str, now: Clock = events.now) -> list[events.Payload]:
    """Bless a file's current content as its new baseline, and snapshot it."""
    resolved, kind = protect.confine(cfg, path)
    reason = integrity.check_structure(resolved)
    if reason is not None:
        raise ActionError(f"refusing to accept {path}: {reason}; fix or restore the file first")
    sha, size = integrity.sha256_file(resolved), resolved.stat().st_size
    rel = protect.relative(cfg, resolved)
    t = now()
    with locked(cfg) as m:
        entry = m.files.get(rel)
        previous = entry.sha256 if entry else None
        if entry is None:
            entry = m.files[rel] = Entry(path=rel, kind=kind, sha256=sha, size=size,
                                         latest=manifest.latest_name(m, rel, kind))
        entry.sha256, entry.size, entry.accepted_at = sha, size, t.isoformat()
        taken = _take_one(cfg, m, resolved, kind, t)
        manifest.save(cfg, m)
    accepted = events.SnapshotAccepted(path=rel, kind=kind, sha256=sha, previous_sha256=previous)
    return [accepted, taken]


def prune(cfg: Config, now: Clock = events.now) -> list[events.Payload]:
    """Drop copies older than max_age or beyond `keep` per file; never the last good copy."""
    t = now()
    base = manifest.snapshot_dir(cfg)
    out: list[events.Payload] = []
    with locked(cfg) as m:
        for entry in m.files.values():
            newest_first = sorted(entry.copies, key=lambda c: c.taken_at, reverse=True)
            good = [c for c in newest_first if c.sha256 == entry.sha256 and (base / c.file).is_file()]
            last_good = good[0] if good else None
            kept: list[Copy] = []
            for c in newest_first:
                age = (t - datetime.fromisoformat(c.taken_at)).total_seconds()
                reason = "age" if age > cfg.snapshots.max_age else (
                    "count" if len(kept) >= cfg.snapshots.keep else None)
                if c is last_good or reason is None:
                    kept.append(c)
                    continue
                (base / c.file).unlink(missing_ok=True)
                out.append(events.SnapshotPruned(path=entry.path, snapshot=c.file, kind=entry.kind,
                                                 reason=reason))  # type: ignore[arg-type]
            entry.copies = sorted(kept, key=lambda c: c.taken_at)
        manifest.save(cfg, m)
    return out


def restore(cfg: Config, path: str, kind: Kind | None = None) -> tuple[events.SnapshotRestored, bool]:
    """Put the last good copy back over `path`; (event, written). Idempotent: a file that
    already has its baseline hash is left alone (written False)."""
    resolved, found_kind = protect.confine(cfg, path)
    if kind is not None and found_kind != kind:
        raise ActionError(f"{path} is a protected {found_kind} file, not a {kind}; "
                          f"use restore_{'model_weights' if found_kind == 'model' else 'from_snapshot'}")
    rel = protect.relative(cfg, resolved)
    m = manifest.load(cfg)
    entry = m.files.get(rel)
    if entry is None:
        raise ActionError(f"no snapshot of {rel} in {manifest.manifest_path(cfg)}; take one "
                          "(`grace snapshot take`) while the file is good")
    if resolved.is_file() and integrity.sha256_file(resolved) == entry.sha256:
        return events.SnapshotRestored(path=rel, snapshot=entry.latest, kind=found_kind,
                                       sha256=entry.sha256), False
    base = manifest.snapshot_dir(cfg)
    sources = [entry.latest] + [c.file for c in sorted(entry.copies, key=lambda c: c.taken_at,
                                                       reverse=True)]
    for name in sources:
        src = base / name
        if not src.is_file() or integrity.sha256_file(src) != entry.sha256:
            continue  # a damaged copy is never a source
        sha, _, reason = copy_verified(src, resolved, entry.sha256)
        if reason is None:
            return events.SnapshotRestored(path=rel, snapshot=name, kind=found_kind, sha256=sha), True
    raise ActionError(f"no copy of {rel} in {base} matches its baseline sha256 "
                      f"{entry.sha256[:12]}…; nothing restored")
