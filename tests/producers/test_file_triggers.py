"""config_drift and model_integrity against real files corrupted on disk."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import msgspec
import pytest

from grace import events
from producers.base import Env, make_env
from producers.config_drift import ConfigDrift
from producers.model_integrity import ModelIntegrity
from producers.state import StateStore
from tests.producers.sample import write_system


async def test_config_file_changed_on_disk_is_config_drift_with_both_hashes(env: Env) -> None:
    trig = ConfigDrift(env)
    assert (await trig.check()).findings == []
    cfg_file = Path(env.cfg.config_dir) / "config" / "app.yaml"
    expected = __import__("grace.integrity").integrity.sha256_file(cfg_file)
    cfg_file.write_text("threads: 64\nmode: fast\n")
    res = await trig.check({cfg_file.resolve()})
    [f] = res.findings
    assert isinstance(f, events.ConfigDrift)
    assert f.path == "config/app.yaml" and f.expected_sha256 == expected
    assert f.actual_sha256 and f.actual_sha256 != expected


async def test_missing_config_file_is_config_drift_without_actual_hash(env: Env) -> None:
    (Path(env.cfg.config_dir) / "config" / "app.yaml").unlink()
    [f] = (await ConfigDrift(env).check()).findings
    assert isinstance(f, events.ConfigDrift) and f.actual_sha256 is None
    assert f.reason == "file is missing"


async def test_no_baseline_yet_finds_nothing_and_says_so(tmp_path: Path) -> None:
    cfg = write_system(tmp_path, baseline=False)
    res = await ConfigDrift(make_env(cfg, StateStore(tmp_path / "state"))).check()
    assert res.findings == [] and "no accepted baseline" in res.skipped
    assert res.stats["baselined"] == 0


async def test_model_overwritten_with_garbage_is_model_corruption(env: Env) -> None:
    trig = ModelIntegrity(env)
    assert (await trig.check()).findings == []
    model = Path(env.cfg.config_dir) / "models" / "m.pkl"
    model.write_bytes(os.urandom(2048))
    [f] = (await trig.check({model.resolve()})).findings
    assert isinstance(f, events.ModelCorruption) and f.path == "models/m.pkl"
    assert f.expected_sha256 and f.actual_sha256 and f.expected_sha256 != f.actual_sha256
    assert "pickle" in f.reason


async def test_valid_but_different_pickle_is_reported_by_hash(env: Env) -> None:
    model = Path(env.cfg.config_dir) / "models" / "m.pkl"
    model.write_bytes(pickle.dumps({"weights": [0]}))
    [f] = (await ModelIntegrity(env).check()).findings
    assert isinstance(f, events.ModelCorruption) and f.reason == "sha256 differs from the accepted baseline"


async def test_unchanged_model_is_not_rehashed_until_full_verification(tmp_path: Path) -> None:
    cfg = write_system(tmp_path, {"thresholds": {"full_verify_every": 3}})
    trig = ModelIntegrity(make_env(cfg, StateStore(tmp_path / "state")))
    rehashed = [(await trig.check()).stats["rehashed"] for _ in range(4)]
    assert rehashed == [1.0, 0.0, 0.0, 1.0]
    # a same-size rewrite with the old mtime put back is still seen (ctime is in the stamp)
    model = tmp_path / "models" / "m.pkl"
    st = model.stat()
    data = bytearray(model.read_bytes())
    data[-5] ^= 0xFF
    model.write_bytes(bytes(data))
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = await trig.check()
    assert res.stats["rehashed"] == 1.0 and res.findings


async def test_full_verify_every_1_rehashes_every_model_on_every_run(tmp_path: Path) -> None:
    cfg = write_system(tmp_path, {"thresholds": {"full_verify_every": 1}})
    trig = ModelIntegrity(make_env(cfg, StateStore(tmp_path / "state")))
    assert [(await trig.check()).stats["rehashed"] for _ in range(4)] == [1.0] * 4


async def test_unreadable_manifest_is_a_check_error_naming_the_file(env: Env) -> None:
    from grace import manifest
    from producers.base import CheckError

    manifest.manifest_path(env.cfg).write_text("{not json")
    with pytest.raises(CheckError, match=r"manifest\.json"):
        await ModelIntegrity(env).check()


async def test_missing_model_is_model_corruption(env: Env) -> None:
    (Path(env.cfg.config_dir) / "models" / "m.pkl").unlink()
    [f] = (await ModelIntegrity(env).check()).findings
    assert msgspec.structs.asdict(f)["actual_sha256"] is None and "missing" in f.reason
