"""Each trigger owns its options (grace.triggers_config) and reads no other trigger's."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from grace import triggers_config
from grace.errors import ConfigError, ValidationErrors
from producers.base import make_env
from producers.registry import TRIGGERS
from producers.state import StateStore
from tests.producers.sample import write_system
from tests.producers.web import HealthServer


class Poisoned:
    """Stands in for another trigger's options: any read is recorded, then fails."""

    def __init__(self, owner: str, reads: list[str]) -> None:
        self._owner, self._reads = owner, reads

    def __getattr__(self, name: str) -> Any:
        self._reads.append(f"{self._owner}.{name}")
        raise AttributeError(f"read of {self._owner}'s option {name!r} by another trigger")


class Recorded:
    """A trigger's own options, noting which it reads."""

    def __init__(self, options: triggers_config.TriggerOptions, reads: set[str]) -> None:
        self._options, self._reads = options, reads

    def __getattr__(self, name: str) -> Any:
        self._reads.add(name)
        return getattr(self._options, name)


def test_every_trigger_declares_its_options_and_every_declaration_is_a_trigger() -> None:
    assert set(triggers_config.OPTIONS) == set(TRIGGERS)
    assert set(triggers_config.Thresholds.__struct_fields__) == set(TRIGGERS)
    for name, cls in triggers_config.OPTIONS.items():
        assert name == cls.TRIGGER
        assert type(getattr(triggers_config.Thresholds(), name)) is cls


def test_a_key_two_triggers_declare_has_one_type_and_one_default() -> None:
    shared = {k: o for k, o in triggers_config.owners().items() if len(o) > 1}
    assert shared  # full_verify_every, latency_probes: else this test checks nothing
    for key, owners in shared.items():
        fields = [next(f for f in msgspec.structs.fields(triggers_config.OPTIONS[o]) if f.name == key)
                  for o in owners]
        assert len({(f.type, f.default) for f in fields}) == 1, (key, owners)


def test_the_flat_section_sets_a_shared_key_for_every_trigger_declaring_it(tmp_path: Path) -> None:
    cfg = write_system(tmp_path, {"thresholds": {"full_verify_every": 3, "cpu_percent": 50}})
    th = cfg.thresholds
    assert th.config_drift.full_verify_every == th.model_integrity.full_verify_every == 3
    assert th.resource_pressure.cpu_percent == 50.0 and th.resource_pressure.memory_percent == 90.0
    assert th.live_error_feed == triggers_config.LiveErrorFeedOptions()


def test_an_unknown_threshold_names_file_line_and_the_closest_option(tmp_path: Path) -> None:
    with pytest.raises(ValidationErrors) as info:
        write_system(tmp_path, {"monitor": {"interval": "1s"}, "thresholds": {"cpu_precent": 50}})
    (err,) = info.value.errors
    assert err.file == str(tmp_path / "grace.yaml") and err.line is not None
    assert (tmp_path / "grace.yaml").read_text().splitlines()[err.line - 1].strip() == "cpu_precent: 50"
    assert err.path == "thresholds.cpu_precent" and "did you mean `cpu_percent`" in err.reason
    assert "resource_pressure: cpu_percent, memory_percent, sustained_samples" in err.reason


def test_with_values_refuses_a_key_no_trigger_declares() -> None:
    with pytest.raises(ConfigError, match="unknown thresholds key"):
        triggers_config.with_values(triggers_config.Thresholds(), nope=1)


def _modules_of_triggers() -> dict[str, str]:
    """trigger name -> the source file of its module."""
    return {name: inspect.getfile(sys.modules[cls.__module__]) for name, cls in TRIGGERS.items()}


def test_no_producer_module_names_another_triggers_options() -> None:
    own = {Path(f).resolve(): name for name, f in _modules_of_triggers().items()}
    folder = Path(next(iter(own))).parent
    wrong = [f"{path.name}:{node.lineno}: thresholds.{node.attr}"
             for path in sorted(folder.glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
             and node.value.attr == "thresholds" and node.attr != own.get(path.resolve())]
    assert not wrong, f"a trigger reads only thresholds.<its own name>: {wrong}"


async def test_each_trigger_runs_reading_only_its_own_options(tmp_path: Path) -> None:
    server = await HealthServer().start()
    try:
        cfg = write_system(tmp_path, {
            "logs": ["logs/app.log"],
            "kernels": [{"name": "api", "command": ["a"], "health_url": server.url}]})
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "app.log").write_text("ERROR boom 1\n" * 3)
        for name, cls in TRIGGERS.items():
            foreign: list[str] = []
            read: set[str] = set()
            parts: dict[str, Any] = {
                other: (Recorded(getattr(cfg.thresholds, other), read) if other == name
                        else Poisoned(other, foreign))
                for other in triggers_config.OPTIONS}
            mine = msgspec.structs.replace(
                cfg, thresholds=msgspec.structs.replace(cfg.thresholds, **parts),
                data_dir=f"data-{name}")
            trig = cls(make_env(mine, StateStore(mine.data_path / "state")))
            for _ in range(2):
                await trig.check()
            assert foreign == [], f"{name} read {foreign}"
            declared = set(triggers_config.OPTIONS[name].__struct_fields__)
            assert read == declared or (read and read <= declared), (name, read, declared)
            assert bool(read) == bool(declared), f"{name} declares {declared} but read {read}"
    finally:
        await server.stop()

