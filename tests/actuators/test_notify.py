"""The notify action against a local HTTP receiver and a real bus: retries, refusals, the
three body formats, at most one delivery in effect per command."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from actuators.executor import Executor
from actuators.intents import Intent, IntentStore
from grace import bus as bus_mod
from grace import events
from grace.bus import Bus
from grace.config import Config
from tests.actuators.helpers import make_config, results_for, unique_host
from tests.actuators.receiver import Receiver

PD_400 = json.dumps({"status": "invalid event", "message": "Event object is invalid",
                     "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]})


@dataclass
class Sinks:
    cfg: Config
    bus: Bus
    executor: Executor
    receiver: Receiver

    def notify(self, **params: Any) -> events.Event:
        payload = events.Notify(**{"text": "the fix of kernel_heartbeat_gap did not show",
                                   "target": "web-1/kernel=api", "playbook": "notify_verify_failed",
                                   **params})
        return self.bus.event(payload, host=self.cfg.host)


@pytest_asyncio.fixture(loop_scope="session")
async def sinks(tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch
                ) -> AsyncIterator[Sinks]:
    """Sinks ops (cloudevents), chat (slack), pager (pagerduty, key from the environment),
    all posting to one local receiver; retries at each format's default."""
    rx = await Receiver().start()
    monkeypatch.setenv("GRACE_TEST_PD_KEY", "k" * 32)
    cfg = make_config(tmp_path, host=unique_host("notify"), notify=[
        {"name": "ops", "url": rx.url, "format": "cloudevents"},
        {"name": "chat", "url": rx.url, "format": "slack"},
        {"name": "pager", "url": rx.url, "format": "pagerduty", "routing_key_env": "GRACE_TEST_PD_KEY",
         "retry": {"max": 0, "backoff": "30s"}},
        {"name": "flaky", "url": rx.url, "format": "cloudevents", "retry": {"max": 1, "backoff": "1s"}},
    ])
    b = await bus_mod.connect_and_ensure(nats_url, host=cfg.host, source="grace/test/actuator")
    ex = Executor(cfg, b, await IntentStore.open(b, cfg.host), None)
    try:
        yield Sinks(cfg, b, ex, rx)
    finally:
        await b.close()
        await rx.stop()


async def test_a_sink_failing_for_a_while_gets_the_notification_exactly_once(sinks: Sinks) -> None:
    sinks.receiver.script = [(503, "upstream down"), (429, '{"message": "slow down"}')]
    sinks.receiver.retry_after = "1"
    cmd = sinks.notify(sink="ops")
    result = await sinks.executor.handle(cmd)
    assert isinstance(result.data, events.CommandSucceeded), result.data
    assert result.data.details["status"] == 202 and result.data.details["tries"] == 3
    assert [g.status for g in sinks.receiver.got] == [503, 429, 202]
    assert {g.body["id"] for g in sinks.receiver.got} == {cmd.id}  # the same event each try
    again = await sinks.executor.handle(cmd)  # redelivered: the intent is done
    assert again.id == result.id
    assert [g.body["id"] for g in sinks.receiver.accepted()] == [cmd.id]
    assert len(await results_for(sinks.bus, sinks.cfg.host, cmd.id)) == 1
    intent = await sinks.executor.intents.get(cmd.id)
    assert intent is not None and any("HTTP 503" in s for s in intent.steps)
    assert intent.steps[-1] == "delivered after 3 tries: HTTP 202"


async def test_a_400_fails_at_once_with_the_sinks_reason(sinks: Sinks) -> None:
    sinks.receiver.script = [(400, PD_400)]
    result = await sinks.executor.handle(sinks.notify(sink="pager"))
    assert isinstance(result.data, events.CommandFailed), result.data
    assert "HTTP 400" in result.data.reason and "Event object is invalid" in result.data.reason
    assert "routing_key' is incorrect" in result.data.reason and "not retried" in result.data.reason
    assert (result.data.details["status"], result.data.details["tries"]) == (400, 1)
    assert len(sinks.receiver.got) == 1
    assert "k" * 32 not in json.dumps(result.data.details)  # the key never reaches the log


async def test_retries_used_up_fail_with_the_last_answer(sinks: Sinks) -> None:
    sinks.receiver.script = [(503, "down"), (502, "bad gateway")]
    result = await sinks.executor.handle(sinks.notify(sink="flaky"))
    assert isinstance(result.data, events.CommandFailed), result.data
    assert "after 2 tries" in result.data.reason and "HTTP 502: bad gateway" in result.data.reason
    assert result.data.details["status"] == 502
    assert sinks.receiver.accepted() == []


