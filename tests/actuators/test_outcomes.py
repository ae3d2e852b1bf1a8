"""Outcomes say what was checked: fix tasks and reviews on the shipped example system.

Real nats-server, the shipped examples/grace.yaml and playbooks, Grace's own task
handler running real py_compile, pyflakes and pytest subprocesses.
"""

from __future__ import annotations

from typing import Any

import msgspec

from grace import events
from tests.actuators.outcomes_support import Example
from tests.processors.support import commands, ev, gap, matcher, run

# the params a `syntax_error` playbook gives the escalation (the shipped one is added by the
# routing work of issue 12): file, line and message reach the fix task
SYNTAX_ERROR_PLAYBOOK = """
playbooks:
  - name: syntax_error
    on: syntax_error
    group_by: [path]
    do:
      - escalate_to_coding_agent:
          summary: "syntax error in {path} line {line}: {message}"
          files: ["{path}"]
          line: "{line}"
          evidence: {path: "{path}", line: "{line}", column: "{column}", message: "{message}"}
    cooldown: 1h
    route: coding_agent
"""


def by_check(report: events.FixReport) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in report.checks}


async def test_an_escalation_with_nothing_to_check_reports_unverified_never_passed(
        example: Example) -> None:
    cmd = example.executor.bus.event(events.EscalateToCodingAgent(
        summary="30 x 'ERROR payment <n> failed' in logs/app.log", playbook="repeated_error_pattern",
        evidence={"samples": ["ERROR payment 100 failed: timeout after 200ms on /srv/pay/0000"]}),
        host=example.cfg.host)
    task = await example.run(cmd)
    assert task.files == [] and task.kind == "fix"
    report = await example.report(task)
    assert report.outcome == "unverified", report
    assert report.checks == [] and report.summary.startswith("nothing checked")


async def test_a_review_of_files_that_are_not_code_reports_unverified(example: Example) -> None:
    (example.root / "src" / "shop" / "prices.csv").write_text("sku,price\na,1\n")
    task = await example.run(example.executor.bus.event(
        events.ReviewCode(files=["shop/prices.csv"], summary="prices"), host=example.cfg.host))
    assert task.kind == "review" and task.files == ["shop/prices.csv"]
    report = await example.report(task)
    assert report.outcome == "unverified" and report.checks == []


async def test_a_syntax_error_escalation_carries_file_and_line_and_fails_its_compile(
        example: Example) -> None:
    # as `grace demo fault syntax-error` breaks it, and pre_boot_code_diff reports it
    (example.root / "src" / "shop" / "broken.py").write_text("def broken(:\n    return 1\n")
    finding = events.SyntaxErrorFound(path="shop/broken.py", line=1, column=12,
                                      message="invalid syntax", severity="critical")
    (cmd,) = commands(run(matcher(SYNTAX_ERROR_PLAYBOOK), ev(finding, 0, host=example.cfg.host)))
    task = await example.run(cmd)
    assert task.files == ["shop/broken.py"] and task.line == 1
    assert task.summary == "syntax error in shop/broken.py line 1: invalid syntax"
    report = await example.report(task)
    assert report.outcome == "failed"
    compiled = by_check(report)["py_compile"]
    assert not compiled["ok"] and compiled["file"].endswith("src/shop/broken.py")
    assert "line 1" in compiled["output"]

    # Grace's default escalation (a budget's `then`) holds the finding as evidence: same file and line
    default = example.executor.bus.event(events.EscalateToCodingAgent(
        summary="syntax_error: budget spent",
        evidence={"type": "syntax_error", "data": msgspec.to_builtins(finding)}), host=example.cfg.host)
    again = await example.run(default)
    assert again.files == ["shop/broken.py"] and again.line == 1


