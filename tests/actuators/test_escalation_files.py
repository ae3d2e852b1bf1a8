"""A repeated error is escalated with the code files its log lines name, inside code.root only.

The shipped example: live_error_feed at its shipped thresholds tails logs/app.log,
the shipped playbook turns the finding into an escalation, the actuator publishes
the fix task, Grace's handler checks the carried file.
"""

from __future__ import annotations

import time
from pathlib import Path

from grace import codefiles, events
from producers.base import make_env
from producers.live_error_feed import LiveErrorFeed
from producers.state import StateStore
from tests.actuators.outcomes_support import Example


def traceback(root: Path, outside: Path) -> list[str]:
    """One logged failure: a message, then a traceback through a library, our code and a link."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return [f"{stamp} ERROR checkout 17 failed",
            "Traceback (most recent call last):",
            '  File "/usr/lib/python3.12/json/decoder.py", line 337, in decode',
            f'  File "{root}/api.py", line 30, in order',  # the config folder, not code.root
            f'  File "{root}/src/shop/evil.py", line 2, in run',  # a link out of code.root
            f'  File "{outside}/secret.py", line 1, in <module>',
            f'  File "{root}/src/shop/pricing.py", line 6, in total',
            "    return round(sum(prices) * (1.0 - discount), 2)",
            "ZeroDivisionError: float division by zero"]


def test_named_paths_reads_frames_and_bare_paths() -> None:
    assert codefiles.named_paths('  File "/srv/app/src/shop/pricing.py", line 12, in total') == [
        "/srv/app/src/shop/pricing.py"]
    assert codefiles.named_paths("ERROR at src/shop/pricing.py:12 and /x/y.pyc, not a.py.bak") == [
        "src/shop/pricing.py"]
    assert codefiles.named_paths("ERROR payment 101 failed: timeout on /srv/pay/0001") == []


async def test_a_repeated_error_is_escalated_with_the_code_files_under_code_root_only(
        example: Example, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("TOKEN = 'x'\n")
    (example.root / "src" / "shop" / "evil.py").symlink_to(outside / "secret.py")
    log = example.root / "logs" / "app.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("INFO started\n")
    feed = LiveErrorFeed(make_env(example.cfg, StateStore(example.cfg.data_path / "state")))
    assert (await feed.check()).findings == []
    repeats = example.cfg.thresholds.live_error_feed.error_repeats  # the shipped 5
    with open(log, "a") as f:
        for _ in range(repeats):
            f.write("\n".join(traceback(example.root, outside)) + "\n")
    found = [f for f in (await feed.check()).findings if isinstance(f, events.RepeatedErrorPattern)
             and f.template.startswith("ZeroDivisionError")]
    assert len(found) == 1 and found[0].count == repeats
    assert found[0].files == ["shop/pricing.py"]  # not the library, api.py, the link or the outsider

    cmds = [c for c in example.commands_for(*[(f, 0) for f in found])
            if isinstance(c.data, events.EscalateToCodingAgent)]
    assert [c.data.files for c in cmds] == [["shop/pricing.py"]]
    task = await example.run(cmds[0])
    assert task.files == ["shop/pricing.py"] and task.playbook == "repeated_error_pattern"
    report = await example.report(task)
    assert report.outcome == "passed"  # compiled, linted and its test run: all pass
    assert {c["check"] for c in report.checks} == {"py_compile", "pyflakes", "pytest"}
    assert not any("secret" in str(c.get("argv", "")) + c.get("file", "") for c in report.checks)


async def test_an_error_that_names_no_code_file_is_escalated_unverified(
        example: Example) -> None:
    log = example.root / "logs" / "app.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("INFO started\n")
    feed = LiveErrorFeed(make_env(example.cfg, StateStore(example.cfg.data_path / "state")))
    await feed.check()
    with open(log, "a") as f:  # what `grace demo fault error-storm` writes
        for i in range(30):
            f.write(f"2026-01-01 00:00:00 ERROR payment 10{i} failed: timeout after {200 + i}ms on "
                    f"/srv/pay/{i:04x}\n")
    (finding,) = [f for f in (await feed.check()).findings if isinstance(f, events.RepeatedErrorPattern)]
    assert finding.files == []
    (cmd,) = [c for c in example.commands_for((finding, 0))
              if isinstance(c.data, events.EscalateToCodingAgent)]
    report = await example.report(await example.run(cmd))
    assert report.outcome == "unverified" and report.checks == []
