"""A full verify of a large file in steps: sha256, then the structure walk.

The work is a generator that yields the bytes it read after each piece, so the
caller can stop after a budget and resume on its next run: the hashlib state,
the open file and the pickle/zip walk's position live in the generator. The
messages match grace.integrity's, which checks small files in one go.
"""

from __future__ import annotations

import hashlib
import os
import pickletools
import zipfile
from collections.abc import Generator
from pathlib import Path

from grace import integrity

PIECE = 1024 * 1024  # bytes read between two yields
SAMPLES = 16  # blocks read by `sample`
SAMPLE_BLOCK = 64 * 1024

# yields bytes read; returns (sha256, structure reason, bytes read but not yielded)
Steps = Generator[int, None, tuple[str, str | None, int]]


def sample(path: Path, size: int) -> str:
    """sha256 of the size and 16 blocks spread over the file (1 MiB read): a cheap fingerprint."""
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        span = max(0, size - SAMPLE_BLOCK)
        for i in range(SAMPLES):
            f.seek(span * i // (SAMPLES - 1))
            h.update(f.read(SAMPLE_BLOCK))
    return h.hexdigest()


def steps(path: Path, structure: bool) -> Steps:
    """Hash `path`, then (if `structure`) walk it; yields bytes read, returns (sha256, reason,
    bytes not yielded). The piece that reaches the end is not yielded, so a file of exactly
    N budgets is done in N runs rather than N + 1."""
    h = hashlib.sha256()
    last = 0
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while chunk := f.read(PIECE):
            h.update(chunk)
            if f.tell() >= size:
                last = len(chunk)
                break
            yield len(chunk)
        while chunk := f.read(PIECE):  # grown since the fstat: the stamp check restarts it anyway
            h.update(chunk)
            yield len(chunk)
    reason = (yield from _structure(path)) if structure else None
    return h.hexdigest(), reason, last


def _structure(path: Path) -> Generator[int, None, str | None]:
    ext = path.suffix.lower()
    if ext in integrity.PICKLE_EXT:
        return (yield from _pickle(path))
    if ext in integrity.ZIP_EXT:
        return (yield from _zip(path))
    if ext in (".json", ".yaml", ".yml"):  # parsed whole anyway: one step
        yield path.stat().st_size
        return integrity.check_structure(path)
    return None  # a format Grace does not parse (e.g. .safetensors): hashed only


def _pickle(path: Path) -> Generator[int, None, str | None]:
    try:
        with open(path, "rb") as f:
            last, done = None, 0
            for op, _arg, _pos in pickletools.genops(f):
                last = op.name
                if f.tell() - done >= PIECE:
                    yield f.tell() - done
                    done = f.tell()
            if last != "STOP":
                return "pickle stream does not end with STOP"
            if f.read(1):
                return "trailing bytes after the pickle's STOP opcode"
    except Exception as exc:  # noqa: BLE001 - any parse failure means corrupt
        return f"not a valid pickle stream: {exc}"
    return None


def _zip(path: Path) -> Generator[int, None, str | None]:
    try:
        with zipfile.ZipFile(path) as z:
            if not z.namelist():
                return "zip archive is empty"
            for info in z.infolist():
                try:
                    with z.open(info) as member:
                        while data := member.read(PIECE):
                            yield len(data)
                except zipfile.BadZipFile:  # raised by the read that reaches a bad CRC
                    return f"zip member {info.filename!r} fails its CRC check"
    except zipfile.BadZipFile:
        # legacy torch.save files are plain pickles
        bad = yield from _pickle(path)
        return bad and "neither a valid zip archive nor a pickle stream"
    except Exception as exc:  # noqa: BLE001
        return f"unreadable zip archive: {exc}"
    return None
