"""The wire contract only grows: a removed/renamed field, a changed type, a new
required field or a removed event type fails here.

After an intended, additive change refresh the snapshot:
    .venv/bin/grace schema > tests/foundation/schema_snapshot.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grace import events

SNAPSHOT = Path(__file__).with_name("schema_snapshot.json")


def _defs(schema: dict[str, Any]) -> dict[str, Any]:
    return dict(schema["$defs"])


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every incompatible difference between two `grace schema` outputs."""
    problems = []
    old_defs, new_defs = _defs(old), _defs(new)
    for name, old_def in old_defs.items():
        if name not in new_defs:
            problems.append(f"{name}: removed")
            continue
        new_def = new_defs[name]
        old_props = old_def.get("properties", {})
        new_props = new_def.get("properties", {})
        for field, spec in old_props.items():
            if field not in new_props:
                problems.append(f"{name}.{field}: removed or renamed")
            elif _shape(spec) != _shape(new_props[field]):
                problems.append(
                    f"{name}.{field}: type changed from {_shape(spec)} to {_shape(new_props[field])}")
            else:
                removed = sorted(_enum_values(spec) - _enum_values(new_props[field]), key=str)
                problems.extend(f"{name}.{field}: enum value {value!r} removed" for value in removed)
        added_required = set(new_def.get("required", [])) - set(old_def.get("required", []))
        problems.extend(f"{name}.{field}: new required field (give it a default)"
                        for field in sorted(added_required))
    return problems


def _enum_values(spec: dict[str, Any]) -> set[Any]:
    """Every enum value a field accepts, through anyOf and array items (adding is compatible,
    removing one breaks readers and old events that carry it)."""
    values = set(spec.get("enum", []))
    for sub in spec.get("anyOf", []):
        values |= _enum_values(sub)
    if isinstance(spec.get("items"), dict):
        values |= _enum_values(spec["items"])
    return values


def _shape(spec: dict[str, Any]) -> Any:
    if "anyOf" in spec:
        return sorted(json.dumps(_shape(s), sort_keys=True) for s in spec["anyOf"])
    if "$ref" in spec:
        return spec["$ref"]
    if "enum" in spec:
        return ("enum", spec.get("type"))  # adding enum values is compatible
    if spec.get("type") == "array":
        return ("array", _shape(spec.get("items", {})))
    if spec.get("type") == "object":
        return ("object", _shape(spec.get("additionalProperties", {})) if isinstance(
            spec.get("additionalProperties"), dict) else None)
    return (spec.get("type"), spec.get("format"))


def test_schema_has_no_breaking_change_against_the_committed_snapshot() -> None:
    old = json.loads(SNAPSHOT.read_text())
    new = events.json_schema()
    problems = breaking_changes(old, new)
    assert not problems, "breaking changes to the event contract:\n" + "\n".join(problems)


def test_the_check_detects_a_removed_field_a_type_change_and_a_new_required_field() -> None:
    old = events.json_schema()
    new = json.loads(json.dumps(old))
    props = new["$defs"]["ModelCorruption"]["properties"]
    del props["reason"]
    props["path"] = {"type": "integer"}
    new["$defs"]["ModelCorruption"]["required"].append("added")
    problems = breaking_changes(old, new)
    assert "ModelCorruption.reason: removed or renamed" in problems
    assert any(p.startswith("ModelCorruption.path: type changed") for p in problems)
    assert "ModelCorruption.added: new required field (give it a default)" in problems


def test_adding_an_optional_field_is_compatible() -> None:
    old = events.json_schema()
    new = json.loads(json.dumps(old))
    new["$defs"]["ModelCorruption"]["properties"]["note"] = {"type": "string", "default": ""}
    assert breaking_changes(old, new) == []


def test_adding_an_enum_value_is_compatible_and_removing_one_is_not() -> None:
    old = events.json_schema()
    outcome = old["$defs"]["FixReport"]["properties"]["outcome"]
    assert "unverified" in outcome["enum"]
    added = json.loads(json.dumps(old))
    added["$defs"]["FixReport"]["properties"]["outcome"]["enum"].append("skipped")
    assert breaking_changes(old, added) == []
    removed = json.loads(json.dumps(old))
    removed["$defs"]["FixReport"]["properties"]["outcome"]["enum"].remove("unverified")
    assert breaking_changes(old, removed) == ["FixReport.outcome: enum value 'unverified' removed"]
