"""The transport contract: one class of tests, subclassed once per implementation.

In the style of eventsourcing's recorder test cases: `TransportContract` is not
collected itself; `test_fast.py` and `test_public.py` subclass it and set
`fast`. Every test runs against a real nats-server, on a stream of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.js import api

from grace import bus as bus_mod
from grace import events, topology
from grace.app.cluster import LocalCluster, wait_for_meta_leader
from grace.bus import Bus
from grace.consume import AckMode, Delivery, PullConsumer
from grace.embedded import EmbeddedServer
from grace.errors import BusError
from grace.transport import PayloadTooLarge
from tests.support import wait_for

Handler = Callable[[list[Delivery[bytes]]], Awaitable[None]]


class Lane:
    """A stream of the test's own: `<name>` capturing `<prefix>.>`."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        tag = uuid.uuid4().hex[:10]
        self.stream, self.prefix = f"T_{tag}", f"t.{tag}"

    async def create(self, replicas: int = 1) -> None:
        await self.bus.js.add_stream(api.StreamConfig(
            name=self.stream, subjects=[f"{self.prefix}.>"], num_replicas=replicas,
            duplicate_window=120.0))

    async def publish(self, payloads: list[bytes], ids: list[str] | None = None,
                      timeout: float = 30.0) -> list[Any]:
        """Publish with broker acks; ids default to the payloads (a retry dedupes)."""
        ids = ids or [hashlib.sha256(p).hexdigest() for p in payloads]
        items = [(f"{self.prefix}.m", p, i) for p, i in zip(payloads, ids, strict=True)]
        return await self.bus.publish_raw_many(items, timeout=timeout)

    def ephemeral(self, inactive: float = 30.0) -> Callable[[int], Awaitable[str]]:
        """ensure() for an ack-less ephemeral reader from the given sequence."""
        async def ensure(next_seq: int) -> str:
            cfg = topology.reader_consumer_config(next_seq, None)
            cfg.inactive_threshold = inactive
            return await topology.ensure_consumer(self.bus.js, self.stream, cfg)
        return ensure

    def durable(self, name: str = "d", max_waiting: int = 16) -> Callable[[int], Awaitable[str]]:
        """ensure() for an AckAll durable, re-created from the given sequence when missing."""
        async def ensure(next_seq: int) -> str:
            cfg = api.ConsumerConfig(
                durable_name=name, deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(next_seq, 1), ack_policy=api.AckPolicy.ALL,
                max_ack_pending=20_000, ack_wait=30.0, max_waiting=max_waiting)
            return await topology.ensure_consumer(self.bus.js, self.stream, cfg)
        return ensure


class Reader:
    """A running PullConsumer that records every delivery by sequence."""

    def __init__(self, bus: Bus, lane: Lane, ensure: Callable[[int], Awaitable[str]], *,
                 ack: AckMode = "none", start_seq: int = 1, expires: float = 10.0,
                 stall: float = 0.0) -> None:
        self.seqs: list[int] = []
        self.data: dict[int, bytes] = {}
        self.stall = stall

        async def handle(items: list[Delivery[bytes]]) -> None:
            for d in items:
                self.seqs.append(d.seq)
                self.data[d.seq] = d.item
            if self.stall:
                time.sleep(self.stall)  # noqa: ASYNC251 - the whole process stalls, on purpose
                self.stall = 0.0

        self.consumer: PullConsumer[bytes] = PullConsumer(
            bus, lane.stream, ensure, handle, decoder=bytes, stage="contract", ack=ack,
            start_seq=start_seq, expires=expires)
        self.task = asyncio.create_task(self.consumer.run())

    async def until(self, n: int, timeout: float = 60.0) -> None:
        await wait_for(lambda: len(set(self.seqs)) >= n, timeout=timeout)

    async def stop(self) -> None:
        self.consumer.stop()
        await self.task

    def assert_exactly(self, first: int, last: int) -> None:
        assert sorted(self.seqs) == list(range(first, last + 1)), "lost or duplicated deliveries"


