"""File integrity without loading: sha256 in chunks, and structure checks.

A model file is never unpickled or imported here: pickles are walked opcode by
opcode with pickletools, zip-based files (.pt) have their directory and CRCs
checked. Producers use this to detect corruption; actuators use it to refuse a
corrupt file as a snapshot source.
"""

from __future__ import annotations

import hashlib
import json
import pickletools
import zipfile
from pathlib import Path

import yaml

CHUNK = 1024 * 1024
PICKLE_EXT = {".pkl", ".pickle"}
ZIP_EXT = {".pt", ".pth", ".zip", ".ckpt"}


def sha256_file(path: Path | str) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check_pickle(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            last = None
            for op, _arg, _pos in pickletools.genops(f):
                last = op.name
            if last != "STOP":
                return "pickle stream does not end with STOP"
            if f.read(1):
                return "trailing bytes after the pickle's STOP opcode"
    except Exception as exc:  # noqa: BLE001 - any parse failure means corrupt
        return f"not a valid pickle stream: {exc}"
    return None


def _check_zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                return f"zip member {bad!r} fails its CRC check"
            if not z.namelist():
                return "zip archive is empty"
    except zipfile.BadZipFile:
        # legacy torch.save files are plain pickles
        return _check_pickle(path) and "neither a valid zip archive nor a pickle stream"
    except Exception as exc:  # noqa: BLE001
        return f"unreadable zip archive: {exc}"
    return None


def check_structure(path: Path | str) -> str | None:
    """None when the file's structure is sound for its type, else the reason."""
    p = Path(path)
    ext = p.suffix.lower()
    try:
        if p.stat().st_size == 0:
            return "file is empty"
        if ext in PICKLE_EXT:
            return _check_pickle(p)
        if ext in ZIP_EXT:
            return _check_zip(p)
        if ext == ".json":
            json.loads(p.read_bytes())
        elif ext in (".yaml", ".yml"):
            yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "file is missing"
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        return f"does not parse as {ext[1:]}: {str(exc).splitlines()[0]}"
    except OSError as exc:
        return f"cannot read: {exc}"
    return None
