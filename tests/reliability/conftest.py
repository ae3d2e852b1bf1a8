"""Reliability fixtures: a local three-node JetStream cluster. Every test here is marked
`reliability`, so `pytest tests/reliability` or `pytest -m reliability` runs them alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from grace.app.cluster import LocalCluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path / "cluster")
    c.start()
    yield c
    c.stop()
