"""Hashing protected files cheaply: rehash only when size/mtime/inode changed.

Every `full_verify_every` runs (or on request) everything is rehashed anyway,
because a same-size rewrite within one mtime tick would otherwise hide.
Hashing happens off the event loop (the caller uses asyncio.to_thread).

A file larger than VERIFY_CHUNK is verified in pieces: each run reads at most
VERIFY_CHUNK bytes of it (producers.fullverify keeps the hash state between
runs), so a 2 GiB model never holds a run past `monitor.timeout`. A verify is
tied to the file's stamp when it started: a change restarts it, so content
read before and after a write is never mixed into one "ok".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from grace import integrity, manifest
from grace.config import Config
from producers import fullverify
from producers.base import CheckError

# bytes of one large file read per run: ~0.1-0.4 s of sha256 on an idle core, ~1 s at load 8;
# a 2 GiB model is verified over 16 runs
VERIFY_CHUNK = 128 * 1024**2


@dataclass(frozen=True)
class Stamp:
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int


@dataclass(frozen=True)
class Verdict:
    sha256: str | None  # None: missing, unreadable, or not known yet (pending)
    structure: str | None  # None: sound; else the reason
    error: str | None = None  # why it could not be read
    pending: bool = False  # a full verify is under way; sha256/structure are the last complete one's
    sample: str | None = None  # large files: fullverify.sample of the content this verdict is about


@dataclass
class _Job:
    """A full verify in progress: the stamp it started from, its steps, its content's sample."""

    stamp: Stamp
    steps: fullverify.Steps
    sample: str


def stamp(path: Path) -> Stamp:
    st = os.stat(path)
    return Stamp(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class HashCache:
    """(stamp -> verdict) per path; `structure` also runs the no-load structure check,
    `chunked` verifies files larger than VERIFY_CHUNK in pieces across runs."""

    def __init__(self, structure: bool, chunked: bool = False) -> None:
        self.structure = structure
        self.chunked = chunked
        self._cache: dict[Path, tuple[Stamp, Verdict]] = {}
        self._jobs: dict[Path, _Job] = {}
        self.rehashed = 0  # full hashes completed
        self.restarted = 0  # chunked verifies begun again because the file changed under them
        self.read = 0  # bytes read by chunked verifies

    @property
    def verifying(self) -> int:
        """Files whose chunked full verify is under way."""
        return len(self._jobs)

    def verdict(self, path: Path, force: bool = False) -> Verdict:
        """The file's verdict; `force` starts a full verify (a large file's one goes on in pieces)."""
        try:
            st = stamp(path)
        except FileNotFoundError:
            self._cache.pop(path, None)
            self._drop(path)
            return Verdict(None, "file is missing")
        except OSError as exc:
            return Verdict(None, None, f"cannot stat {path}: {exc.strerror or exc}")
        cached = self._cache.get(path)
        job = self._jobs.get(path)
        if job is not None and job.stamp != st:
            self._drop(path)  # changed under the verify: what was read is stale
            self.restarted += 1
            job = None
            force = True
        if job is None:
            if cached and cached[0] == st and not force:
                return cached[1]
            if self.chunked and st.size > VERIFY_CHUNK:
                return self._start(path, st, cached)
            return self._whole(path, st)
        return self._advance(path, job, cached)

    def _whole(self, path: Path, st: Stamp) -> Verdict:
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

    def _start(self, path: Path, st: Stamp, cached: tuple[Stamp, Verdict] | None) -> Verdict:
        try:
            job = _Job(st, fullverify.steps(path, self.structure), fullverify.sample(path, st.size))
        except FileNotFoundError:
            return Verdict(None, "file is missing")
        except OSError as exc:
            return Verdict(None, None, f"cannot read {path}: {exc.strerror or exc}")
        self._jobs[path] = job
        return self._advance(path, job, cached)

    def _advance(self, path: Path, job: _Job, cached: tuple[Stamp, Verdict] | None) -> Verdict:
        """Read up to VERIFY_CHUNK more bytes; the final verdict once the walk is complete."""
        budget = VERIFY_CHUNK
        try:
            while budget > 0:
                n = next(job.steps)
                budget -= n
                self.read += n
        except StopIteration as stop:
            result: tuple[str, str | None, int] = stop.value
            sha, reason, tail = result
            self.read += tail
            self._jobs.pop(path, None)
            return self._finish(path, job, (sha, reason))
        except OSError as exc:
            self._drop(path)
            return Verdict(None, None, f"cannot read {path}: {exc.strerror or exc}")
        if cached and cached[0] == job.stamp:  # a routine re-verify of unchanged content
            return Verdict(cached[1].sha256, cached[1].structure, pending=True, sample=job.sample)
        return Verdict(None, None, pending=True, sample=job.sample)

    def _finish(self, path: Path, job: _Job, result: tuple[str, str | None]) -> Verdict:
        try:
            now = stamp(path)
        except OSError:
            now = None
        if now != job.stamp:  # written while the last piece was read: start over next run
            self.restarted += 1
            self._cache.pop(path, None)
            return Verdict(None, None, pending=True, sample=job.sample)
        v = Verdict(result[0], result[1], sample=job.sample)
        self.rehashed += 1
        self._cache[path] = (job.stamp, v)
        return v

    def _drop(self, path: Path) -> None:
        job = self._jobs.pop(path, None)
        if job is not None:
            job.steps.close()  # closes the file it holds open


def read_manifest(cfg: Config) -> manifest.Manifest:
    """The snapshot manifest (the accepted baselines); CheckError when it is unreadable."""
    try:
        return manifest.load(cfg)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CheckError(f"snapshot manifest {manifest.manifest_path(cfg)} is unreadable: "
                         f"{exc}; restore it or retake snapshots (grace snapshot take)") from None
