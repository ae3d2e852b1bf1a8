"""File-change notifications (watchfiles) for the file triggers: react within a second.

Watched folders: the fixed part of each protect glob and the code root. A
change under the code root re-runs pre_boot_code_diff; a file matching
protect.models re-runs model_integrity, protect.configs config_drift.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchfiles import Change, DefaultFilter, awatch

from grace import manifest, protect
from grace.config import Config

log = logging.getLogger(__name__)

OnChange = Callable[[dict[str, set[Path]]], Awaitable[None]]


def _glob_base(root: Path, pattern: str) -> Path:
    parts = []
    for part in Path(pattern).parts[:-1]:
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return root.joinpath(*parts)


def watched_folders(cfg: Config) -> list[Path]:
    root = protect.root(cfg)
    folders = {_glob_base(root, g) for g in [*cfg.protect.models, *cfg.protect.configs]}
    if cfg.code.root:
        folders.add(cfg.path(cfg.code.root))
    existing = sorted(f.resolve() for f in folders if f.is_dir())
    # a folder inside another watched (recursive) folder is covered already
    return [f for f in existing if not any(o != f and f.is_relative_to(o) for o in existing)]


def route(cfg: Config, paths: set[Path]) -> dict[str, set[Path]]:
    """Trigger name -> the changed paths it should look at."""
    out: dict[str, set[Path]] = {}
    code = cfg.path(cfg.code.root).resolve() if cfg.code.root else None
    for p in paths:
        if code is not None and p.is_relative_to(code):
            out.setdefault("pre_boot_code_diff", set()).add(p)
        kind = protect.kind_of(cfg, p)
        if kind == "model":
            out.setdefault("model_integrity", set()).add(p)
        elif kind == "config":
            out.setdefault("config_drift", set()).add(p)
    return out


class _Filter(DefaultFilter):
    """DefaultFilter (caches, VCS, editors' temp files) plus Grace's own data and snapshots:
    a glob at the config folder's top would otherwise watch the NATS store's every write."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.skip = tuple(str(p.resolve()) + "/" for p in (cfg.data_path, manifest.snapshot_dir(cfg)))

    def __call__(self, change: Change, path: str) -> bool:
        return not (path + "/").startswith(self.skip) and super().__call__(change, path)


async def watch(cfg: Config, on_change: OnChange, stop: asyncio.Event) -> None:
    """Call `on_change` with the routed paths of each batch of changes until `stop`."""
    folders = watched_folders(cfg)
    if not folders:
        return
    log.info("watching %s for changes", ", ".join(map(str, folders)))
    logging.getLogger("watchfiles.main").setLevel(logging.WARNING)  # one INFO line per change otherwise
    async for changes in awatch(*folders, stop_event=stop, debounce=50, step=20, recursive=True,
                                watch_filter=_Filter(cfg), ignore_permission_denied=True):
        routed = route(cfg, {Path(p).resolve() for _, p in changes})  # noqa: ASYNC240 - a few lstat()s
        try:
            await on_change(routed)  # possibly empty: the monitor counts every batch
        except Exception:  # the periodic cycle still covers it
            log.exception("reacting to a file change failed")