async def test_a_review_flags_what_pyflakes_finds(example: Example) -> None:
    (example.root / "src" / "shop" / "tax.py").write_text(
        "import os\n\n\ndef rate(region):\n    return RATES[region]\n")
    task = await example.run(example.executor.bus.event(
        events.ReviewCode(files=["shop/tax.py"], summary="tax"), host=example.cfg.host))
    report = await example.report(task)
    assert report.outcome == "failed"
    checks = by_check(report)
    assert checks["py_compile"]["ok"]  # it compiles: only the linter sees the faults
    assert not checks["pyflakes"]["ok"]
    assert "'os' imported but unused" in checks["pyflakes"]["output"]
    assert "undefined name 'RATES'" in checks["pyflakes"]["output"]


async def test_a_clean_file_with_its_passing_tests_is_passed_and_a_broken_rule_fails_them(
        example: Example) -> None:
    review = events.ReviewCode(files=["shop/pricing.py"], summary="pricing")
    report = await example.report(await example.run(example.executor.bus.event(
        review, host=example.cfg.host)))
    assert report.outcome == "passed", report
    checks = by_check(report)
    assert sorted(checks) == ["py_compile", "pyflakes", "pytest"]
    assert all(c["ok"] for c in checks.values())
    assert "tests/test_pricing.py" in " ".join(checks["pytest"]["argv"])
    assert "1 passed" in checks["pytest"]["output"]

    pricing = example.root / "src" / "shop" / "pricing.py"
    pricing.write_text(pricing.read_text().replace("1.0 - discount", "1.0 + discount"))
    report = await example.report(await example.run(example.executor.bus.event(
        review, host=example.cfg.host)))
    assert report.outcome == "failed"
    checks = by_check(report)
    assert checks["py_compile"]["ok"] and checks["pyflakes"]["ok"] and not checks["pytest"]["ok"]


async def test_a_memory_prediction_for_a_kernel_reviews_that_kernel_s_code(
        example: Example) -> None:
    risk = events.FailureRiskPredicted(resource="memory", kernel="reporter", eta_s=900.0,
                                       confidence=0.93, current=80.0, limit=95.0, slope_per_s=0.02)
    (cmd,) = example.commands_for((risk, 0))
    assert isinstance(cmd.data, events.ReviewCode) and cmd.data.kernel == "reporter"
    task = await example.run(cmd)
    assert task.kind == "review" and task.files == ["reporter.py"]  # the example's `code:`
    report = await example.report(task)
    assert report.outcome == "passed", report
    checks = by_check(report)
    assert checks["py_compile"]["file"] == str(example.root / "reporter.py")
    assert checks["pyflakes"]["ok"] and str(example.root / "reporter.py") in checks["pyflakes"]["argv"]


async def test_a_disk_prediction_is_not_a_code_review(example: Example) -> None:
    disk = events.FailureRiskPredicted(resource="disk", eta_s=900.0, confidence=0.93, current=91.0,
                                       limit=95.0, slope_per_s=0.004,
                                       files=[str(example.cfg.data_path)])
    (cmd,) = example.commands_for((disk, 0))
    assert cmd.type == "clear_caches"


async def test_the_escalation_when_restarts_do_not_hold_carries_the_kernel_s_code(
        example: Example) -> None:
    # kernel_heartbeat_gap: restart_kernel, verify 2m (then escalate), budget 3 per hour
    cmds = example.commands_for(*[(gap("api"), t) for t in (0, 40, 80, 120, 160)])
    escalations = [c for c in cmds if isinstance(c.data, events.EscalateToCodingAgent)]
    assert "restart_kernel" in [c.type for c in cmds] and escalations
    assert {c.data.playbook for c in escalations} == {"kernel_heartbeat_gap"}
    assert escalations[0].data.files == []  # Grace's default escalation: the gap is its evidence
    task = await example.run(escalations[0])
    assert task.files == ["api.py"]  # from the cause's kernel and the example's `code: [api.py]`
    report = await example.report(task)
    assert report.outcome == "passed"
    assert by_check(report)["py_compile"]["file"] == str(example.root / "api.py")
