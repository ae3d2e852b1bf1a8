"""The `shed` config key: only named, non-critical kernels; max_s defaults to 5m."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace import config
from grace.errors import ValidationErrors

BASE = """kernels:
  - {name: api, command: [x], critical: true}
  - {name: batch, command: [x]}
"""


def test_shed_defaults_to_nothing_for_at_most_five_minutes(tmp_path: Path) -> None:
    (tmp_path / "grace.yaml").write_text(BASE)
    cfg = config.load(tmp_path / "grace.yaml")
    assert cfg.shed.kernels == [] and float(cfg.shed.max_s) == 300.0


@pytest.mark.parametrize(("kernels", "message"), [("[api]", "critical"), ("[ghost]", "not a kernel")])
def test_shed_kernels_must_be_known_and_non_critical(tmp_path: Path, kernels: str, message: str) -> None:
    (tmp_path / "grace.yaml").write_text(BASE + f"shed: {{kernels: {kernels}, max_s: 2m}}\n")
    with pytest.raises(ValidationErrors) as exc:
        config.load(tmp_path / "grace.yaml")
    assert message in str(exc.value) and "shed.kernels" in str(exc.value)


def test_the_example_sheds_only_non_critical_kernels(tmp_path: Path) -> None:
    cfg = config.load(Path(__file__).resolve().parents[2] / "examples" / "grace.yaml")
    assert cfg.shed.kernels and not any(cfg.kernel(n).critical for n in cfg.shed.kernels)  # type: ignore[union-attr]
    assert "static" not in cfg.shed.kernels
