"""Integrity without loading, and confinement to the protect globs."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import msgspec
import pytest

from grace import config, integrity, manifest, protect
from grace.errors import ConfinementError


def test_a_good_pickle_passes_and_garbage_is_named(tmp_path: Path) -> None:
    good = tmp_path / "m.pkl"
    good.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    assert integrity.check_structure(good) is None
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(good.read_bytes()[:-3])
    assert "pickle" in (integrity.check_structure(bad) or "")
    trailing = tmp_path / "trailing.pkl"
    trailing.write_bytes(good.read_bytes() + b"junk")
    assert "trailing bytes" in (integrity.check_structure(trailing) or "")


def test_zip_models_are_checked_by_crc(tmp_path: Path) -> None:
    pt = tmp_path / "m.pt"
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps([1.0] * 100))
    assert integrity.check_structure(pt) is None
    raw = bytearray(pt.read_bytes())
    raw[40] ^= 0xFF  # flip a byte inside the member data
    pt.write_bytes(bytes(raw))
    assert integrity.check_structure(pt) is not None


def test_configs_must_parse_and_empty_files_fail(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x": 1')
    (tmp_path / "b.yaml").write_text("a: [1,\n")
    (tmp_path / "c.pkl").write_bytes(b"")
    assert "json" in (integrity.check_structure(tmp_path / "a.json") or "")
    assert "yaml" in (integrity.check_structure(tmp_path / "b.yaml") or "")
    assert integrity.check_structure(tmp_path / "c.pkl") == "file is empty"


def test_sha256_reads_in_chunks(tmp_path: Path) -> None:
    import hashlib

    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (3 * integrity.CHUNK + 5))
    assert integrity.sha256_file(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def make_config(tmp_path: Path) -> config.Config:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "app.yaml").write_text("a: 1\n")
    (tmp_path / "secret.txt").write_text("no")
    cfg = msgspec.convert({"host": "h", "protect": {"models": ["models/*.pkl"],
                                                    "configs": ["config/*.yaml"]}}, config.Config)
    return msgspec.structs.replace(cfg, config_dir=str(tmp_path.resolve()))


def test_protected_files_and_kinds(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    files = protect.protected_files(cfg)
    assert [(p.name, k) for p, k in files] == [("app.yaml", "config"), ("m.pkl", "model")]
    path, kind = protect.confine(cfg, "models/m.pkl")
    assert kind == "model" and path == (tmp_path / "models" / "m.pkl").resolve()


@pytest.mark.parametrize("attack", ["../etc/passwd", "models/../secret.txt", "/etc/passwd",
                                    "secret.txt", "models/sub/../../secret.txt"])
def test_paths_outside_the_globs_are_refused(tmp_path: Path, attack: str) -> None:
    cfg = make_config(tmp_path)
    with pytest.raises(ConfinementError):
        protect.confine(cfg, attack)


def test_a_protected_looking_symlink_to_another_file_is_refused(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    (tmp_path / "models" / "evil.pkl").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ConfinementError):
        protect.confine(cfg, "models/evil.pkl")


def test_manifest_round_trip_and_latest_names(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    m = manifest.load(cfg)
    assert m.files == {}
    name = manifest.latest_name(m, "models/m.pkl", "model")
    assert name == "models/m.pkl"
    m.files["models/m.pkl"] = manifest.Entry(path="models/m.pkl", kind="model", sha256="ab", size=1,
                                             latest=name)
    assert manifest.latest_name(m, "other/m.pkl", "model") == "models/other__m.pkl"
    manifest.save(cfg, m)
    assert manifest.load(cfg).baseline("models/m.pkl") == "ab"
    assert manifest.stamped_name("models/m.pkl", "20251115_073000") == "models/m_20251115_073000.pkl"
