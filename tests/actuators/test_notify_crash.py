"""`grace act` killed (SIGKILL) while a notification is being retried: after a restart the
sink gets it exactly once, and the command has one result with the final HTTP status."""

from __future__ import annotations

from pathlib import Path

from grace import events
from grace.bus import Bus
from tests.actuators.helpers import make_config, results_for, unique_host
from tests.actuators.receiver import Receiver
from tests.actuators.test_stage import Actuator, cleanup  # noqa: F401 - a fixture
from tests.support import wait_for


async def test_a_kill_during_retries_neither_loses_nor_doubles_the_notification(
        tmp_path: Path, nats_url: str, bus: Bus, cleanup: list[Actuator]) -> None:  # noqa: F811
    rx = await Receiver(then=503).start()  # down until the test says otherwise
    try:
        cfg = make_config(tmp_path, host=unique_host("notify"),
                          notify=[{"name": "ops", "url": rx.url, "format": "cloudevents"}])
        act = Actuator(tmp_path / "grace.yaml", nats_url)
        cleanup.append(act)
        act.start()
        cmd = bus.event(events.Notify(sink="ops", text="verify failed on api", target="api",
                                      playbook="notify_verify_failed"), host=cfg.host)
        await bus.publish(cmd)
        await wait_for(lambda: len(rx.got) >= 2, timeout=60, interval=0.1)  # retrying
        act.kill()
        tried = len(rx.got)
        assert rx.accepted() == [] and await results_for(bus, cfg.host, cmd.id) == []
        rx.then = 202  # the sink comes back while no actuator runs
        act.start()

        async def result() -> list[events.Event]:
            return await results_for(bus, cfg.host, cmd.id)

        (done,) = await wait_for(result, timeout=90, interval=0.2)
        assert isinstance(done.data, events.CommandSucceeded), done.data
        assert done.data.details["status"] == 202 and done.data.details["resumed"] is True
        assert len(rx.got) > tried  # the restarted actuator posted it
        assert [g.body["id"] for g in rx.accepted()] == [cmd.id]  # once, not lost, not doubled
        assert {g.body["id"] for g in rx.got} == {cmd.id}
        act.stop()
        act.start()  # a second restart finds the intent done: nothing posted again
        await wait_for(lambda: (tmp_path / "act.log").read_text().count("consuming") >= 3,
                       timeout=60, interval=0.2)
        assert len(rx.accepted()) == 1
        assert len(await results_for(bus, cfg.host, cmd.id)) == 1
    finally:
        await rx.stop()
