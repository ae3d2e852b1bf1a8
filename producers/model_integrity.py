"""model_integrity: sha256 against the manifest, and structure checked without loading.

Pickles are walked opcode by opcode, zip files (.pt) have their CRCs checked
(grace.integrity); nothing is ever unpickled. Large files are rehashed only
when size/mtime/inode changed, and in full on the first run and then every
`full_verify_every` runs (1: every run).
A model without a baseline is still structure-checked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from grace import events, protect
from producers.base import CheckResult, Env
from producers.files import HashCache, read_manifest


class ModelIntegrity:
    NAME: ClassVar[str] = "model_integrity"
    WATCHES_FILES: ClassVar[bool] = True

    def __init__(self, env: Env) -> None:
        self.env = env
        self.cache = HashCache(structure=True)
        self.runs = 0

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        return await asyncio.to_thread(self._check, changed)

    def _check(self, changed: set[Path] | None) -> CheckResult:
        cfg = self.env.cfg
        self.runs += 1
        m = read_manifest(cfg)
        base = protect.root(cfg)
        models = {rel: e.sha256 for rel, e in m.files.items() if e.kind == "model"}
        for p, kind in protect.protected_files(cfg):
            if kind == "model":
                models.setdefault(p.relative_to(base).as_posix(), "")  # resolved, under base
        # runs 1, 1 + every, 1 + 2*every, ...: with every = 1 that is each run
        full = (self.runs - 1) % max(1, cfg.thresholds.model_integrity.full_verify_every) == 0
        before = self.cache.rehashed
        res = CheckResult()
        for rel, expected in sorted(models.items()):
            path = base / rel
            v = self.cache.verdict(path, force=full or bool(changed and path in changed))
            if v.error:
                res.errors.append(v.error)
                continue
            reasons = []
            if v.structure:
                reasons.append(v.structure)
            if expected and v.sha256 is not None and v.sha256 != expected:
                reasons.append("sha256 differs from the accepted baseline")
            if reasons:
                res.findings.append(events.ModelCorruption(
                    path=rel, expected_sha256=expected or None, actual_sha256=v.sha256,
                    reason="; ".join(reasons), severity="critical", trigger=self.NAME))
        res.stats = {"models": float(len(models)), "baselined": float(sum(map(bool, models.values()))),
                     "rehashed": float(self.cache.rehashed - before)}
        return res
