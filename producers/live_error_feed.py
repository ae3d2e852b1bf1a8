"""live_error_feed: tail the configured logs, group error lines by template, report repeats.

Error lines (ERROR, CRITICAL, FATAL, Exception, Traceback, `XxxError`) are
masked into templates (numbers, hex, uuids, paths). A template seen at least
`error_repeats` times within `error_window` (by the time the lines were read)
-> repeated_error_pattern with samples and the code files (under code.root) that its
lines or the traceback frames before them name. Offsets and recent counts persist in
`<data_dir>/state/live_error_feed.json`, so a restart neither re-reads nor forgets.
A log with no saved position (the first run) is read from its end: lines written
before Grace watched it are history, not fresh repeats. A log that does not
exist yet is read from its start when it appears.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from grace import codefiles, events
from producers.base import CheckError, CheckResult, Env
from producers.logtail import Position, Tail, is_error, template

STATE = "live_error_feed"
MAX_TEMPLATES = 500
MAX_SAMPLES = 3
MAX_FILES = 10


class LiveErrorFeed:
    NAME: ClassVar[str] = "live_error_feed"
    WATCHES_FILES: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env
        saved = env.state.load(STATE)
        self.tails: dict[str, Tail] = {}
        for rel, pos in (saved.get("offsets") or {}).items():
            self.tails[rel] = Tail(env.cfg.path(rel), Position(int(pos[0]), int(pos[1])))
        # template key "log\0template" -> {"times": [...], "samples": [...]}
        self.seen: dict[str, dict[str, Any]] = saved.get("templates") or {}

    async def check(self, changed: set[Path] | None = None) -> CheckResult:
        return await asyncio.to_thread(self._check)

    def _check(self) -> CheckResult:
        cfg = self.env.cfg
        if not cfg.logs:
            return CheckResult(skipped="no logs configured")
        th = cfg.thresholds.live_error_feed
        now = self.env.clock()
        res = CheckResult()
        errors_now = 0
        for rel in cfg.logs:
            path = cfg.path(rel)
            try:
                tail = self.tails.get(rel)
                if tail is None:  # first sight: start after what is already there
                    tail = self.tails[rel] = Tail(path, Position.at_end(path))
                lines = tail.read()
            except PermissionError as exc:
                res.errors.append(f"log {path} is not readable: {exc.strerror}; give Grace "
                                  "read access or remove it from logs")
                continue
            except OSError as exc:
                res.errors.append(f"log {path}: {exc}")
                continue
            frames: list[str] = []  # files of the traceback frames since the last error line
            for line in lines:
                if not is_error(line):
                    if ".py" in line:
                        frames += codefiles.named_paths(line)
                    continue
                errors_now += 1
                entry = self.seen.setdefault(f"{rel}\0{template(line)}", {"times": [], "samples": []})
                entry["times"].append(now)
                if len(entry["samples"]) < MAX_SAMPLES:
                    entry["samples"].append(line.strip()[:500])
                # the frames before an exception line are its traceback: its files are the code at fault
                named = [*frames, *codefiles.named_paths(line)] if ".py" in line or frames else []
                if named:
                    named = codefiles.under_code_root(cfg, named)
                frames = []
                files = entry.setdefault("files", [])
                files += [f for f in named if f not in files][:max(0, MAX_FILES - len(files))]
        self.env.shared.errors.append((now, errors_now))
        horizon = now - float(th.error_window)
        for key in list(self.seen):
            entry = self.seen[key]
            entry["times"] = [t for t in entry["times"] if t >= horizon][-max(th.error_repeats * 4, 100):]
            if not entry["times"]:
                del self.seen[key]
                continue
            if len(entry["times"]) >= th.error_repeats:
                log, tmpl = key.split("\0", 1)
                res.findings.append(events.RepeatedErrorPattern(
                    log=log, template=tmpl, count=len(entry["times"]), window_s=float(th.error_window),
                    samples=entry["samples"], files=entry.get("files", []), trigger=self.NAME))
        if len(self.seen) > MAX_TEMPLATES:  # keep the busiest templates
            keep = sorted(self.seen, key=lambda k: len(self.seen[k]["times"]))[-MAX_TEMPLATES:]
            self.seen = {k: self.seen[k] for k in keep}
        res.stats = {"logs": float(len(cfg.logs)), "error_lines": float(errors_now),
                     "templates": float(len(self.seen))}
        self.env.state.save(STATE, {
            "offsets": {rel: [t.pos.inode, t.pos.offset] for rel, t in self.tails.items()},
            "templates": self.seen})
        if res.errors and len(res.errors) == len(cfg.logs):
            raise CheckError("; ".join(res.errors))
        return res
