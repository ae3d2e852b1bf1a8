"""Rotation-safe log tailing from a persisted offset, and error-line templates.

A file is identified by its inode: a new inode means it was rotated (the rest
of the old file is read first through the still-open handle, then the new file
from 0); a size below the offset means it was truncated (read from 0).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_READ = 4 * 1024 * 1024  # per file per run: bounded work, the rest is read next run

ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL|FATAL|Exception|Traceback)\b|\w+Error\b")
_MASKS = [
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
     "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b[0-9a-fA-F]{12,}\b"), "<hex>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:/[\w.\-]+){2,}/?"), "<path>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]


def template(line: str) -> str:
    """The line with its variable parts masked: uuids, hex, paths, numbers."""
    out = line.strip()
    for pattern, repl in _MASKS:
        out = pattern.sub(repl, out)
    return out[:300]


def is_error(line: str) -> bool:
    return ERROR_LINE.search(line) is not None


@dataclass
class Position:
    inode: int = 0
    offset: int = 0

    @classmethod
    def at_end(cls, path: Path) -> Position:
        """After the last complete line of `path` (a half-written line is read once it ends);
        Position() when the file does not exist yet, so all of it is new when it appears."""
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                start = max(0, st.st_size - 65536)
                fh.seek(start)
                end = fh.read(st.st_size - start).rfind(b"\n")
        except FileNotFoundError:
            return cls()
        return cls(st.st_ino, start + end + 1 if end >= 0 else start)


class Tail:
    """Follows one file; `read()` returns the complete new lines since the last call."""

    def __init__(self, path: Path, pos: Position) -> None:
        self.path = path
        self.pos = pos
        self._fh: BinaryIO | None = None
        self._fh_inode = 0
        self.rotations = 0
        self.truncations = 0

    def _open(self) -> tuple[BinaryIO, int] | None:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - kept open across runs on purpose
        except FileNotFoundError:
            return None
        return fh, os.fstat(fh.fileno()).st_ino

    def read(self) -> list[str]:
        lines: list[str] = []
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and st.st_ino != self.pos.inode:
            if self._fh is not None and self._fh_inode == self.pos.inode:
                lines += self._drain(self._fh)  # the rotated-away file's last lines
                self._fh.close()
                self.rotations += 1
            self._fh = None
            self.pos = Position(st.st_ino, 0)
        if st is None:
            return lines
        if st.st_size < self.pos.offset:
            self.truncations += 1
            self.pos.offset = 0
        if self._fh is None:
            opened = self._open()
            if opened is None:
                return lines
            self._fh, self._fh_inode = opened
            if self._fh_inode != self.pos.inode:  # replaced between stat and open
                self.pos = Position(self._fh_inode, 0)
        return lines + self._drain(self._fh)

    def _drain(self, fh: BinaryIO) -> list[str]:
        fh.seek(self.pos.offset)
        data = fh.read(MAX_READ)
        end = data.rfind(b"\n")
        if end < 0:
            return []  # no complete line yet
        self.pos.offset += end + 1
        return data[: end + 1].decode("utf-8", errors="replace").splitlines()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
