"""live_error_feed: a real log file tailed across rotation and truncation, errors grouped."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from grace import events, triggers_config
from producers.base import Env, make_env
from producers.live_error_feed import LiveErrorFeed
from producers.logtail import template
from producers.state import StateStore


def _env(env: Env, repeats: int = 3) -> Env:
    th = triggers_config.with_values(env.cfg.thresholds, error_repeats=repeats)
    cfg = msgspec.structs.replace(env.cfg, logs=["logs/app.log"], thresholds=th)
    (Path(cfg.config_dir) / "logs").mkdir(exist_ok=True)
    return make_env(cfg, env.state, clock=env.clock)


def _append(path: Path, *lines: str) -> None:
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines))


def test_template_masks_numbers_hex_uuids_and_paths() -> None:
    a = template("2026-01-01 12:00:01 ERROR job 1234 failed at 0xdeadbeef for "
                 "1b4e28ba-2fa1-11d2-883f-0016d3cca427 reading /var/data/x.csv")
    b = template("2026-01-02 13:10:09 ERROR job 99 failed at 0x1f for "
                 "6fa459ea-ee8a-3ca4-894e-db77e160355e reading /srv/other/y.csv")
    assert a == b and "<uuid>" in a and "<path>" in a and "<hex>" in a


async def test_repeated_error_template_across_rotation_is_reported_with_samples(env: Env) -> None:
    env = _env(env)
    log = Path(env.cfg.config_dir) / "logs" / "app.log"
    _append(log, "INFO started")
    trig = LiveErrorFeed(env)
    assert (await trig.check()).findings == []  # the first run starts at the end of the log
    _append(log, "ERROR db timeout after 31 ms")
    assert (await trig.check()).findings == []
    _append(log, "ERROR db timeout after 45 ms")  # not yet read when the file is rotated
    os.rename(log, log.with_suffix(".log.1"))
    _append(log, "INFO reopened", "ERROR db timeout after 12 ms")
    res = await trig.check()
    [f] = res.findings
    assert isinstance(f, events.RepeatedErrorPattern)
    assert f.count == 3 and f.template == "ERROR db timeout after <n> ms" and f.log == "logs/app.log"
    assert len(f.samples) == 3 and res.stats["error_lines"] == 2


async def test_truncated_log_is_read_from_the_start(env: Env) -> None:
    env = _env(env, repeats=2)
    log = Path(env.cfg.config_dir) / "logs" / "app.log"
    _append(log, "x" * 200)
    trig = LiveErrorFeed(env)
    await trig.check()
    log.write_text("Traceback (most recent call last):\n")  # truncated in place, same inode
    _append(log, "Traceback (most recent call last):")
    [f] = (await trig.check()).findings
    assert f.count == 2


async def test_offsets_survive_a_restart_so_lines_are_not_counted_twice(env: Env) -> None:
    env = _env(env, repeats=2)
    log = Path(env.cfg.config_dir) / "logs" / "app.log"
    log.touch()
    await LiveErrorFeed(env).check()  # the first run: position saved at the (empty) end
    _append(log, "ERROR once")
    assert (await LiveErrorFeed(make_env(env.cfg, StateStore(env.state.folder))).check()
            ).stats["error_lines"] == 1
    fresh = make_env(env.cfg, StateStore(env.state.folder))  # a new process: state from disk
    res = await LiveErrorFeed(fresh).check()
    assert res.findings == [] and res.stats["error_lines"] == 0
    _append(log, "ERROR once")
    [f] = (await LiveErrorFeed(make_env(env.cfg, StateStore(env.state.folder))).check()).findings
    assert f.count == 2


async def test_old_errors_leave_the_window(env: Env) -> None:
    now = [1000.0]
    env = _env(make_env(env.cfg, env.state, clock=lambda: now[0]), repeats=2)
    log = Path(env.cfg.config_dir) / "logs" / "app.log"
    trig = LiveErrorFeed(env)
    await trig.check()
    _append(log, "ERROR a 1")
    await trig.check()
    now[0] += float(env.cfg.thresholds.live_error_feed.error_window) + 1
    _append(log, "ERROR a 2")
    assert (await trig.check()).findings == []


async def test_the_first_run_starts_at_the_end_of_an_existing_log_then_reports_new_lines(
        env: Env) -> None:
    env = _env(env, repeats=5)  # the shipped error_repeats
    log = Path(env.cfg.config_dir) / "logs" / "app.log"
    _append(log, *[f"ERROR payment {i} failed" for i in range(30)])
    with open(log, "a") as f:
        f.write("ERROR half-writ")  # a line still being written when Grace starts
    res = await LiveErrorFeed(env).check()
    assert res.findings == [] and res.stats["error_lines"] == 0  # history, not fresh repeats
    with open(log, "a") as f:
        f.write("ten\n")
    _append(log, *[f"ERROR payment {i} failed" for i in range(5)])
    res = await LiveErrorFeed(make_env(env.cfg, StateStore(env.state.folder))).check()
    [f] = res.findings  # a later run (a new process) resumes from the saved position
    assert isinstance(f, events.RepeatedErrorPattern) and f.count == 5
    assert res.stats["error_lines"] == 6  # the five and the line that was being written


async def test_a_log_that_appears_after_the_first_run_is_read_from_its_start(env: Env) -> None:
    env = _env(env, repeats=2)
    log = Path(env.cfg.config_dir) / "logs" / "app.log"
    trig = LiveErrorFeed(env)
    assert (await trig.check()).stats["error_lines"] == 0  # no file yet
    _append(log, "ERROR boom 1", "ERROR boom 2")
    [f] = (await trig.check()).findings
    assert f.count == 2
