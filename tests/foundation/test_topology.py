"""Streams are created idempotently; an incompatible existing stream is an error, never changed."""

from __future__ import annotations

import pytest
from nats.js import api

from grace import bus as bus_mod
from grace import topology
from grace.embedded import EmbeddedServer
from grace.errors import TopologyConflict


async def test_ensure_topology_twice_is_a_no_op(bus: bus_mod.Bus) -> None:
    before = {s.name: (await bus.js.stream_info(s.name)).created for s in topology.STREAMS}
    await topology.ensure_topology(bus.js)
    await topology.ensure_topology(bus.js)
    after = {s.name: (await bus.js.stream_info(s.name)).created for s in topology.STREAMS}
    assert before == after


async def test_the_log_is_immutable_by_configuration(bus: bus_mod.Bus) -> None:
    cfg = (await bus.js.stream_info(topology.EVENTS)).config
    assert cfg.deny_delete and cfg.deny_purge and not cfg.allow_rollup_hdrs
    assert cfg.storage == api.StorageType.FILE
    assert cfg.duplicate_window and cfg.duplicate_window > 0
    commands = (await bus.js.stream_info(topology.COMMANDS)).config
    assert commands.retention == api.RetentionPolicy.WORK_QUEUE


async def test_incompatible_existing_stream_names_stream_and_field(fresh_server: EmbeddedServer) -> None:
    b = await bus_mod.connect(fresh_server.url, host="t", source="t")
    try:
        await b.js.add_stream(api.StreamConfig(name=topology.EVENTS, subjects=["grace.events.>"],
                                               storage=api.StorageType.MEMORY))
        with pytest.raises(TopologyConflict) as info:
            await topology.ensure_topology(b.js)
        message = str(info.value)
        assert "GRACE_EVENTS" in message and "storage" in message and "deny_delete" in message
        still = (await b.js.stream_info(topology.EVENTS)).config
        assert still.storage == api.StorageType.MEMORY  # never silently changed
    finally:
        await b.close()


async def test_incompatible_durable_consumer_is_an_error(bus: bus_mod.Bus) -> None:
    name = "test-conflicting-consumer"
    await topology.ensure_consumer(bus.js, topology.EVENTS, topology.processor_consumer_config(
        name, topology.event_filter("trigger")))
    with pytest.raises(TopologyConflict, match="filter_subject"):
        await topology.ensure_consumer(bus.js, topology.EVENTS, topology.processor_consumer_config(
            name, topology.event_filter("check")))
