"""The coding-agent hand-off: a durable fix task, Grace's own handler, review_code."""

from __future__ import annotations

import asyncio
import json
import sys

from actuators.agent import AgentHandler
from grace import events, topology
from tests.actuators.conftest import World
from tests.actuators.helpers import events_of, make_config
from tests.support import wait_for

GOOD = "def area(w, h):\n    return w * h\n"
BAD = "def area(w, h)\n    return w * h\n"
TEST = "from shapes import area\n\ndef test_area():\n    assert area(2, 3) == 6\n"


def write_code(world: World, source: str) -> None:
    (world.root / "src" / "tests").mkdir(parents=True, exist_ok=True)
    (world.root / "src" / "shapes.py").write_text(source)
    (world.root / "src" / "tests" / "test_shapes.py").write_text(TEST)
    (world.root / "src" / "tests" / "conftest.py").write_text(
        "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent))\n")


async def tasks_of(world: World) -> list[events.Event]:
    """The fix tasks of this host on GRACE_TASKS (an ephemeral pull consumer)."""
    found: list[events.Event] = []
    sub = await world.bus.js.pull_subscribe(topology.task_subject(world.cfg.host, "*"), durable=None,
                                            stream=topology.TASKS)
    try:
        found.extend(events.decode(msg.data) for msg in await sub.fetch(10, timeout=2))
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return found


async def test_escalation_publishes_a_durable_task_and_the_handler_reports(world: World) -> None:
    cfg = make_config(world.root, host=world.cfg.host, code={"root": "src", "tests": "src/tests"},
                      agent={"command": [sys.executable, "-c",
                                         ("import json,sys; t=json.load(open(sys.argv[1]));"
                                          "print('agent got', t['data']['task_id'])")]})
    world.executor.cfg = cfg
    write_code(world, BAD)
    cmd = world.command(events.EscalateToCodingAgent(summary="NameError storm in shapes",
                                                     files=["shapes.py", "../../etc/passwd"],
                                                     playbook="repeated_errors"))
    result = await world.executor.handle(cmd)
    assert isinstance(result.data, events.CommandSucceeded), result.data
    task_id = result.data.details["task_id"]
    (task,) = [t for t in await tasks_of(world) if t.id == task_id]
    assert isinstance(task.data, events.FixTask) and task.data.command_id == cmd.id
    assert task.data.files == ["shapes.py", "../../etc/passwd"] and task.data.kind == "fix"

    handler = AgentHandler(cfg, world.bus)
    run = asyncio.create_task(handler.run())
    try:
        await wait_for(lambda: handler.reports >= 1, timeout=60)
    finally:
        handler.stop()
        await run
    reports = [e for e in await events_of(world.bus, cfg.host, "task", "fix_report")
               if e.data.task_id == task_id]
    assert len(reports) == 1
    report = reports[0].data
    assert report.outcome == "failed"
    assert "not checked (outside code root" in report.summary and "../../etc/passwd" in report.summary
    assert not any("passwd" in json.dumps(c) for c in report.checks if c["check"] != "agent_command")
    by_check = {c["check"]: c for c in report.checks}
    assert not by_check["py_compile"]["ok"] and "line 1" in by_check["py_compile"]["output"]
    assert not by_check["pytest"]["ok"]  # the test naming shapes fails on the syntax error
    assert by_check["agent_command"]["ok"] and f"agent got {task_id}" in by_check["agent_command"]["output"]
    assert json.loads((cfg.data_path / "tasks" / f"{task_id}.json").read_text())["type"] == "fix_task"


async def test_review_code_hands_a_review_task_to_the_handler_which_reports_findings(world: World) -> None:
    cfg = make_config(world.root, host=world.cfg.host, code={"root": "src"})
    world.executor.cfg = cfg
    write_code(world, BAD)
    (world.root / "src" / "ok.py").write_text(GOOD)
    result = await world.executor.handle(world.command(events.ReviewCode(files=["shapes.py", "ok.py"])))
    assert isinstance(result.data, events.CommandSucceeded)
    task_id = result.data.details["task_id"]
    (task,) = [t for t in await tasks_of(world) if t.id == task_id]
    assert task.data.kind == "review" and task.data.files == ["shapes.py", "ok.py"]
    handler = AgentHandler(cfg, world.bus)
    run = asyncio.create_task(handler.run())
    try:
        await wait_for(lambda: handler.reports >= 1, timeout=60)
    finally:
        handler.stop()
        await run
    (report,) = [e.data for e in await events_of(world.bus, cfg.host, "task", "fix_report")
                 if e.data.task_id == task_id]
    assert report.kind == "review" and report.outcome == "failed"
    oks = {c["file"].rsplit("/", 1)[-1]: c["ok"] for c in report.checks if c["check"] == "py_compile"}
    assert oks == {"shapes.py": False, "ok.py": True}
    escape = await world.executor.handle(world.command(events.ReviewCode(files=["../grace.yaml"])))
    assert isinstance(escape.data, events.CommandFailed) and "outside the code root" in escape.data.reason
