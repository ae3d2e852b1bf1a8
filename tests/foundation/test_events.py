"""The event contract: typed round trips, envelope shape, rejection reasons."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from grace import events
from grace.errors import EventError


def sample_payload(cls: type[events.Payload]) -> events.Payload:
    """A payload of `cls` with every required field filled from its JSON schema."""
    schema = msgspec.json.schema(cls)
    defs = schema.get("$defs", {})
    ref = schema["$ref"].split("/")[-1]
    props = defs[ref]["properties"]
    required = defs[ref].get("required", [])
    times = {f.encode_name for f in msgspec.inspect.type_info(cls).fields  # type: ignore[union-attr]
             if isinstance(f.type, msgspec.inspect.DateTimeType)}
    values: dict[str, Any] = {}
    for name in required:
        values[name] = "2026-01-01T00:00:00Z" if name in times else _value_for(props[name], defs)
    return msgspec.convert(values, cls)


def _value_for(prop: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "enum" in prop:
        return prop["enum"][0]
    if "anyOf" in prop:
        return _value_for(next(p for p in prop["anyOf"] if p.get("type") != "null"), defs)
    kind = prop.get("type")
    if prop.get("format") == "date-time":
        return "2026-01-01T00:00:00Z"
    return {"string": "x", "integer": 1, "number": 1.5, "boolean": True, "array": [],
            "object": {}}[kind]


@pytest.mark.parametrize("type_name", sorted(events.PAYLOAD_CLASSES))
def test_every_event_type_round_trips_typed(type_name: str) -> None:
    payload = sample_payload(events.PAYLOAD_CLASSES[type_name])
    ev = events.make_event(payload, host="web-1", source="grace/web-1/test", subject="thing")
    raw = events.encode(ev)
    back = events.decode(raw)
    assert back == ev
    assert type(back.data) is events.PAYLOAD_CLASSES[type_name]
    assert back.type == type_name


def test_envelope_is_cloudevents_structured_json() -> None:
    ev = events.make_event(events.ModelCorruption(path="models/m.pkl", expected_sha256="a",
                                                  actual_sha256="b", reason="hash mismatch"),
                           host="web-1", source="grace/web-1/producer")
    doc = json.loads(events.encode(ev))
    assert doc["specversion"] == "1.0"
    assert doc["type"] == "model_corruption"
    assert doc["datacontenttype"] == "application/json"
    assert {"id", "source", "time", "data"} <= doc.keys()
    assert doc["time"].endswith("Z")
    assert "subject" not in doc  # CloudEvents forbids null attributes


@pytest.mark.parametrize(("raw", "reason"), [
    (b"not json", "not valid JSON"),
    (b'{"type":"no_such_type","specversion":"1.0"}', "unknown event type"),
    ((b'{"type":"model_corruption","specversion":"1.0","id":"1","source":"s","time":"2026-01-01T00:00:00Z",'
      b'"datacontenttype":"application/json","host":"h","data":{"path":3}}'), "$.data.path"),
    ((b'{"type":"model_corruption","specversion":"0.3","id":"1","source":"s",'
      b'"time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","host":"h","data":{}}'),
     "$.specversion"),
])
def test_bad_events_are_refused_with_a_reason_and_the_raw_bytes(raw: bytes, reason: str) -> None:
    with pytest.raises(EventError) as info:
        events.decode(raw)
    assert reason in info.value.reason
    assert info.value.raw == raw


def test_oversized_payload_is_refused() -> None:
    raw = b" " * (events.MAX_PAYLOAD + 1)
    with pytest.raises(EventError, match="over the"):
        events.decode(raw)


def test_derived_ids_are_deterministic() -> None:
    assert events.derive_id("pb", "e1") == events.derive_id("pb", "e1")
    assert events.derive_id("pb", "e1") != events.derive_id("pb", "e2")


def test_payload_from_dict_names_the_field() -> None:
    with pytest.raises(EventError, match=r"\$\.path"):
        events.payload_from_dict("restore_model_weights", {"path": 5})
    with pytest.raises(EventError, match="unknown event type 'nope'"):
        events.payload_from_dict("nope", {})
