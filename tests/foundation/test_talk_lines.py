"""The lines `grace up` prints after boot (grace.app.talk): one per incident step, no repeats."""

from __future__ import annotations

from grace import events
from grace.app.talk import Talk

CORRUPT = events.ModelCorruption(path="models/m.pkl", expected_sha256="a", actual_sha256="b",
                                 reason="hash mismatch")


def say(talk: Talk, *payloads: events.Payload) -> list[str]:
    out = []
    for p in payloads:
        line = talk.line(events.make_event(p, host="web-1", source="t"))
        if line is not None:
            out.append(line.split(" | ", 1)[1])
    return out


def test_an_incident_reads_as_finding_action_result_cleared_verified() -> None:
    issued = events.CommandIssued(playbook="model_corruption_detected", command_id="c1",
                                  action="restore_model_weights", target="web-1/path=models/m.pkl",
                                  cause_ids=["e1"])
    lines = say(Talk(), CORRUPT, CORRUPT, issued,
                events.CommandSucceeded(command_id="c1", action="restore_model_weights",
                                        target="models/m.pkl", duration_ms=18.4),
                events.ConditionCleared(condition="model_corruption", key={"path": "models/m.pkl"},
                                        active_s=1.2),
                events.VerifyPassed(playbook="model_corruption_detected", command_id="c1",
                                    target="web-1/path=models/m.pkl"),
                events.CheckCompleted(trigger="x", duration_ms=1.0, outcome="ok"))
    assert lines == [
        "finding    model_corruption path=models/m.pkl: hash mismatch",
        ("action     restore_model_weights on web-1/path=models/m.pkl by playbook "
        "model_corruption_detected"),
        "result     restore_model_weights on models/m.pkl succeeded in 18 ms",
        "cleared    model_corruption path=models/m.pkl after 1s",
        "verified   model_corruption_detected on web-1/path=models/m.pkl: the fix holds"]


def test_a_suppression_is_said_once_until_the_playbook_acts_and_a_cleared_finding_again() -> None:
    quiet = events.DecisionSuppressed(playbook="p", reason="cooldown", target="t", cause_ids=[],
                                      detail="until 10:00")
    issued = events.CommandIssued(playbook="p", command_id="c", action="a", target="t",
                                  cause_ids=[])
    cleared = events.ConditionCleared(condition="model_corruption", key={"path": "models/m.pkl"})
    lines = say(Talk(), quiet, quiet, issued, quiet, CORRUPT, cleared, CORRUPT)
    assert lines == ["suppressed p on t: cooldown: until 10:00", "action     a on t by playbook p",
                     "suppressed p on t: cooldown: until 10:00",
                     "finding    model_corruption path=models/m.pkl: hash mismatch",
                     "cleared    model_corruption path=models/m.pkl",
                     "finding    model_corruption path=models/m.pkl: hash mismatch"]


def test_a_failed_command_and_a_failed_verify_say_so() -> None:
    lines = say(Talk(),
                events.CommandFailed(command_id="c", action="restart_kernel", target="api",
                                     duration_ms=12_345.0, reason="no such kernel"),
                events.VerifyFailed(playbook="p", command_id="c", target="t", within_s=120.0,
                                    escalation="escalate_to_coding_agent", detail="still there"))
    assert lines == ["result     restart_kernel on api FAILED in 12.3 s: no such kernel",
                     "NOT fixed  p on t within 120s: still there; escalated: escalate_to_coding_agent"]
