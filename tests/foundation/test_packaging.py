"""pyproject.toml names only files and entry points that exist."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_data_pattern_matches_a_file() -> None:
    data = PROJECT["tool"]["setuptools"].get("package-data", {})
    for package, patterns in data.items():
        for pattern in patterns:
            assert list((REPO / package).glob(pattern)), f"package-data {package}: {pattern} matches nothing"


def test_the_console_script_is_the_grace_command() -> None:
    target = PROJECT["project"]["scripts"]["grace"]
    module, _, attr = target.partition(":")
    assert module.startswith("grace.app."), target
    assert getattr(importlib.import_module(module), attr).name == "main"
