"""telemetry_drift: latency distribution vs its baseline (PSI), health JSON shape vs recorded.

Latency: every sample latency_queue's probes take (its window is only
`latency_window` long, so this trigger keeps its own) is collected here and
persisted. The first `baseline_size` samples of a kernel are its baseline; the
last `baseline_size` samples after it are compared by PSI (producers/stats.py
documents the method) against `thresholds.drift_psi`, in steps of 1/20 of the
kernel's `latency_p95_ms` (25 ms by default: a fast service's sub-step jitter
is not drift, a shift across steps is). `baseline_size` is
`drift_min_samples`, but never more than the probes can take within
BASELINE_WITHIN_S at `monitor.interval`, so a baseline is always complete
within an hour. Baseline, the samples collected towards it and the recent
samples survive a restart (`<data_dir>/state/telemetry_drift.json`).

Shape: the health endpoint's JSON shape (paths and value types) is recorded on
first sight, persisted, and compared each run: added, removed and changed
paths -> schema_drift. A health page that is not JSON (a plain web server's
index page) has no shape: that is noted once, with the reason, and its shape is
not checked until it answers JSON. Delete the kernel's entries in the state
file to accept a new shape or baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from grace import events
from grace.config import Config, Kernel
from producers.base import CheckResult, Env
from producers.latency_queue import p95, probe_plan
from producers.probes import ProbeFailed, ProbeTimedOut, probe
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


BASELINE_WITHIN_S = 3600.0  # a baseline must be collectable within this long
RESOLUTION = 20  # latencies are compared in steps of latency_p95_ms / RESOLUTION


def baseline_size(cfg: Config, k: Kernel) -> int:
    """Samples in a baseline (and in the recent window compared with it) for kernel `k`."""
    opts = cfg.thresholds.telemetry_drift
    per_run, _ = probe_plan(cfg, k, opts.latency_probes)
    runs = max(1, int(BASELINE_WITHIN_S / float(cfg.monitor.interval)))
    return max(2, min(opts.drift_min_samples, per_run * runs))


class TelemetryDrift:
    NAME: ClassVar[str] = "telemetry_drift"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env
        self.taken: dict[str, int] = {}  # kernel -> samples already taken over (this process)

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        kernels = [k for k in self.env.cfg.kernels if k.health_url]
        if not kernels:
            return CheckResult(skipped="no kernel has a health_url")
        state = self.env.state.load(STATE)
        shapes: dict[str, dict[str, str]] = state.setdefault("shapes", {})
        not_json: dict[str, str] = state.setdefault("not_json", {})
        res = CheckResult()
        for k in kernels:
            self._latency(res, k, state)
        async with aiohttp.ClientSession() as session:
            for k in kernels:
                url = k.health_url or ""
                try:
                    _, body = await probe(session, url, float(self.env.cfg.monitor.timeout) / 2)
                except ProbeTimedOut:
                    continue  # slow is latency_queue's finding; the shape is judged next run
                except ProbeFailed as exc:
                    res.errors.append(f"kernel {k.name}: {exc}")
                    continue
                if body is None:
                    if k.name not in not_json:  # said once, remembered across restarts
                        not_json[k.name] = (f"kernel {k.name}: {url} does not answer JSON; its "
                                            "health shape is not checked (latency still is)")
                        res.notes.append(not_json[k.name])
                    continue
                not_json.pop(k.name, None)
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
        res.stats["shapes_skipped_not_json"] = float(len(not_json))
        self.env.state.save(STATE, state)
        return res

    def _new_samples(self, kernel: str) -> list[float]:
        """Latency samples of `kernel` taken since the last call (all of them after a restart)."""
        shared = self.env.shared
        total = shared.latency_taken.get(kernel, 0)
        count = total - self.taken.get(kernel, 0)
        self.taken[kernel] = total
        window = list(shared.latency.get(kernel, ()))
        # by count, not by time: a virtual clock gives every sample of a run the same time
        return [ms for _, ms in window[len(window) - min(count, len(window)):]]

    def _latency(self, res: CheckResult, k: Kernel, state: dict[str, Any]) -> None:
        n = baseline_size(self.env.cfg, k)
        baselines: dict[str, dict[str, Any]] = state.setdefault("baselines", {})
        collecting: dict[str, list[float]] = state.setdefault("collecting", {})
        recents: dict[str, list[float]] = state.setdefault("recent", {})
        # compared at a resolution of 1/20 of the kernel's threshold (25 ms by default):
        # jitter of a fast service below that is noise, not drift
        step = max(0.001, k.latency_p95_ms / RESOLUTION)
        new = [round(step * (ms // step), 3) for ms in self._new_samples(k.name)]
        base = baselines.get(k.name)
        if base is None:
            got = collecting.setdefault(k.name, [])
            got.extend(new)
            res.stats[f"baseline_n.{k.name}"] = float(min(len(got), n))
            if len(got) < n:
                return
            base = baselines[k.name] = {"values": got[:n], "until": self.env.clock()}
            recents[k.name] = got[n:]
            del collecting[k.name]
        else:
            recents.setdefault(k.name, []).extend(new)
        recent = recents[k.name] = recents[k.name][-n:]
        res.stats[f"baseline_n.{k.name}"] = float(len(base["values"]))
        res.stats[f"recent_n.{k.name}"] = float(len(recent))
        if len(recent) < n:
            return
        value = psi(base["values"], recent)
        res.stats[f"psi.{k.name}"] = round(value, 4)
        limit = self.env.cfg.thresholds.telemetry_drift.drift_psi
        if value > limit:
            res.findings.append(events.TelemetryDrift(
                metric="health_latency_ms", kernel=k.name, statistic="psi", value=round(value, 4),
                threshold=limit, baseline_n=len(base["values"]),
                recent_n=len(recent), baseline_p95=round(p95(base["values"]), 3),
                recent_p95=round(p95(recent), 3), trigger=self.NAME))
