"""Snapshot hygiene on real files, with an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actuators import snapshots
from grace import events, integrity, manifest
from grace.errors import ActionError, ConfinementError
from tests.actuators.helpers import make_config

T0 = datetime(2025, 11, 15, 7, 30, 0, tzinfo=UTC)


def at(t: datetime):  # noqa: ANN201 - a clock
    return lambda: t


def test_snapshot_layout_has_stamped_copies_latest_and_manifest(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    out = snapshots.take(cfg, now=at(T0))
    assert sorted(type(e).__name__ for e in out) == ["SnapshotTaken", "SnapshotTaken"]
    snap = tmp_path / ".grace_snapshots"
    model = (tmp_path / "models/m.pkl").read_bytes()
    assert (snap / "models" / "m_20251115_073000.pkl").read_bytes() == model
    assert (snap / "models" / "m.pkl").read_bytes() == model
    assert (snap / "configs" / "app_20251115_073000.yaml").is_file()
    m = json.loads((snap / "manifest.json").read_text())
    assert m["files"]["models/m.pkl"]["sha256"] == integrity.sha256_file(tmp_path / "models/m.pkl")
    app = integrity.sha256_file(tmp_path / "config/app.yaml")
    assert manifest.load(cfg).baseline("config/app.yaml") == app


def test_corrupt_file_is_refused_as_a_snapshot_source(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    model = tmp_path / "models" / "m.pkl"
    model.write_bytes(model.read_bytes()[:-5])  # truncated: no STOP opcode
    out = snapshots.take(cfg, ["models/m.pkl"], now=at(T0))
    assert isinstance(out[0], events.SnapshotRefused) and "integrity" in out[0].reason
    assert manifest.load(cfg).files == {}
    assert not list((tmp_path / ".grace_snapshots" / "models").glob("*.pkl"))


def test_a_changed_file_is_refused_until_accepted(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    snapshots.take(cfg, now=at(T0))
    good = manifest.load(cfg).baseline("config/app.yaml")
    (tmp_path / "config" / "app.yaml").write_text("threads: 64\nmode: fast\n")  # valid YAML, drifted
    out = snapshots.take(cfg, ["config/app.yaml"], now=at(T0 + timedelta(hours=1)))
    assert isinstance(out[0], events.SnapshotRefused)
    assert "grace snapshot accept config/app.yaml" in out[0].reason
    latest = tmp_path / ".grace_snapshots" / "configs" / "app.yaml"
    assert latest.read_text() == "threads: 4\nmode: fast\n"
    accepted, taken = snapshots.accept(cfg, "config/app.yaml", now=at(T0 + timedelta(hours=2)))
    assert isinstance(accepted, events.SnapshotAccepted) and accepted.previous_sha256 == good
    assert isinstance(taken, events.SnapshotTaken)
    assert manifest.load(cfg).baseline("config/app.yaml") == accepted.sha256 != good
    assert latest.read_text() == "threads: 64\nmode: fast\n"


def test_accept_refuses_a_corrupt_file(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    (tmp_path / "config" / "app.yaml").write_text("threads: [4\n")
    with pytest.raises(ActionError, match="refusing to accept"):
        snapshots.accept(cfg, "config/app.yaml")


def test_prune_by_age_and_count_keeps_the_last_good_copy(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)  # keep 3, max_age 24h
    model = tmp_path / "models" / "m.pkl"
    for h in range(5):
        snapshots.take(cfg, ["models/m.pkl"], now=at(T0 + timedelta(hours=h)))
    pruned = snapshots.prune(cfg, now=at(T0 + timedelta(hours=5)))
    assert [(e.snapshot, e.reason) for e in pruned] == [
        ("models/m_20251115_083000.pkl", "count"), ("models/m_20251115_073000.pkl", "count")]
    assert not (tmp_path / ".grace_snapshots" / "models" / "m_20251115_073000.pkl").exists()
    # two days later every copy is past max_age, but the last good one stays
    pruned = snapshots.prune(cfg, now=at(T0 + timedelta(days=2)))
    assert sorted(e.reason for e in pruned) == ["age", "age"]
    left = manifest.load(cfg).files["models/m.pkl"].copies
    assert [c.file for c in left] == ["models/m_20251115_113000.pkl"]
    assert (tmp_path / ".grace_snapshots" / left[0].file).read_bytes() == model.read_bytes()


def test_corrupted_model_is_restored_byte_identical_from_the_last_good_snapshot(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    model = tmp_path / "models" / "m.pkl"
    good = model.read_bytes()
    snapshots.take(cfg, now=at(T0))
    model.write_bytes(b"\x80\x04garbage")
    ev, written = snapshots.restore(cfg, "models/m.pkl", "model")
    assert written and model.read_bytes() == good
    assert ev.sha256 == integrity.sha256_file(model)
    assert not list(model.parent.glob(".grace-tmp-*"))  # the temp file was renamed, not left
    _, again = snapshots.restore(cfg, "models/m.pkl", "model")
    assert not again  # already good: nothing written


def test_a_damaged_latest_copy_is_skipped_for_an_older_good_one(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    model = tmp_path / "models" / "m.pkl"
    good = model.read_bytes()
    snapshots.take(cfg, now=at(T0))
    (tmp_path / ".grace_snapshots" / "models" / "m.pkl").write_bytes(b"rotten")
    model.write_bytes(b"broken")
    ev, written = snapshots.restore(cfg, "models/m.pkl")
    assert written and model.read_bytes() == good and ev.snapshot == "models/m_20251115_073000.pkl"


def test_paths_outside_the_protect_globs_are_refused(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    snapshots.take(cfg, now=at(T0))
    outside = tmp_path.parent / f"{tmp_path.name}-secret.pkl"
    outside.write_bytes(b"secret")
    (tmp_path / "models" / "evil.pkl").symlink_to(outside)
    for bad in ["../etc/passwd", "/etc/passwd", "models/../../x.pkl", "models/evil.pkl", "grace.yaml"]:
        with pytest.raises(ConfinementError):
            snapshots.restore(cfg, bad)
    assert outside.read_bytes() == b"secret"
