"""Notify playbooks: validated against config's sinks, reacting to decisions without loops,
inert with a recorded `no_sink` when no sink is configured; the notify config section."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace import config, events, yamlfile
from grace.errors import ValidationErrors
from processors import stage, validate
from processors.gates import Settings
from processors.matcher import Matcher
from tests.processors.support import commands, ev, of_type

FAILED = events.VerifyFailed(playbook="kernel_heartbeat_gap", command_id="c-1",
                             target="web-1/kernel=api/instance=0", within_s=120.0,
                             detail="kernel_heartbeat_gap still reported")
ASK = events.ApprovalRequested(playbook="model_corruption_detected", command_id="c-2",
                               action="restore_model_weights", target="web-1/path=models/m.pkl",
                               cause_ids=["e-1"], reason="model_corruption matched", within_s=900.0,
                               expires_at=ev(FAILED, 900).time)
SPENT = events.DecisionSuppressed(playbook="kernel_heartbeat_gap", reason="budget_spent",
                                  target="web-1/kernel=api/instance=0", cause_ids=["e-2"],
                                  detail="3 per 1h")
ESCALATED = events.CommandIssued(playbook="kernel_heartbeat_gap", command_id="c-3",
                                 action="escalate_to_coding_agent", target="web-1/kernel=api",
                                 cause_ids=["e-3"], reason="verify failed", escalation=True)


def shipped(sinks: tuple[str, ...]) -> Matcher:
    return Matcher(validate.load_paths([stage.SHIPPED], sinks=list(sinks)), host="grace-1",
                   source="grace/test", settings=Settings(sinks=sinks))


def check(text: str, sinks: list[str] | None) -> list[str]:
    _, errors = validate.check_doc(yamlfile.loads(text, "n.yaml"), sinks=sinks)
    return [str(e) for e in errors]


@pytest.mark.parametrize("decision", [FAILED, ASK, SPENT, ESCALATED], ids=lambda d: d.TYPE)
def test_each_shipped_notification_fires_once_with_a_sink(decision: events.Payload) -> None:
    m = shipped(("ops",))
    first = ev(decision, 0)
    m.process(first)
    [note] = commands(m.take())
    assert note.type == "notify" and note.data.sink == "default"
    assert note.data.target == decision.target  # type: ignore[attr-defined]
    assert decision.playbook in note.data.text  # type: ignore[attr-defined]
    m.process(first)  # the same decision read again (a redelivery): nothing new
    assert commands(m.take()) == []
    m.process(ev(decision, 1))  # another decision of the same kind: another note
    assert len(commands(m.take())) == 1


def test_the_approval_notification_says_how_to_answer() -> None:
    m = shipped(("ops",))
    m.process(ev(ASK, 0))
    [note] = commands(m.take())
    assert "grace approve c-2" in note.data.text and "restore_model_weights" in note.data.text


def test_without_a_sink_the_notifications_record_no_sink_and_send_nothing() -> None:
    m = shipped(())
    m.process(ev(FAILED, 0))
    m.process(ev(FAILED, 5, id="second-failure"))
    out = m.take()
    assert commands(out) == []
    [why] = of_type(out, "decision_suppressed")  # once per target, not once per decision
    assert why.data.reason == "no_sink" and why.data.playbook == "notify_verify_failed"
    assert "not configured" in why.data.detail and "notify:" in why.data.detail


def test_decisions_of_notify_playbooks_never_notify() -> None:
    m = shipped(("ops",))
    m.process(ev(SPENT, 0))
    out = m.take()
    [issued] = of_type(out, "command_issued")
    for e in out:  # the notify's own decision comes back from the log
        m.process(e)
    m.process(ev(events.DecisionSuppressed(playbook="notify_budget_spent", reason="budget_spent",
                                           target="t", cause_ids=[]), 2))
    assert commands(m.take()) == []
    assert issued.data.action == "notify"


def test_an_unknown_sink_is_an_error_with_file_line_and_the_known_sinks() -> None:
    text = """\
playbooks:
  - name: tell
    on: verify_failed
    do:
      - notify: {sink: pagr, text: "{detail}"}
