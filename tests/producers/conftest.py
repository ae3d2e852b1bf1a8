"""Fixtures of the producers' tests: a temp system and a trigger environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace.config import Config
from producers.base import Env, make_env
from producers.state import StateStore
from tests.producers.sample import write_system


@pytest.fixture
def system(tmp_path: Path) -> Config:
    return write_system(tmp_path)


@pytest.fixture
def env(system: Config) -> Env:
    return make_env(system, StateStore(system.data_path / "state"))
