"""Playbooks on alerts from Alertmanager: `where` on labels (dotted paths into a dict field),
and `verify:` answered by the resolved alert's condition_cleared."""

from __future__ import annotations

import json

from grace import events
from processors import stage, validate
from processors.matcher import Matcher
from projections import alertmanager
from tests.processors.support import commands, ev, matcher, of_type, run
from tests.projections.intake_support import alert, notification

ON_HIGH_LATENCY = """
playbooks:
  - name: high_latency_alert
    on: external_alert
    where: {labels.alertname: {eq: HighLatency}}
    group_by: [fingerprint]
    do:
      - scale_workers: {kernel: "{labels.service}", by: 1}
    cooldown: 1m
    verify: {within: 5m}
"""


def received(body: bytes, t: float) -> list[events.Event]:
    """The events the intake records for an Alertmanager body, at virtual time t."""
    note = alertmanager.decode(body)
    return [ev(data, t, id=i) for i, data in alertmanager.to_payloads(note)]


def test_a_playbook_matches_on_labels_alertname() -> None:
    m = matcher(ON_HIGH_LATENCY)
    other = received(notification([alert("DiskFull", "fp0", service="api")]), 0)
    high = received(notification([alert("HighLatency", "fp1", service="api")]), 10)
    out = run(m, *other, *high)
    (cmd,) = commands(out)
    assert cmd.type == "scale_workers" and cmd.data.kernel == "api" and cmd.data.by == 1
    assert cmd.data.cause_ids == [high[0].id]


def test_a_resolved_alert_verifies_the_fix_and_a_still_firing_one_fails_it() -> None:
    m = matcher(ON_HIGH_LATENCY)
    firing = received(notification([alert("HighLatency", "fp1", service="api")]), 0)
    resolved = received(notification([alert("HighLatency", "fp1", status="resolved",
                                             ends="2026-12-02T10:03:00Z", service="api")]), 120)
    assert [e.type for e in resolved] == ["external_alert", "condition_cleared"]
    out = run(m, *firing, *resolved)
    assert len(commands(out)) == 1
    (passed,) = of_type(out, "verify_passed")
    assert passed.data.evidence_id == resolved[1].id
    m = matcher(ON_HIGH_LATENCY)  # the same alert never resolving: the verify fails
    out = run(m, *firing, ev(events.CheckCompleted(trigger="x", duration_ms=1, outcome="ok"), 400))
    assert of_type(out, "verify_failed") and not of_type(out, "verify_passed")


def test_a_label_path_into_a_field_that_is_not_a_mapping_is_refused() -> None:
    from grace import yamlfile

    text = ON_HIGH_LATENCY.replace("labels.alertname", "alertname.first")
    _, errors = validate.check_doc(yamlfile.loads(text, "t.yaml"))
    assert any("`alertname` of external_alert is not a mapping" in str(e) for e in errors)


def test_the_shipped_alert_playbook_restarts_the_named_kernel_and_is_inert_otherwise() -> None:
    m = Matcher(validate.load_paths([stage.SHIPPED]), host="grace-1", source="grace/test")
    plain = received(notification([alert("HighLatency", "fp1", service="api")]), 0)
    assert not [c for c in commands(run(m, *plain)) if c.data.playbook == "alert_restart_kernel"]
    body = notification([alert("KernelStuck", "fp2", grace_action="restart_kernel", kernel="api")])
    out = run(m, *received(body, 10))
    (cmd,) = [c for c in commands(out) if c.data.playbook == "alert_restart_kernel"]
    assert cmd.type == "restart_kernel" and cmd.data.kernel == "api"
    gone = json.loads(body)
    gone["alerts"][0].update(status="resolved", endsAt="2026-12-02T10:02:00Z")
    out = run(m, *received(json.dumps(gone).encode(), 100))
    assert [p.data.playbook for p in of_type(out, "verify_passed")] == ["alert_restart_kernel"]