"""
    [err] = check(text, ["ops", "pager"])
    assert err.startswith("n.yaml:5: unknown notify sink 'pagr'; did you mean 'pager'?")
    assert check(text, None) == []  # no config at hand: the sink is not checked


def test_a_templated_sink_is_refused() -> None:
    [err] = check("""\
playbooks:
  - name: tell
    on: verify_failed
    do:
      - notify: {sink: "{playbook}", text: hi}
""", ["ops"])
    assert "no template" in err


def test_only_notify_only_playbooks_may_react_to_decisions() -> None:
    [err] = check("""\
playbooks:
  - name: fix_on_failure
    on: verify_failed
    do:
      - notify: {text: hi}
      - restart_kernel: {kernel: api}
""", ["ops"])
    assert "'verify_failed' is a decision type" in err and "every action is `notify`" in err


def test_a_decision_playbook_may_not_escalate_to_a_change() -> None:
    [err] = check("""\
playbooks:
  - name: tell
    on: verify_failed
    do:
      - notify: {text: hi}
    escalate: {restart_kernel: {kernel: api}}
""", ["ops"])
    assert "'verify_failed' is a decision type" in err


def test_a_notify_without_text_is_refused_at_load() -> None:
    [err] = check("""\
playbooks:
  - name: tell
    on: model_corruption
    do:
      - notify: {sink: ops}
""", ["ops"])
    assert "notify" in err and "text" in err


NOTIFY_OK = """\
host: web-1
notify:
  - {name: ops, url: "http://127.0.0.1:9099/grace"}
  - {name: pager, url: "https://events.pagerduty.com/v2/enqueue", format: pagerduty,
     routing_key_env: PD_KEY}
"""


def test_the_notify_section_loads_with_each_formats_retry_default(tmp_path: Path) -> None:
    p = tmp_path / "grace.yaml"
    p.write_text(NOTIFY_OK)
    cfg = config.load(p)
    ops, pager = cfg.notify
    assert ops.format == "cloudevents" and (ops.retries.max, float(ops.retries.backoff)) == (5, 1.0)
    assert (pager.retries.max, float(pager.retries.backoff), pager.retries.factor) == (3, 30.0, 1.0)


@pytest.mark.parametrize(("edit", "line", "says"), [
    ('url: "http://127.0.0.1:9099/grace"', 3, "is not an http(s) URL"),
    ("routing_key_env: PD_KEY", 5, "needs exactly one of routing_key"),
    ("name: pager", 4, "is used twice"),
])
def test_bad_notify_sinks_name_file_line_and_what_to_do(tmp_path: Path, edit: str, line: int,
                                                        says: str) -> None:
    bad = {"is not an http(s) URL": 'url: "file:///etc/passwd"', "needs exactly one of routing_key":
           "routing_key_env: PD_KEY, routing_key: abc", "is used twice": "name: ops"}[says]
    p = tmp_path / "grace.yaml"
    p.write_text(NOTIFY_OK.replace(edit, bad))
    with pytest.raises(ValidationErrors) as exc:
        config.load(p)
    msg = str(exc.value)
    assert f"grace.yaml:{line}" in msg and says in msg


def test_grace_playbooks_validate_checks_sinks_against_the_config(tmp_path: Path) -> None:
    from tests.support import grace_cmd

    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "tell.yaml").write_text("""\
playbooks:
  - name: tell
    on: model_corruption
    do:
      - notify: {sink: chat, text: "{path} is corrupt"}
""")
    cfg = tmp_path / "grace.yaml"
    cfg.write_text('playbooks: [pb]\nnotify: [{name: ops, url: "http://127.0.0.1:9/x"}]\n')
    out = grace_cmd("playbooks", "validate", "-c", str(cfg))
    assert out.returncode == 1
    assert "tell.yaml:5: unknown notify sink 'chat'" in out.stderr and "ops" in out.stderr
    cfg.write_text('playbooks: [pb]\nnotify: [{name: chat, url: "http://127.0.0.1:9/x"}]\n')
    assert grace_cmd("playbooks", "validate", "-c", str(cfg)).returncode == 0
