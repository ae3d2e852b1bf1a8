"""The HTTP intake on a real port against a real nats-server: alerts in, events in."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from grace import events, topology
from grace.bus import Bus
from projections import intake
from tests.projections.intake_support import alert, host_events, notification, post, rejected_since, serve


def new_host() -> str:
    return "in" + uuid.uuid4().hex[:10]


async def test_firing_and_resolved_alerts_become_events_once_and_resolved_clears(
        bus: Bus, tmp_path: Path) -> None:
    host = new_host()
    async with serve(bus, tmp_path, host) as srv:
        url = srv.url + intake.ALERTS_PATH
        firing = notification([alert("HighLatency", "fp1", severity="critical"),
                               alert("HighLatency", "fp2")])
        status, body = await post(url, firing, srv.auth())
        assert status == 200 and body["stored"] == 2 and body["duplicates"] == 0
        # Alertmanager's re-send, and its HA peer's copy (another receiver name): stored once
        assert (await post(url, firing, srv.auth()))[1]["duplicates"] == 2
        peer = notification([alert("HighLatency", "fp1", severity="critical"),
                             alert("HighLatency", "fp2")], receiver="grace-peer")
        assert (await post(url, peer, srv.auth()))[1]["stored"] == 0
        resolved = notification([alert("HighLatency", "fp1", status="resolved",
                                       ends="2026-12-02T10:05:00Z")])
        status, body = await post(url, resolved, srv.auth())
        assert status == 200 and body["events"] == 2 and body["stored"] == 2
        assert (await post(url, resolved, srv.auth()))[1]["stored"] == 0

    alerts = await host_events(bus, host, "external_alert")
    assert [(e.data.fingerprint, e.data.status) for e in alerts] == [
        ("fp1", "firing"), ("fp2", "firing"), ("fp1", "resolved")]
    first = alerts[0].data
    assert isinstance(first, events.ExternalAlert)
    assert first.alertname == "HighLatency" and first.labels["severity"] == "critical"
    assert first.severity == "critical" and first.ends_at is None
    assert first.group_key == '{}:{alertname="HighLatency"}' and first.receiver == "grace"
    assert first.common_labels == {"alertname": "HighLatency"}
    assert first.external_url == "http://alertmanager:9093"
    assert first.generator_url.startswith("http://prometheus:9090/")
    assert first.starts_at is not None and first.starts_at.isoformat() == "2026-12-02T10:00:00+00:00"
    cleared = await host_events(bus, host, "condition_cleared")
    assert len(cleared) == 1
    c = cleared[0].data
    assert isinstance(c, events.ConditionCleared)
    assert c.condition == "external_alert" and c.active_s == 300.0
    assert c.key == {"alertname": "HighLatency", "fingerprint": "fp1"}


async def test_truncated_alerts_are_a_warning_and_kept_on_the_events(
        bus: Bus, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    host = new_host()
    async with serve(bus, tmp_path, host) as srv:
        with caplog.at_level(logging.WARNING, logger="projections.intake"):
            status, _ = await post(srv.url + intake.ALERTS_PATH,
                                   notification([alert("DiskFull", "fp9")], truncated=7),
                                   srv.auth())
    assert status == 200
    assert any("left 7 alerts out" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    (ev,) = await host_events(bus, host, "external_alert")
    assert isinstance(ev.data, events.ExternalAlert) and ev.data.truncated_alerts == 7


async def test_both_endpoints_refuse_without_the_token_or_with_a_wrong_one(
        bus: Bus, tmp_path: Path) -> None:
    host = new_host()
    async with serve(bus, tmp_path, host) as srv:
        body = notification([alert("X", "fp")])
        for path in (intake.ALERTS_PATH, intake.EVENTS_PATH):
            status, answer = await post(srv.url + path, body, {})
            assert status == 401 and "operator.token" in answer["error"]
            assert (await post(srv.url + path, body, srv.auth("wrong")))[0] == 401
    assert await host_events(bus, host) == []


async def test_a_cloudevent_of_a_known_type_is_validated_and_published(
        bus: Bus, tmp_path: Path) -> None:
    host = new_host()
    data = events.ModelCorruption(path="models/m.pkl", expected_sha256="a" * 64,
                                  actual_sha256="b" * 64, reason="hash mismatch", trigger="ext")
    ev = events.make_event(data, host=host, source="monitoring/ext")
    async with serve(bus, tmp_path, host) as srv:
        url = srv.url + intake.EVENTS_PATH
        status, body = await post(url, events.encode(ev), srv.auth())
        assert status == 200 and body["id"] == ev.id and not body["duplicate"]
        assert (await post(url, events.encode(ev), srv.auth()))[1]["duplicate"]
    stored = await host_events(bus, host)
    assert [e.id for e in stored] == [ev.id] and stored[0].data == data


async def test_bad_input_is_answered_4xx_with_the_reason_and_kept_in_rejected(
        bus: Bus, tmp_path: Path) -> None:
    host = new_host()
    before = (await bus.js.stream_info(topology.REJECTED)).state.last_seq
    good = events.make_event(events.CpuSaturation(scope="system", percent=95.0, threshold=90.0,
                                                  samples=3), host=host, source="t")
    as_dict = json.loads(events.encode(good))
    command = events.make_event(events.RestartKernel(kernel="api"), host=host, source="t")
    cases = [
        (intake.ALERTS_PATH, b'{"version": "3", "alerts": []}', 400, "version"),
        (intake.ALERTS_PATH, b"\xff\xfe not json", 400, "JSON"),
        (intake.EVENTS_PATH, json.dumps({**as_dict, "type": "no_such"}).encode(), 400,
         "unknown event type"),
        (intake.EVENTS_PATH, json.dumps({**as_dict, "data": {"percent": "hot"}}).encode(), 400,
         "percent"),
        (intake.EVENTS_PATH, json.dumps({**as_dict, "host": "a.>"}).encode(), 400, "subject"),
        (intake.EVENTS_PATH, events.encode(command), 400, "commands come from playbooks"),
        (intake.EVENTS_PATH, b"{" + b" " * (intake.MAX_EVENT_BODY + 10) + b"}", 413, "limit"),
    ]
    async with serve(bus, tmp_path, host) as srv:
        for path, body, code, why in cases:
            status, answer = await post(srv.url + path, body, srv.auth())
            assert status == code and why in answer["error"], (path, body[:60], answer)
    assert await host_events(bus, host) == []
    reasons = await rejected_since(bus, before)
    assert len(reasons) >= len(cases)
    assert any("commands come from playbooks" in r for r in reasons)
    assert any("limit" in r for r in reasons)


async def test_a_streamed_body_over_the_limit_is_refused_while_it_is_read(
        bus: Bus, tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(intake.MAX_EVENT_BODY // 65536 + 2):
            yield b" " * 65536

    async with (serve(bus, tmp_path, new_host()) as srv, aiohttp.ClientSession() as s,
                s.post(srv.url + intake.EVENTS_PATH, data=chunks(), headers=srv.auth()) as r):
        assert r.status == 413 and "limit" in (await r.json())["error"]
