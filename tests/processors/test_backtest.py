"""`grace playbooks test`: replay events through playbooks without side effects."""

from __future__ import annotations

import json
from pathlib import Path

from grace import events
from tests.processors.support import RESTART_BUDGET, ev, gap, write
from tests.support import grace_cmd


def jsonl(tmp: Path, evs: list[events.Event]) -> Path:
    p = tmp / "events.jsonl"
    p.write_bytes(b"\n".join(events.encode(e) for e in evs) + b"\n{not json}\n")
    return p


def test_backtest_prints_what_would_fire_and_why_not(tmp_path: Path) -> None:
    pb = write(tmp_path, "restart.yaml", RESTART_BUDGET)
    evs = jsonl(tmp_path, [ev(gap("api"), i * 60) for i in range(5)])
    result = grace_cmd("playbooks", "test", str(pb), "--events", str(evs))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum("FIRE     restart: restart_kernel" in line for line in lines) == 3
    assert sum("FIRE     restart: escalate_to_coding_agent" in line for line in lines) == 1
    assert any("SUPPRESS restart: budget_spent on web-1/kernel=api" in line for line in lines)
    assert any(line.startswith(f"bad input: {evs}:6: not valid JSON") for line in lines)
    assert lines[-1] == ("5 events replayed: 4 commands would fire, 0 observed, 0 would wait for "
                         "approval, 1 suppressed")


def test_backtest_json_output(tmp_path: Path) -> None:
    pb = write(tmp_path, "restart.yaml", RESTART_BUDGET)
    evs = jsonl(tmp_path, [ev(gap("api"), 0)])
    result = grace_cmd("playbooks", "test", str(pb), "--events", str(evs), "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    fired = [r for r in rows if r["type"] == "restart_kernel"]
    assert fired and fired[0]["params"] == {"kernel": "api", "instance": None}


def test_backtest_from_the_log(tmp_path: Path, nats_url: str) -> None:
    import asyncio
    import uuid

    from grace.bus import connect_and_ensure

    host = f"bt{uuid.uuid4().hex[:8]}"

    async def publish() -> None:
        b = await connect_and_ensure(nats_url, host=host, source="grace/test/bt")
        try:
            await b.publish(events.make_event(gap("db"), host=host, source="grace/test/bt"))
        finally:
            await b.close()

    asyncio.run(publish())
    pb = write(tmp_path, "restart.yaml", RESTART_BUDGET)
    result = grace_cmd("playbooks", "test", str(pb), "--from-log", "--since", "10m",
                       "--nats", nats_url, "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(r["type"] == "restart_kernel" and r["host"] == host for r in rows)


def test_backtest_honours_modes(tmp_path: Path) -> None:
    text = RESTART_BUDGET + """
  - name: page
    on: kernel_heartbeat_gap
    mode: approve
    do: [{restart_kernel: {kernel: "{kernel}"}}]
"""
    pb = write(tmp_path, "modes.yaml", text.replace("    do: [{restart_kernel: {kernel: \"{kernel}\"}}]\n"
                                                     "    budget:", "    mode: observe\n"
                                                     "    do: [{restart_kernel: {kernel: \"{kernel}\"}}]\n"
                                                     "    budget:", 1))
    evs = jsonl(tmp_path, [ev(gap("api"), 0)])
    result = grace_cmd("playbooks", "test", str(pb), "--events", str(evs))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("OBSERVE  restart: would send restart_kernel" in line for line in lines), lines
    assert any("APPROVE  page: restart_kernel" in line and "grace approve" in line for line in lines)
    assert not any("FIRE" in line for line in lines)
    assert lines[-1] == ("1 events replayed: 0 commands would fire, 1 observed, 1 would wait for "
                         "approval, 0 suppressed")
