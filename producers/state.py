"""State that must survive a restart: one JSON file per owner under `<data_dir>/state/`.

Writes are atomic (tmp file, fsync, rename). `grace check` opens the store
read-only so a one-off check never moves the monitor's offsets or baselines.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StateStore:
    """Named JSON documents in a folder; `readonly` keeps changes in memory only."""

    def __init__(self, folder: Path, readonly: bool = False) -> None:
        self.folder = folder
        self.readonly = readonly
        self._memory: dict[str, dict[str, Any]] = {}
        self._saved: dict[str, str] = {}  # name -> last JSON written: unchanged state is not rewritten

    def load(self, name: str) -> dict[str, Any]:
        """The document `name`, or {} when absent or unreadable (logged)."""
        if name in self._memory:
            return self._memory[name]
        p = self.folder / f"{name}.json"
        try:
            data = json.loads(p.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("state file %s is unreadable (%s); starting that state afresh", p, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, name: str, data: dict[str, Any]) -> None:
        if self.readonly:
            self._memory[name] = data
            return
        text = json.dumps(data, sort_keys=True)
        if self._saved.get(name) == text:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / f"{name}.json")
            self._saved[name] = text
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
