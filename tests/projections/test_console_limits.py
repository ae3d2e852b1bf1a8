"""Budget left and cooldown until on the console's playbooks view: the processor's own
decisions (a real Matcher in virtual time) projected into DuckDB, read by the view's SQL."""

from __future__ import annotations

from pathlib import Path

from grace import events
from projections.console import queries
from projections.reducer import Reducer
from projections.store import Store
from tests.processors.support import at, cleared, ev, gap, matcher, run

LIMITED = """
playbooks:
  - name: restart
    on: kernel_heartbeat_gap
    group_by: [kernel]
    do: [{restart_kernel: {kernel: "{kernel}"}}]
    cooldown: 10m
    budget: {max: 3, per: 1h, then: escalate_to_coding_agent}
"""


def _log() -> list[events.Event]:
    """Findings and the decisions the processor took on them: api acts at 0 s and 700 s."""
    findings = [ev(gap(), 0), ev(cleared("kernel_heartbeat_gap", kernel="api"), 60),
                ev(gap(), 700)]
    return sorted([*findings, *run(matcher(LIMITED), *findings)], key=lambda e: e.time)


def _view(tmp_path: Path, now_s: float) -> dict[str, object]:
    store = Store.open(tmp_path / f"p{now_s}.duckdb")
    store.apply(Reducer().reduce([(i + 1, f"grace.events.{e.category}.{e.type}.{e.host}",
                                   events.encode(e)) for i, e in enumerate(_log())]))
    rows = queries.playbooks(store.con, at(now_s).replace(tzinfo=None))
    return next(r for r in rows if r["playbook"] == "restart" and r["target"] == "web-1/kernel=api")


def test_decisions_record_the_playbooks_limits() -> None:
    issued = [e.data for e in _log() if isinstance(e.data, events.CommandIssued)]
    assert len(issued) == 2
    assert {(d.cooldown_s, d.budget_max, d.budget_per_s) for d in issued} == {(600.0, 3, 3600.0)}


def test_budget_left_and_cooldown_until_come_from_the_log(tmp_path: Path) -> None:
    cooling = _view(tmp_path, 800)
    assert cooling["fired"] == 2
    assert (cooling["budget_max"], cooling["budget_left"]) == (3, 1)
    assert cooling["cooldown_until"] == at(1300).strftime("%Y-%m-%dT%H:%M:%SZ")  # 700 s + 10m
    later = _view(tmp_path, 3700)  # the act at 0 s left the hour; the cooldown ran out
    assert (later["budget_left"], later["cooldown_until"]) == (2, None)
