"""The README's grace.yaml example is a valid config, and it names every top-level section."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import yaml

from grace import config
from tests.docs.readme import block

REPO = Path(__file__).resolve().parents[2]
INTERNAL = {"config_dir"}  # set by the loader, never written in grace.yaml


def example() -> str:
    return block("Configuration (`grace.yaml`)", "yaml").text


def test_the_readme_config_example_loads_and_validates(tmp_path: Path) -> None:
    # beside what it names (playbooks), as a user would write it next to their files
    shutil.copytree(REPO / "playbooks", tmp_path / "playbooks")
    path = tmp_path / "grace.yaml"
    path.write_text(example(), encoding="utf-8")
    cfg = config.load(path)
    doc = yaml.safe_load(example())
    assert cfg.host == doc["host"]
    assert [k.name for k in cfg.kernels] == [k["name"] for k in doc["kernels"]]
    assert float(cfg.monitor.interval) == 30.0
    assert cfg.safety.max_commands.count == doc["safety"]["max_commands"]["count"]


def test_the_readme_config_example_names_every_top_level_section_and_no_other() -> None:
    documented = set(yaml.safe_load(example()))
    sections = {f.name for f in msgspec.structs.fields(config.Config)} - INTERNAL
    assert documented - sections == set(), "README config example shows keys grace.yaml does not have"
    assert sections - documented == set(), (
        "grace.yaml sections missing from the README's config example (add each with its defaults)")


def test_the_readme_names_every_nats_setting() -> None:
    line = next(ln for ln in example().splitlines() if ln.startswith("nats:"))
    shown = set(yaml.safe_load(line.split("#", 1)[0])["nats"])
    named = {w.strip(" ,") for w in line.split("#", 1)[1].split()}
    missing = {f.name for f in msgspec.structs.fields(config.Nats)} - shown - named
    assert not missing, f"README config example: the nats line names no {sorted(missing)}"
