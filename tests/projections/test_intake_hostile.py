"""Hostile bodies to both intake endpoints of a real `grace project` (hypothesis, bounded):
wrong types, huge, deeply nested, invalid UTF-8. Always a 4xx with a reason, never a 5xx,
and the server still answers afterwards."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grace import events, tokens
from projections import intake
from tests.projections.intake_support import alert, notification
from tests.projections.live import Projector


@pytest.fixture(scope="module")
def server(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Projector, str]]:
    p = Projector(nats_url, tmp_path_factory.mktemp("hostile"))
    tokens.write_token(p.data)
    token = tokens.read_token(p.data)
    assert token
    p.start()
    p.wait_seq(0)
    yield p, token
    p.stop()


def post(p: Projector, path: str, body: bytes, token: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}",
                                                       "Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


GOOD_ALERTS: dict[str, Any] = json.loads(notification([alert("HighLatency", "fp1")]))
GOOD_EVENT: dict[str, Any] = json.loads(events.encode(events.make_event(
    events.CpuSaturation(scope="system", percent=95.0, threshold=90.0, samples=3),
    host="hostile", source="t")))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)
not_text = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | \
    st.lists(st.integers(), max_size=3) | st.dictionaries(st.text(max_size=4), st.integers(),
                                                          max_size=3)


def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> bytes:
    out = json.loads(json.dumps(doc))
    at = out
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = value
    return json.dumps(out).encode()


# a valid body with one field given a value of a type it can never have
ALERT_PATHS: list[tuple[str | int, ...]] = [
    ("version",), ("status",), ("receiver",), ("alerts",), ("groupLabels",),
    ("alerts", 0, "status"), ("alerts", 0, "labels"), ("alerts", 0, "startsAt"),
    ("alerts", 0, "annotations"), ("truncatedAlerts",)]
EVENT_PATHS: list[tuple[str | int, ...]] = [
    ("specversion",), ("type",), ("time",), ("host",), ("data",), ("data", "percent"),
    ("data", "scope"), ("id",)]


def wrong(doc: dict[str, Any], paths: list[tuple[str | int, ...]]) -> st.SearchStrategy[bytes]:
    def pick(path: tuple[str | int, ...]) -> st.SearchStrategy[bytes]:
        values = not_text if path[-1] not in ("percent", "truncatedAlerts", "alerts", "labels",
                                               "annotations", "groupLabels", "data") \
            else st.text(max_size=5) | st.none() | st.booleans()
        if path[-1] == "truncatedAlerts":
            values = st.integers(max_value=-1) | st.text(max_size=5)
        return values.map(lambda v: _set(doc, path, v))
    return st.sampled_from(paths).flatmap(pick)


def nested(depth: int, opener: bytes = b"[") -> bytes:
    closer = b"]" if opener == b"[" else b"}"
    inner = opener * depth + closer * depth if opener == b"[" else b'{"a":' * depth + b"1" + closer * depth
    return b'{"alerts": ' + inner + b"}"


hostile = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.binary(min_size=1, max_size=50).map(lambda b: b'{"version": "4", "receiver": "' + b +
                                            b'\xff\xfe"}'),
    st.integers(min_value=1, max_value=200_000).map(nested),
    st.integers(min_value=1, max_value=5_000).map(lambda n: nested(n, b"{")),
    st.sampled_from([intake.MAX_ALERTS_BODY + 1, intake.MAX_EVENT_BODY + 1]).map(
        lambda n: b"[" + b"1," * (n // 2) + b"1]"),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(st.sampled_from([intake.ALERTS_PATH, intake.EVENTS_PATH]),
       st.one_of(hostile, wrong(GOOD_ALERTS, ALERT_PATHS), wrong(GOOD_EVENT, EVENT_PATHS)))
def test_a_hostile_body_gets_a_4xx_with_a_reason_never_a_5xx(
        server: tuple[Projector, str], path: str, body: bytes) -> None:
    p, token = server
    status, answer = post(p, path, body, token)
    assert 400 <= status < 500, (status, answer[:300], body[:200])
    assert json.loads(answer)["error"]


def test_a_good_body_after_the_hostile_ones_is_stored_and_the_server_lives(
        server: tuple[Projector, str], tmp_path: Path) -> None:
    p, token = server
    assert p.proc is not None and p.proc.poll() is None
    status, answer = post(p, intake.ALERTS_PATH, json.dumps(GOOD_ALERTS).encode(), token)
    assert status == 200, answer
    assert p.get("/healthz")[0] == 200
