"""`where` compiles to closures: every operator, combinators, dict fields, no eval."""

from __future__ import annotations

from typing import Any

import pytest

from grace import events
from processors import conditions
from tests.processors.support import ev


def pred(where: Any, cls: type[events.Payload] = events.CpuSaturation) -> conditions.Pred:
    errors: list[str] = []
    p = conditions.compile_where(where, [cls], lambda m, _at: errors.append(m), ("where",))
    assert not errors, errors
    return p


CPU = ev(events.CpuSaturation(scope="system", percent=95.0, threshold=90.0, samples=3), 0)


@pytest.mark.parametrize(("where", "expected"), [
    ({"percent": {"eq": 95.0}}, True), ({"percent": {"ne": 95.0}}, False),
    ({"percent": {"gt": 95}}, False), ({"percent": {"ge": 95}}, True),
    ({"percent": {"lt": 96}}, True), ({"percent": {"le": 94}}, False),
    ({"scope": {"in": ["system", "kernel"]}}, True), ({"scope": {"not_in": ["system"]}}, False),
    ({"scope": "system"}, True), ({"scope": ["kernel"]}, False),
    ({"scope": {"regex": "^sys"}}, True), ({"kernel": {"regex": "."}}, False),
    ({"kernel": {"exists": True}}, False), ({"kernel": {"exists": False}}, True),
    ({"kernel": {"gt": 1}}, False),  # null never compares
    ({"host": "web-1"}, True),
    ({"all": [{"scope": "system"}, {"percent": {"gt": 90}}]}, True),
    ({"any": [{"scope": "kernel"}, {"percent": {"gt": 99}}]}, False),
    ({"not": {"scope": "kernel"}}, True),
    ({"percent": {"gt": 90, "lt": 95}}, False),
])
def test_each_operator(where: Any, expected: bool) -> None:
    assert pred(where)(CPU) is expected


def test_dict_fields_are_read_by_dotted_path() -> None:
    e = ev(events.ConditionCleared(condition="queue_backlog", key={"kernel": "worker"}), 0)
    p = pred({"condition": "queue_backlog", "key.kernel": {"eq": "worker"}}, events.ConditionCleared)
    assert p(e)
    assert not pred({"key.path": {"exists": True}}, events.ConditionCleared)(e)


@pytest.mark.parametrize(("where", "message"), [
    ({"percentage": {"gt": 1}}, "has no field `percentage`"),
    ({"percent": {"gt": "90"}}, "compares numbers"),
    ({"percent": {"between": [1, 2]}}, "unknown operator `between`"),
    ({"scope": {"regex": "("}}, "invalid regex"),
    ({"scope": {"in": "system"}}, "takes a list"),
    ({"scope.x": "y"}, "is not a mapping"),
    ({"any": []}, "non-empty list"),
])
def test_bad_conditions_are_reported_not_evaluated(where: Any, message: str) -> None:
    errors: list[str] = []
    conditions.compile_where(where, [events.CpuSaturation], lambda m, _at: errors.append(m), ())
    assert any(message in e for e in errors), errors
