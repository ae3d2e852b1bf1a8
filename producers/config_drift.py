"""config_drift: sha256 of each protected config file against its accepted baseline.

The baseline is the snapshot manifest (`grace snapshot accept` blesses a
change). A missing file drifts too (actual_sha256 None). No manifest entry for
any config yet: nothing to compare, the check says so and finds nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from grace import events, protect
from producers.base import CheckResult, Env
from producers.files import HashCache, read_manifest


class ConfigDrift:
    NAME: ClassVar[str] = "config_drift"
    WATCHES_FILES: ClassVar[bool] = True

    def __init__(self, env: Env) -> None:
        self.env = env
        self.cache = HashCache(structure=False)
        self.runs = 0

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        return await asyncio.to_thread(self._check, changed)

    def _check(self, changed: set[Path] | None) -> CheckResult:
        cfg = self.env.cfg
        self.runs += 1
        m = read_manifest(cfg)
        baselined = {rel: e for rel, e in m.files.items() if e.kind == "config"}
        base = protect.root(cfg)
        # protected_files are resolved and confined to base: relative_to is all `relative` adds
        present = {p.relative_to(base).as_posix() for p, kind in protect.protected_files(cfg)
                   if kind == "config"}
        stats = {"baselined": float(len(baselined)), "unbaselined": float(len(present - set(baselined)))}
        if not baselined:
            return CheckResult(stats=stats, skipped="no accepted baseline yet (grace snapshot take)")
        full = self.runs % max(1, cfg.thresholds.config_drift.full_verify_every) == 1
        res = CheckResult(stats=stats)
        for rel, entry in sorted(baselined.items()):
            path = base / rel
            v = self.cache.verdict(path, force=full or bool(changed and path in changed))
            if v.error:
                res.errors.append(v.error)
            elif v.sha256 is None:
                res.findings.append(events.ConfigDrift(
                    path=rel, expected_sha256=entry.sha256, actual_sha256=None,
                    reason="file is missing", trigger=self.NAME))
            elif v.sha256 != entry.sha256:
                res.findings.append(events.ConfigDrift(
                    path=rel, expected_sha256=entry.sha256, actual_sha256=v.sha256,
                    trigger=self.NAME))
        return res