class TransportContract:
    """What every transport implementation must do; subclasses set `fast`."""

    fast: bool

    @pytest_asyncio.fixture(loop_scope="session")
    async def bus(self, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bus]:
        monkeypatch.delenv("GRACE_FAST_PATH", raising=False)
        b = await bus_mod.connect_and_ensure(nats_url, host="test", source="grace/test/contract",
                                             fast_path=self.fast)
        assert b.transport.fast is self.fast
        yield b
        await b.close()

    @pytest_asyncio.fixture(loop_scope="session")
    async def lane(self, bus: Bus) -> AsyncIterator[Lane]:
        lane = Lane(bus)
        await lane.create()
        yield lane
        await bus.js.delete_stream(lane.stream)

    # ------------------------------------------------------------------ publish

    async def test_publish_is_acked_and_deduplicated_by_message_id(self, lane: Lane) -> None:
        ids = [f"id-{i}" for i in range(50)]
        acks = await lane.publish([b"%d" % i for i in range(50)], ids)
        assert [a.seq for a in acks] == list(range(1, 51))
        assert not any(a.duplicate for a in acks)
        again = await lane.publish([b"other" for _ in range(50)], ids)
        assert all(a.duplicate for a in again)
        info = await lane.bus.js.stream_info(lane.stream)
        assert info.state.messages == 50

    async def test_the_message_id_travels_as_a_header_and_headers_are_not_status(
            self, lane: Lane) -> None:
        await lane.publish([b"with-id"], ["the-id"])
        await lane.bus.js.publish(f"{lane.prefix}.h", b"", headers={"X-Grace": "1"})
        msg = await lane.bus.js.get_msg(lane.stream, 1)
        assert (msg.headers or {}).get("Nats-Msg-Id") == "the-id"
        r = Reader(lane.bus, lane, lane.ephemeral())
        await r.until(2)
        await r.stop()
        assert r.data == {1: b"with-id", 2: b""}  # an empty body with headers is a message

    async def test_a_subject_no_stream_captures_is_a_bus_error(self, bus: Bus) -> None:
        with pytest.raises(BusError, match=r"503|no stream"):
            await bus.publish_raw_many([(f"nowhere.{uuid.uuid4().hex}", b"x", "x")], timeout=5)

    async def test_an_oversized_message_is_refused_before_sending_and_the_connection_stays(
            self, lane: Lane) -> None:
        limit = lane.bus.nc.max_payload
        reconnects = lane.bus.nc.stats["reconnects"]
        with pytest.raises(PayloadTooLarge) as err:
            await lane.publish([b"small", b"x" * (limit + 1)])
        assert err.value.limit == limit and err.value.size > limit
        assert str(limit) in str(err.value)
        assert lane.bus.nc.is_connected and lane.bus.nc.stats["reconnects"] == reconnects
        info = await lane.bus.js.stream_info(lane.stream)
        assert info.state.messages == 0  # not even the small one: checked before anything is sent
        await lane.publish([b"fine"])
        assert (await lane.bus.js.stream_info(lane.stream)).state.messages == 1

    async def test_publishing_on_a_closed_connection_is_a_bus_error(
            self, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("GRACE_FAST_PATH", raising=False)
        b = await bus_mod.connect(nats_url, host="h", source="grace/h/contract",
                                  fast_path=self.fast)
        await b.close()
        with pytest.raises(BusError, match="closed"):
            await b.publish_raw_many([("grace.events.trigger.x.h", b"{}", "closed-1")])

    async def test_a_stage_sends_an_oversized_event_to_rejected_with_the_reason(
            self, bus: Bus) -> None:
        big = bus.event(events.CpuSaturation(scope="system", percent=99.0, threshold=90, samples=3,
                                             trigger="x" * (bus.nc.max_payload + 10)))
        ok = bus.event(events.CpuSaturation(scope="system", percent=1.0, threshold=90, samples=3))
        with pytest.raises(PayloadTooLarge, match="cpu_saturation"):
            await bus.publish(big)
        before = (await bus.js.stream_info(topology.REJECTED)).state.messages
        acks = await bus.publish_many([big, ok])
        assert len(acks) == 1
        assert (await bus.js.stream_info(topology.REJECTED)).state.messages == before + 1
        last = await bus.js.get_last_msg(topology.REJECTED, topology.rejected_subject("contract"))
        reason = (last.headers or {}).get(topology.H_REJECT_REASON, "")
        assert "cpu_saturation" in reason and "max_payload" in reason
        assert bus.nc.is_connected

    async def test_a_handler_that_emits_an_oversized_event_is_not_retried_forever(
            self, lane: Lane) -> None:
        bus = lane.bus
        handled: list[bytes] = []

        async def handle(items: list[Delivery[bytes]]) -> None:
            for d in items:
                if d.item == b"make-it-big":
                    await bus.publish(bus.event(events.CpuSaturation(
                        scope="system", percent=1.0, threshold=90, samples=3,
                        trigger="x" * (bus.nc.max_payload + 10))))
                handled.append(d.item)

        before = (await bus.js.stream_info(topology.REJECTED)).state.messages
        await lane.publish([b"make-it-big", b"next"])
        c: PullConsumer[bytes] = PullConsumer(bus, lane.stream, lane.durable(), handle,
                                              decoder=bytes, stage="contract-big", ack="all")
        task = asyncio.create_task(c.run())
        await wait_for(lambda: b"next" in handled, timeout=30)
        c.stop()
        await task
        assert (await bus.js.stream_info(topology.REJECTED)).state.messages == before + 1
        last = await bus.js.get_last_msg(topology.REJECTED,
                                         topology.rejected_subject("contract-big"))
        reason = (last.headers or {}).get(topology.H_REJECT_REASON, "")
        assert "cpu_saturation" in reason and "max_payload" in reason
        assert bus.nc.is_connected

    # ------------------------------------------------------------------ consume

    async def test_split_reads_large_and_many_small_messages_arrive_whole_and_once(
            self, lane: Lane) -> None:
        large = [hashlib.sha256(b"%d" % i).digest() * (300_000 // 32) for i in range(12)]
        small = [b"s%d" % i for i in range(5000)]
        await lane.publish(large)
        await lane.publish(small)
        r = Reader(lane.bus, lane, lane.ephemeral())
        await r.until(len(large) + len(small))
        await r.stop()
        r.assert_exactly(1, len(large) + len(small))
        assert [r.data[i + 1] for i in range(len(large))] == large
        assert r.data[len(large) + 1] == b"s0" and r.data[len(large) + len(small)] == b"s4999"

    async def test_a_range_read_gets_exactly_that_range(self, lane: Lane) -> None:
        await lane.publish([b"%d" % i for i in range(300)])
        r = Reader(lane.bus, lane, lane.ephemeral(), start_seq=101)
        await r.until(200)
        await r.stop()
        r.assert_exactly(101, 300)

    async def test_a_live_reader_gets_what_is_published_after_it_started(
            self, lane: Lane) -> None:
        r = Reader(lane.bus, lane, lane.durable(), ack="all")
        await wait_for(lambda: r.consumer.feed.name, timeout=10)
        for k in range(3):
            await lane.publish([b"live-%d" % k])
            await r.until(k + 1)
        await r.stop()
        r.assert_exactly(1, 3)
        info = await lane.bus.js.consumer_info(lane.stream, "d")
        assert info.ack_floor.stream_seq == 3  # acked after handling

    async def test_expired_and_empty_pull_requests_404_408_are_asked_again(
            self, lane: Lane) -> None:
        r = Reader(lane.bus, lane, lane.ephemeral(), expires=1.0)
        await asyncio.sleep(3.5)  # several requests end with 404/408 meanwhile
        await lane.publish([b"late"])
        await r.until(1)
        await r.stop()
        r.assert_exactly(1, 1)
        assert r.consumer.feed.recreated == 0

    async def test_idle_heartbeats_100_keep_an_idle_consumer_as_it_is(self, lane: Lane) -> None:
        r = Reader(lane.bus, lane, lane.ephemeral())
        hb = 0.4 * r.consumer.expires
        await asyncio.sleep(2 * hb + 1.5)  # long enough to miss two heartbeats, were there none
        assert r.consumer.feed.recreated == 0
        await lane.publish([b"after"])
        await r.until(1)
        await r.stop()
        r.assert_exactly(1, 1)

    async def test_a_409_refusal_is_logged_as_a_warning_not_swallowed(
            self, lane: Lane, caplog: pytest.LogCaptureFixture) -> None:
        if not self.fast:
            pytest.skip("nats-py's fetch treats every 409 as temporary and does not surface it")
        caplog.set_level(logging.WARNING)

        async def ensure(_next_seq: int) -> str:  # refuses the reader's 2000-message requests
            # max_batch is not in nats-py's ConsumerConfig: the JetStream API directly
            cfg = {"durable_name": "small", "ack_policy": "all", "max_batch": 10}
            await lane.bus.nc.request(f"$JS.API.CONSUMER.CREATE.{lane.stream}.small",
                                      json.dumps({"stream_name": lane.stream, "config": cfg}).encode(),
                                      timeout=5)
            return "small"

        r = Reader(lane.bus, lane, ensure, ack="all")
        await wait_for(lambda: "409 Exceeded MaxRequestBatch" in caplog.text, timeout=15)
        await r.stop()
        assert r.consumer.feed.recreated == 0

    @pytest.mark.parametrize("kind", ["ephemeral", "durable"])
    async def test_a_consumer_deleted_under_a_running_reader_is_recreated_losing_nothing(
            self, lane: Lane, kind: str, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.WARNING)
        ensure = lane.ephemeral() if kind == "ephemeral" else lane.durable()
        r = Reader(lane.bus, lane, ensure, ack="none" if kind == "ephemeral" else "all")
        await lane.publish([b"%d" % i for i in range(500)])
        await r.until(500)
        await lane.bus.js.delete_consumer(lane.stream, r.consumer.feed.name)  # `nats consumer rm`
        await lane.publish([b"%d" % i for i in range(500, 1000)])
        await r.until(1000)
        await r.stop()
        r.assert_exactly(1, 1000)
        assert r.consumer.feed.recreated >= 1
        assert "re-created" in caplog.text

    async def test_a_consumer_past_its_inactive_threshold_while_the_process_stalled(
            self, lane: Lane) -> None:
        # the test's own consumer config: gone 1 s after its last pull request expired
        r = Reader(lane.bus, lane, lane.ephemeral(inactive=1.0), expires=2.0, stall=4.0)
        await lane.publish([b"first"])  # handling it stalls the whole process for 4 s
        await r.until(1)
        await wait_for(lambda: r.stall == 0.0, timeout=20)
        await lane.publish([b"%d" % i for i in range(200)])
        await r.until(201)
        await r.stop()
        r.assert_exactly(1, 201)

    async def test_a_server_restart_under_a_running_reader_loses_nothing(
            self, fresh_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("GRACE_FAST_PATH", raising=False)
        b = await bus_mod.connect_and_ensure(fresh_server.url, host="t", source="grace/t/contract",
                                             fast_path=self.fast)
        lane = Lane(b)
        await lane.create()
        r = Reader(b, lane, lane.durable(), ack="all", expires=2.0)
        await lane.publish([b"%d" % i for i in range(1000)])
        await r.until(300)
        fresh_server.kill()
        await asyncio.sleep(0.3)
        fresh_server.restart()
        await wait_for(lambda: b.nc.is_connected, timeout=15)
        for _ in range(40):
            try:
                await lane.publish([b"%d" % i for i in range(1000, 1500)])
                break
            except BusError:  # JetStream may still be recovering its store
                await asyncio.sleep(0.25)
        await r.until(1500)
        await r.stop()
        await b.close()
        assert sorted(set(r.seqs)) == list(range(1, 1501))
        # AckAll: what was handled but not yet acked when the server died comes again; the
        # reader skips it, so each sequence is handled once
        assert len(r.seqs) == 1500

    @pytest.mark.slow
    async def test_a_leader_change_on_a_three_node_cluster_loses_nothing(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("GRACE_FAST_PATH", raising=False)
        with LocalCluster(tmp_path / "cluster") as cluster:
            await wait_for_meta_leader(cluster.url)
            b = await bus_mod.connect_and_ensure(cluster.url, host="c", source="grace/c/contract",
                                                 replicas=3, fast_path=self.fast)
            try:
                lane = Lane(b)
                await lane.create(replicas=3)
                r = Reader(b, lane, lane.durable(), ack="all", expires=2.0)
                await lane.publish([b"%d" % i for i in range(500)])
                await r.until(200)
                for subject in (f"$JS.API.STREAM.LEADER.STEPDOWN.{lane.stream}",
                                f"$JS.API.CONSUMER.LEADER.STEPDOWN.{lane.stream}.d"):
                    reply = await b.nc.request(subject, b"", timeout=10)
                    assert b'"success":true' in reply.data.replace(b" ", b""), reply.data
                for _ in range(40):
                    try:
                        await lane.publish([b"%d" % i for i in range(500, 1000)], timeout=5)
                        break
                    except BusError:  # while the new leader is elected
                        await asyncio.sleep(0.25)
                await r.until(1000)
                await r.stop()
                assert sorted(set(r.seqs)) == list(range(1, 1001))
                assert len(r.seqs) == 1000
            finally:
                await b.close()
