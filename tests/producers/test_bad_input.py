"""Bad input becomes a clear reason (a check error or a partial error), never a crash."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import msgspec
import pytest

from producers.base import CheckError, Env, make_env
from producers.deps import read_advisories
from producers.live_error_feed import LiveErrorFeed
from producers.model_integrity import ModelIntegrity
from producers.monitor import run_check
from producers.pre_boot_code_diff import PreBootCodeDiff


async def test_unreadable_model_is_a_reason_naming_the_file(env: Env) -> None:
    model = Path(env.cfg.config_dir) / "models" / "m.pkl"
    model.unlink()
    model.mkdir()  # something that exists but cannot be read as a file
    res = await ModelIntegrity(env).check()
    assert res.findings == [] and "cannot read" in res.errors[0] and "m.pkl" in res.errors[0]


async def test_log_that_cannot_be_read_fails_the_check_with_its_path(env: Env) -> None:
    cfg = msgspec.structs.replace(env.cfg, logs=["logs/app.log"])
    (Path(cfg.config_dir) / "logs" / "app.log").mkdir(parents=True)
    outcome = await run_check("live_error_feed", LiveErrorFeed(make_env(cfg, env.state)), 2.0)
    assert outcome.result is None and "app.log" in outcome.error


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
async def test_permission_denied_log_is_a_reason(env: Env) -> None:
    cfg = msgspec.structs.replace(env.cfg, logs=["logs/app.log"])
    log = Path(cfg.config_dir) / "logs" / "app.log"
    log.parent.mkdir()
    log.write_text("ERROR x\n")
    log.chmod(0)
    outcome = await run_check("live_error_feed", LiveErrorFeed(make_env(cfg, env.state)), 2.0)
    assert outcome.result is None and "not readable" in outcome.error


async def test_missing_code_root_fails_the_check_saying_which_key(env: Env) -> None:
    shutil.rmtree(Path(env.cfg.config_dir) / "src")
    outcome = await run_check("pre_boot_code_diff", PreBootCodeDiff(env), 2.0)
    assert outcome.result is None and "code.root" in outcome.error


def test_osv_record_without_id_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "adv.json"
    p.write_text(json.dumps([{"affected": []}]))
    with pytest.raises(CheckError, match="record 0 has no string 'id'"):
        read_advisories(p)
