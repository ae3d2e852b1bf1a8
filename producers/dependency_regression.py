"""dependency_regression: installed distributions vs the lock file, and OSV advisories.

Missing, downgraded or otherwise changed pins -> dependency_regression; an
installed version inside an advisory's affected range (or versions list) ->
vulnerable_dependency with the fixed version. The target environment is
`dependencies.site_packages` (dist-info METADATA), default this interpreter's.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import ClassVar, Literal

from grace import events
from producers import deps
from producers.base import CheckResult, Env


class DependencyRegression:
    NAME: ClassVar[str] = "dependency_regression"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env
        self._last: tuple[tuple[object, ...], CheckResult] | None = None

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        return await asyncio.to_thread(self._cached)

    def _inputs(self) -> tuple[object, ...]:
        """What the answer depends on: folder mtimes (a dist-info added/removed) and file stamps."""
        d = self.env.cfg.dependencies
        folders = [self.env.cfg.path(p) for p in d.site_packages] or [
            Path(p) for p in sys.path if p and os.path.isdir(p)]
        files = [self.env.cfg.path(p) for p in (d.lock, d.advisories) if p]
        out: list[object] = []
        for p in [*folders, *files]:
            try:
                st = os.stat(p)
                out.append((str(p), st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((str(p), None))
        return tuple(out)

    def _cached(self) -> CheckResult:
        # Re-reading every METADATA each cycle costs tens of ms; the inputs rarely change.
        key = self._inputs()
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        res = self._check()
        self._last = (key, res)
        return res

    def _check(self) -> CheckResult:
        d = self.env.cfg.dependencies
        if not d.lock and not d.advisories:
            return CheckResult(skipped="no dependencies.lock or dependencies.advisories configured")
        have = deps.installed([self.env.cfg.path(p) for p in d.site_packages])
        res = CheckResult(stats={"dependencies_tracked": float(len(have))})
        if d.lock:
            lock = deps.read_lock(self.env.cfg.path(d.lock))
            res.stats["locked"] = float(len(lock))
            for name, want in sorted(lock.items()):
                got = have.get(name)
                if got == want:
                    continue
                change: Literal["missing", "downgraded", "changed"] = (
                    "missing" if got is None else "downgraded" if deps.older(got, want) else "changed")
                res.findings.append(events.DependencyRegression(
                    package=name, locked_version=want, installed_version=got, change=change,
                    trigger=self.NAME))
        if d.advisories:
            advisories = deps.read_advisories(self.env.cfg.path(d.advisories))
            res.stats["advisories"] = float(len(advisories))
            for adv in advisories:
                version = have.get(adv.package)
                if version is None:
                    continue
                hit, fixed = deps.affected(adv, version)
                if hit:
                    res.findings.append(events.VulnerableDependency(
                        package=adv.package, installed_version=version, advisory_id=adv.id,
                        aliases=[a for a in adv.aliases if a.startswith("CVE-")] or adv.aliases,
                        fixed_version=fixed, summary=adv.summary, severity="critical",
                        trigger=self.NAME))
            res.stats["vulnerabilities"] = float(sum(isinstance(f, events.VulnerableDependency)
                                                     for f in res.findings))
        return res
