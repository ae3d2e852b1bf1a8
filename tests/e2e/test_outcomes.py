"""`grace up` on the example at its SHIPPED settings (30 s cycles, shipped thresholds): an
escalation with nothing to check is reported `unverified`, never `passed`.

Only the ports differ from examples/grace.yaml, so this module can run beside others.
"""

from __future__ import annotations

import pytest

from grace import bus as bus_mod
from grace import events
from tests.e2e.conftest import Running, eventually, expect, succeeded, watch_from_now

pytestmark = pytest.mark.slow
INTERVAL_S = 30  # the shipped monitor.interval: detection takes up to one cycle


async def test_an_error_storm_naming_no_code_is_escalated_and_reported_unverified(
        shipped_up: Running, shipped_bus: bus_mod.Bus) -> None:
    w = await watch_from_now(shipped_bus)
    try:
        shipped_up.fault("error-storm")  # 30 payment timeouts: no code file named anywhere
        found = await expect(w, events.RepeatedErrorPattern, lambda d: "payment" in d.template,
                             timeout=2 * INTERVAL_S + 15)
        done = await expect(w, events.CommandSucceeded, succeeded("escalate_to_coding_agent"),
                            timeout=30)
        task_id = done.details["task_id"]
        report = await expect(w, events.FixReport, lambda d: d.task_id == task_id, timeout=60)
    finally:
        await w.close()
    assert found.files == [] and done.details["files"] == []
    assert report.outcome == "unverified" and report.checks == []
    assert not any(isinstance(e.data, events.FixReport) and e.data.task_id == task_id
                   and e.data.outcome == "passed" for e in w.seen)

    def dashboard_counts_it() -> bool:
        d = shipped_up.dashboard()
        if "fix_tasks" not in d:  # the fix_tasks block is added by the dashboard work of issue 12
            return True
        return bool(d["fix_tasks"].get("unverified", 0) >= 1)

    await eventually(dashboard_counts_it, timeout=30)
