"""`grace snapshot take | list | accept | restore` on real files, events to the real bus."""

from __future__ import annotations

from pathlib import Path

from grace import manifest
from grace.bus import Bus
from tests.actuators.helpers import events_of, make_config
from tests.support import grace_cmd


async def test_snapshot_cli_takes_refuses_accepts_and_restores(tmp_path: Path, nats_url: str,
                                                               bus: Bus) -> None:
    cfg = make_config(tmp_path)
    opts = ["-c", str(tmp_path / "grace.yaml"), "--nats", nats_url]
    took = grace_cmd("snapshot", "take", *opts)
    assert took.returncode == 0 and took.stdout.count("taken") == 2, took.stdout + took.stderr
    listed = grace_cmd("snapshot", "list", "-c", str(tmp_path / "grace.yaml"))
    assert "models/m.pkl  [model]" in listed.stdout and "config/app.yaml  [config]" in listed.stdout

    app = tmp_path / "config" / "app.yaml"
    app.write_text("threads: 8\nmode: fast\n")
    refused = grace_cmd("snapshot", "take", *opts)
    assert refused.returncode == 1 and "REFUSED   config/app.yaml" in refused.stdout
    assert "grace snapshot accept config/app.yaml" in refused.stdout
    accepted = grace_cmd("snapshot", "accept", "config/app.yaml", *opts)
    assert accepted.returncode == 0 and "accepted  config/app.yaml" in accepted.stdout
    new_baseline = manifest.load(cfg).baseline("config/app.yaml")

    model = tmp_path / "models" / "m.pkl"
    good = model.read_bytes()
    model.write_bytes(b"rubbish")
    restored = grace_cmd("snapshot", "restore", "models/m.pkl", *opts)
    assert restored.returncode == 0 and "restored  models/m.pkl" in restored.stdout
    assert model.read_bytes() == good
    escape = grace_cmd("snapshot", "restore", "../../etc/passwd", *opts)
    assert escape.returncode == 2 and "outside" in escape.stderr

    (ev,) = await events_of(bus, cfg.host, "snapshot", "snapshot_accepted")
    assert ev.data.path == "config/app.yaml" and ev.data.sha256 == new_baseline
    assert len(await events_of(bus, cfg.host, "snapshot", "snapshot_refused")) == 1
    assert len(await events_of(bus, cfg.host, "snapshot", "snapshot_restored")) == 1


def test_snapshot_take_works_on_files_without_nats(tmp_path: Path) -> None:
    make_config(tmp_path)
    took = grace_cmd("snapshot", "take", "-c", str(tmp_path / "grace.yaml"), "--nats",
                     "nats://127.0.0.1:1")
    assert took.returncode == 0 and took.stdout.count("taken") == 2
    assert "events not published" in took.stderr
