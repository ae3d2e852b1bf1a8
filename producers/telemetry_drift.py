"""telemetry_drift: latency distribution vs its baseline (PSI), health JSON shape vs recorded.

The first `drift_min_samples` latency samples of a kernel (from latency_queue's
probes) become its baseline, persisted; the last `drift_min_samples` samples
taken after it are compared by PSI (producers/stats.py documents the method)
against `thresholds.drift_psi`. The health endpoint's JSON shape (paths and
value types) is recorded on first sight, persisted, and compared each run:
added, removed and changed paths -> schema_drift. Delete the kernel's entry in
`<data_dir>/state/telemetry_drift.json` to accept a new shape or baseline.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from grace import events
from producers.base import CheckResult, Env
from producers.probes import ProbeFailed, probe
from producers.stats import psi

STATE = "telemetry_drift"


def shape(doc: Any, path: str = "$") -> dict[str, str]:
    """JSON shape: path -> type name; list items share one path `[]`."""
    if isinstance(doc, dict):
        out: dict[str, str] = {path: "object"}
        for k, v in doc.items():
            out.update(shape(v, f"{path}.{k}"))
        return out
    if isinstance(doc, list):
        out = {path: "array"}
        for item in doc[:20]:
            out.update(shape(item, f"{path}[]"))
        return out
    kind = ("null" if doc is None else "bool" if isinstance(doc, bool) else
            "number" if isinstance(doc, (int, float)) else "string")
    return {path: kind}


class TelemetryDrift:
    NAME: ClassVar[str] = "telemetry_drift"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        kernels = [k for k in self.env.cfg.kernels if k.health_url]
        if not kernels:
            return CheckResult(skipped="no kernel has a health_url")
        state = self.env.state.load(STATE)
        baselines: dict[str, dict[str, Any]] = state.setdefault("baselines", {})
        shapes: dict[str, dict[str, str]] = state.setdefault("shapes", {})
        res = CheckResult()
        for k in kernels:
            self._latency(res, k.name, baselines)
        async with aiohttp.ClientSession() as session:
            for k in kernels:
                url = k.health_url or ""
                try:
                    _, body = await probe(session, url, float(self.env.cfg.monitor.timeout) / 2)
                except ProbeFailed as exc:
                    res.errors.append(f"kernel {k.name}: {exc}")
                    continue
                if body is None:
                    res.errors.append(f"kernel {k.name}: {url} did not return JSON")
                    continue
                now_shape = shape(body)
                old = shapes.setdefault(k.name, now_shape)
                added = sorted(set(now_shape) - set(old))
                removed = sorted(set(old) - set(now_shape))
                changed_ = sorted(p for p in set(old) & set(now_shape) if old[p] != now_shape[p])
                if added or removed or changed_:
                    res.findings.append(events.SchemaDrift(
                        kernel=k.name, url=url, added=added, removed=removed,
                        changed=[f"{p}: {old[p]} -> {now_shape[p]}" for p in changed_],
                        trigger=self.NAME))
        res.stats["shapes_recorded"] = float(len(shapes))
        self.env.state.save(STATE, state)
        return res

    def _latency(self, res: CheckResult, kernel: str, baselines: dict[str, dict[str, Any]]) -> None:
        n = max(2, self.env.cfg.thresholds.drift_min_samples)
        samples = list(self.env.shared.latency.get(kernel, ()))
        base = baselines.get(kernel)
        if base is None:
            if len(samples) >= n:
                baselines[kernel] = {"values": [ms for _, ms in samples[:n]], "until": samples[n - 1][0]}
            return
        recent = [ms for t, ms in samples if t > base["until"]][-n:]
        if len(recent) < n:
            return
        value = psi(base["values"], recent)
        res.stats[f"psi.{kernel}"] = round(value, 4)
        if value > self.env.cfg.thresholds.drift_psi:
            res.findings.append(events.TelemetryDrift(
                metric="health_latency_ms", kernel=kernel, statistic="psi", value=round(value, 4),
                threshold=self.env.cfg.thresholds.drift_psi, baseline_n=len(base["values"]),
                recent_n=len(recent), baseline_median=round(statistics.median(base["values"]), 3),
                recent_median=round(statistics.median(recent), 3), trigger=self.NAME))
