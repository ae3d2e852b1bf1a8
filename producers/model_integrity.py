"""model_integrity: sha256 against the manifest, and structure checked without loading.

Pickles are walked opcode by opcode, zip files (.pt) have their CRCs checked
(grace.integrity); nothing is ever unpickled. Large files are rehashed only
when size/mtime/inode changed, and in full on the first run and then every
`full_verify_every` runs (1: every run). A model larger than
files.VERIFY_CHUNK is verified in pieces over several runs (a run never waits
on a 2 GiB rehash); while that verify is under way a changed model is compared
by a sampled fingerprint with the content last verified against its baseline,
so a change the samples see is reported in the run that notices it.
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
        self.cache = HashCache(structure=True, chunked=True)
        self.runs = 0
        # (path, baseline sha256) -> sample of the large file's content last verified equal to it
        self.good_samples: dict[tuple[str, str], str] = {}
        # path -> its finding in the last run that judged its content: a changed large model whose
        # verify is under way keeps it (nothing is cleared on the strength of samples alone)
        self.judged: dict[str, events.ModelCorruption] = {}

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
        before = (self.cache.rehashed, self.cache.restarted, self.cache.read)
        res = CheckResult()
        for rel, expected in sorted(models.items()):
            path = base / rel
            v = self.cache.verdict(path, force=full or bool(changed and path in changed))
            if v.error:
                res.errors.append(v.error)
                continue
            reasons = []
            good = self.good_samples.get((rel, expected))
            if v.pending and v.sha256 is None and v.sample is not None and good not in (None, v.sample):
                reasons.append("sampled blocks differ from the content last verified against the "
                               "accepted baseline (full sha256 verify under way)")
            elif not v.pending and v.sample is not None and expected and v.sha256 == expected:
                self.good_samples[(rel, expected)] = v.sample
            if v.structure:
                reasons.append(v.structure)
            if expected and v.sha256 is not None and v.sha256 != expected:
                reasons.append("sha256 differs from the accepted baseline")
            unjudged = v.pending and v.sha256 is None
            if reasons:
                finding = events.ModelCorruption(
                    path=rel, expected_sha256=expected or None, actual_sha256=v.sha256,
                    reason="; ".join(reasons), severity="critical", trigger=self.NAME)
                res.findings.append(finding)
                if not unjudged:
                    self.judged[rel] = finding
            elif unjudged and rel in self.judged:
                res.findings.append(self.judged[rel])
            else:
                self.judged.pop(rel, None)
        res.stats = {"models": float(len(models)), "baselined": float(sum(map(bool, models.values()))),
                     "rehashed": float(self.cache.rehashed - before[0]),
                     "verifying": float(self.cache.verifying),
                     "verify_restarted": float(self.cache.restarted - before[1]),
                     "verify_mib": round((self.cache.read - before[2]) / 1024**2, 1)}
        return res
