"""`grace up` talks after boot: one line per incident step on its stdout; `--quiet` is silent."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from grace import events
from grace.app import demo
from tests.e2e.conftest import (
    Running,
    _bus_of,
    _configure,
    booted,
    expect,
    register,
    succeeded,
    watch_from_now,
)

STEP = re.compile(r"^\d\d:\d\d:\d\d demo \| (finding|cleared|action|suppressed|observed|"
                  r"approval|result|verified|NOT fixed) ", re.M)


def output_after_boot(running: Running) -> str:
    text = running.log.read_text(errors="replace")
    return text.split("phase 7/7", 1)[1]


def wait_for_lines(running: Running, patterns: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = output_after_boot(running)
        if all(re.search(p, out, re.M) for p in patterns):
            return out
        if time.monotonic() > deadline:
            missing = [p for p in patterns if not re.search(p, out, re.M)]
            raise AssertionError(f"grace up did not print {missing}; after boot it said:\n"
                                 f"{out[-3000:]}")
        time.sleep(0.2)


def system(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp(name) / "system"
    demo.init_copy(root)
    register(root)
    return root, _configure(root)


def test_grace_up_prints_the_finding_the_command_and_its_result(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    root, cfg = system(tmp_path_factory, "talk")
    with booted(root, cfg) as running:
        running.fault("model-corruption")
        out = wait_for_lines(running, [
            r"^\d\d:\d\d:\d\d demo \| finding +model_corruption path=\S*model\.pkl",
            (r"^\d\d:\d\d:\d\d demo \| action +restore_model_weights on demo/\S+ by playbook "
             r"model_corruption_detected$"),
            r"^\d\d:\d\d:\d\d demo \| result +restore_model_weights on \S+ succeeded in \d+",
            r"^\d\d:\d\d:\d\d demo \| verified +model_corruption_detected on "])
    finding = out.index("| finding    model_corruption")
    assert finding < out.index("| action     restore_model_weights") < \
        out.index("| result     restore_model_weights")
    # the monitor re-publishes the finding each cycle while it lasts: said once
    assert len(re.findall(r"finding +model_corruption", out)) == 1


async def test_quiet_prints_no_incident_step(tmp_path_factory: pytest.TempPathFactory) -> None:
    root, cfg = system(tmp_path_factory, "quiet")
    with booted(root, cfg, "--quiet") as running:
        async for b in _bus_of(running):
            w = await watch_from_now(b)
            try:
                running.fault("model-corruption")
                await expect(w, events.ModelCorruption, timeout=30)
                await expect(w, events.CommandSucceeded, succeeded("restore_model_weights"), 30)
                await expect(w, events.VerifyPassed,
                             lambda d: d.playbook == "model_corruption_detected", 30)
            finally:
                await w.close()
        out = output_after_boot(running)
    assert not STEP.search(out), out[-2000:]
