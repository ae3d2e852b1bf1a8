"""predictive_failure: a least-squares trend over recent resource series, time to exhaustion.

Series, one sample per run: system memory %, disk % of the data folder's
filesystem, and error lines per second from live_error_feed. Over the last
`trend_samples` samples (at least `trend_min_samples`) a line y = a + b*t is
fitted; when it rises and reaches its limit (`exhaustion_percent`, or
`error_rate_limit`) within `failure_horizon`, with r^2 >= `trend_min_r2`,
-> failure_risk_predicted with the eta and r^2 as the confidence. Series persist.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import psutil

from grace import events
from producers.base import CheckResult, Env
from producers.stats import time_to_limit

STATE = "predictive_failure"


class PredictiveFailure:
    NAME: ClassVar[str] = "predictive_failure"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env
        saved = env.state.load(STATE).get("series") or {}
        self.series: dict[str, list[list[float]]] = {k: list(v) for k, v in saved.items()}
        self.sampler: Callable[[], dict[str, float]] = self.sample  # injectable in tests

    def sample(self) -> dict[str, float]:
        """This run's value of each series, measured on this machine."""
        out = {"memory": float(psutil.virtual_memory().percent)}
        folder = self.env.cfg.data_path
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        usage = shutil.disk_usage(folder)
        out["disk"] = 100.0 * usage.used / usage.total if usage.total else 0.0
        errs = list(self.env.shared.errors)
        if len(errs) >= 2:
            (t0, _), (t1, n1) = errs[-2], errs[-1]
            if t1 > t0:
                out["error_rate"] = n1 / (t1 - t0)
        return out

    def add(self, resource: str, t: float, value: float) -> None:
        keep = max(2, self.env.cfg.thresholds.predictive_failure.trend_samples)
        s = self.series.setdefault(resource, [])
        s.append([t, value])
        del s[:-keep]

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        th = self.env.cfg.thresholds.predictive_failure
        now = self.env.clock()
        for resource, value in self.sampler().items():
            self.add(resource, now, value)
        res = CheckResult()
        limits = {"memory": th.exhaustion_percent, "disk": th.exhaustion_percent,
                  "error_rate": th.error_rate_limit}
        for resource, points in self.series.items():
            if len(points) < th.trend_min_samples:
                continue
            pts = [(t, y) for t, y in points]
            limit = limits.get(resource, th.exhaustion_percent)
            eta, slope, r2 = time_to_limit(pts, limit, now)
            res.stats[f"r2.{resource}"] = round(r2, 4)
            if eta is None or eta > float(th.failure_horizon) or r2 < th.trend_min_r2:
                continue
            res.findings.append(events.FailureRiskPredicted(
                resource=resource, eta_s=round(eta, 1), confidence=round(r2, 4),
                current=round(pts[-1][1], 3), limit=limit, slope_per_s=slope,
                files=[str(self.env.cfg.data_path)] if resource == "disk" else [],
                severity="critical" if eta < float(th.failure_horizon) / 4 else "warning",
                trigger=self.NAME))
        self.env.state.save(STATE, {"series": self.series})
        return res