async def test_a_sink_that_does_not_listen_is_retried_then_fails(sinks: Sinks, tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "closed", host=sinks.cfg.host, notify=[
        {"name": "gone", "url": "http://127.0.0.1:9/hook", "retry": {"max": 1, "backoff": "1s"}}])
    ex = Executor(cfg, sinks.bus, sinks.executor.intents, None)
    result = await ex.handle(sinks.notify(sink="gone"))
    assert isinstance(result.data, events.CommandFailed), result.data
    assert "after 2 tries" in result.data.reason and "Connect" in result.data.reason
    assert result.data.details["status"] == 0  # no HTTP answer at all


async def test_cloudevents_body_is_the_command_as_a_structured_cloudevent(sinks: Sinks) -> None:
    cmd = sinks.notify(sink="ops", severity="error")
    assert isinstance((await sinks.executor.handle(cmd)).data, events.CommandSucceeded)
    (got,) = sinks.receiver.got
    assert got.content_type == "application/cloudevents+json"
    assert got.body["specversion"] == "1.0" and got.body["id"] == cmd.id
    assert got.body["type"] == "notify" and got.body["host"] == sinks.cfg.host
    assert got.body["data"]["text"] == "the fix of kernel_heartbeat_gap did not show"
    assert got.body["data"]["severity"] == "error" and got.body["data"]["sink"] == "ops"
    assert events.decode(json.dumps(got.body).encode()).id == cmd.id  # Grace reads it back


async def test_slack_body_has_text_and_blocks(sinks: Sinks) -> None:
    assert isinstance((await sinks.executor.handle(sinks.notify(sink="chat"))).data,
                      events.CommandSucceeded)
    (got,) = sinks.receiver.got
    assert got.content_type == "application/json"
    assert got.body["text"] == "the fix of kernel_heartbeat_gap did not show"
    section, context = got.body["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": got.body["text"]}}
    assert context["type"] == "context" and "web-1/kernel=api" in context["elements"][0]["text"]


async def test_pagerduty_body_triggers_and_resolves_by_the_targets_dedup_key(sinks: Sinks) -> None:
    for action in ("trigger", "resolve"):
        result = await sinks.executor.handle(sinks.notify(sink="pager", event_action=action,
                                                          severity="critical"))
        assert isinstance(result.data, events.CommandSucceeded), result.data
    trigger, resolve = (g.body for g in sinks.receiver.got)
    assert trigger["routing_key"] == "k" * 32 and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "web-1/kernel=api" == resolve["dedup_key"]
    payload = trigger["payload"]
    assert payload["summary"] == "the fix of kernel_heartbeat_gap did not show"
    assert payload["source"] == sinks.cfg.host and payload["severity"] == "critical"
    assert resolve["event_action"] == "resolve" and "payload" not in resolve


async def test_a_delivery_acknowledged_before_a_crash_is_not_posted_again(sinks: Sinks) -> None:
    """The actuator died after the sink's 2xx was noted in the intent, before the result."""
    cmd = sinks.notify(sink="ops")
    intent = Intent(command_id=cmd.id, action="notify", state="started",
                    target={"sink": "ops", "format": "cloudevents", "body": {"id": cmd.id}},
                    steps=["try 1: HTTP 503: down; retrying in 1s", "delivered after 2 tries: HTTP 202"])
    await sinks.executor.intents.put(intent)
    result = await sinks.executor.handle(cmd)
    assert isinstance(result.data, events.CommandSucceeded), result.data
    assert result.data.details["status"] == 202 and result.data.details["posted_again"] is False
    assert sinks.receiver.got == []


async def test_a_sink_config_does_not_name_fails_saying_which_exist(sinks: Sinks) -> None:
    result = await sinks.executor.handle(sinks.notify(sink="pagr"))
    assert isinstance(result.data, events.CommandFailed)
    assert "no sink 'pagr'" in result.data.reason and "ops, chat, pager, flaky" in result.data.reason
    assert sinks.receiver.got == []


async def test_a_slack_refusal_in_plain_text_is_the_reason(sinks: Sinks) -> None:
    sinks.receiver.script = [(404, "no_service")]
    result = await sinks.executor.handle(sinks.notify(sink="chat"))
    assert isinstance(result.data, events.CommandFailed), result.data
    assert "HTTP 404: no_service" in result.data.reason and len(sinks.receiver.got) == 1


async def test_every_notification_arrives_once_through_a_sink_failing_for_a_while(
        sinks: Sinks) -> None:
    sinks.receiver.script = [(503, "down"), (429, "busy"), (503, "down"), (500, "oops")]
    cmds = [sinks.notify(sink="ops", target=f"web-1/kernel=k{i}") for i in range(3)]
    for cmd in [*cmds, *cmds]:  # each one delivered by JetStream twice
        result = await sinks.executor.handle(cmd)
        assert isinstance(result.data, events.CommandSucceeded), result.data
        assert result.data.details["status"] == 202
    accepted = [g.body["id"] for g in sinks.receiver.accepted()]
    assert sorted(accepted) == sorted(c.id for c in cmds)  # each exactly once
    assert len(sinks.receiver.got) == 3 + 4  # 4 refused tries, then nothing more
