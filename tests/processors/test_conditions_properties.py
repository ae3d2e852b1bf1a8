"""Property tests: a compiled `where` agrees with a straightforward reference evaluation
on random conditions and random events (hypothesis; pure logic, no server)."""

from __future__ import annotations

import operator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from grace import events
from processors.conditions import compile_where

CLS = events.CpuSaturation
NUMS = st.one_of(st.integers(-5, 105), st.floats(-5, 105, allow_nan=False))
CMP = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}

leaf = st.one_of(
    st.builds(lambda op, v: {"percent": {op: v}}, st.sampled_from(sorted(CMP)), NUMS),
    st.builds(lambda v: {"percent": {"eq": v}}, NUMS),
    st.builds(lambda v: {"samples": {"ne": v}}, st.integers(0, 5)),
    st.builds(lambda vs: {"scope": {"in": vs}}, st.lists(st.sampled_from(["system", "kernel"]), max_size=2)),
    st.builds(lambda vs: {"kernel": {"not_in": vs}}, st.lists(st.sampled_from(["api", "db"]), max_size=2)),
    st.builds(lambda b: {"kernel": {"exists": b}}, st.booleans()),
    st.builds(lambda p: {"kernel": {"regex": p}}, st.sampled_from(["^a", "i$", "p", "^$"])),
)
where = st.recursive(leaf, lambda inner: st.one_of(
    st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda x: {"not": x}, inner)), max_leaves=8)
event = st.builds(lambda pct, samples, scope, kernel: events.make_event(
    CLS(scope=scope, kernel=kernel, percent=pct, threshold=90.0, samples=samples),
    host="h", source="s"), NUMS.map(float), st.integers(0, 5), st.sampled_from(["system", "kernel"]),
    st.sampled_from([None, "api", "worker", "db"]))


def reference(node: dict[str, Any], ev: events.Event) -> bool:
    """The meaning of a condition, written plainly."""
    results = []
    for key, spec in node.items():
        if key == "all":
            results.append(all(reference(n, ev) for n in spec))
        elif key == "any":
            results.append(any(reference(n, ev) for n in spec))
        elif key == "not":
            results.append(not reference(spec, ev))
        else:
            value = getattr(ev.data, key)
            [(op, arg)] = spec.items()
            if op in CMP:
                results.append(value is not None and CMP[op](value, arg))
            elif op == "eq":
                results.append(value == arg)
            elif op == "ne":
                results.append(value != arg)
            elif op == "in":
                results.append(value in arg)
            elif op == "not_in":
                results.append(value not in arg)
            elif op == "exists":
                results.append((value is not None) == arg)
            elif op == "regex":
                import re
                results.append(value is not None and re.search(arg, str(value)) is not None)
    return all(results)


@settings(max_examples=400, deadline=None)
@given(where, event)
def test_compiled_where_agrees_with_the_reference(node: dict[str, Any], ev: events.Event) -> None:
    errors: list[str] = []
    pred = compile_where(node, [CLS], lambda m, _at: errors.append(m), ())
    assert not errors
    assert pred(ev) == reference(node, ev)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                                      st.lists(st.integers(), max_size=2)), max_size=3))
def test_any_malformed_where_is_reported_never_raised(node: dict[str, Any]) -> None:
    errors: list[str] = []
    pred = compile_where(node, [CLS], lambda m, _at: errors.append(m), ())
    ev = events.make_event(CLS(scope="system", percent=95.0, threshold=90.0, samples=3), host="h",
                           source="s")
    assert isinstance(pred(ev), bool) or errors
