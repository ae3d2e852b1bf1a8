"""The fleet: three hosts in network namespaces (bench/fleet_net.py), shared by the tests of one
module, which run its faults in sequence; it goes with the module, so the rest of a `make test`
session does not share the machine with it. Skipped, with the reason, without root or
`ip netns`. The namespaces, bridge and processes go at the end even when a test fails (the
fixture's finalizer, plus an atexit sweep of runs whose building process is gone)."""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import fleet_net
from grace.app.cluster import wait_for_meta_leader
from tests.fleet.ledger import Ledger

SUMMARY: list[str] = []  # the module's summary line, printed at the end of the run
FLEETS: list[fleet_net.Fleet] = []  # the fleet being tested, for the logs of a failure report


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fleet_net.Fleet]:
    reason = fleet_net.unavailable()
    if reason:
        pytest.skip(f"fleet tests need network namespaces: {reason}")
    atexit.register(fleet_net.remove_leftovers)
    f = fleet_net.Fleet(tmp_path_factory.mktemp("fleet"))
    FLEETS.append(f)
    try:
        f.build_network()
        f.start_nodes()
        asyncio.run(wait_for_meta_leader(f.url, timeout=60))
        f.init_systems()
        f.start_grace()
        yield f
    finally:
        f.close()  # its logs stay on disk: a failure in setup still reports them


@pytest.fixture(scope="module")
def ledger(fleet: fleet_net.Fleet) -> Ledger:
    """What the tests did to the world (faults, commands), checked against the log at the end."""
    return Ledger(fleet)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failed fleet test carries the tails of every fleet log (CI keeps no files)."""
    report: pytest.TestReport = yield
    if report.failed and call.when in ("setup", "call"):
        f = FLEETS[-1] if FLEETS else None
        if f is not None:
            report.sections.append(("fleet logs", f.log_tails()))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)


def tests_dir() -> Path:
    return Path(__file__).parent
