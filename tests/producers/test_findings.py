"""ActiveFindings: appearance, throttled re-publish, clearing, restore after a restart."""

from __future__ import annotations

from grace import events
from producers.findings import RESTORED_GRACE, ActiveFindings


def corrupt(path: str = "models/m.pkl") -> events.ModelCorruption:
    return events.ModelCorruption(path=path, expected_sha256="a", actual_sha256="b", reason="x",
                                  trigger="model_integrity")


def test_finding_is_published_on_appearance_then_at_most_once_per_interval() -> None:
    af = ActiveFindings("h", interval=30.0)
    first = af.update("model_integrity", [corrupt()], now=0.0, run_id="1.0")
    assert [p.TYPE for p, _ in first] == ["model_corruption"]
    assert af.update("model_integrity", [corrupt()], now=5.0, run_id="1.1") == []  # a fast re-run
    again = af.update("model_integrity", [corrupt()], now=30.0, run_id="2.0")
    assert len(again) == 1 and again[0][1] != first[0][1]


def test_disappearance_is_condition_cleared_with_the_key() -> None:
    af = ActiveFindings("h", interval=30.0)
    af.update("model_integrity", [corrupt()], now=0.0, run_id="1.0")
    [(cleared, _)] = af.update("model_integrity", [], now=45.0, run_id="2.0")
    assert isinstance(cleared, events.ConditionCleared)
    assert cleared.condition == "model_corruption" and cleared.key == {"path": "models/m.pkl"}
    assert cleared.active_s == 45.0
    assert af.update("model_integrity", [], now=60.0, run_id="3.0") == []


def test_another_triggers_run_does_not_clear_a_finding() -> None:
    af = ActiveFindings("h", interval=30.0)
    af.update("model_integrity", [corrupt()], now=0.0, run_id="1.0")
    assert af.update("config_drift", [], now=40.0, run_id="2.0") == []


def test_ids_are_deterministic_so_a_republish_after_a_crash_dedupes() -> None:
    a, b = ActiveFindings("h", 30.0), ActiveFindings("h", 30.0)
    assert (a.update("model_integrity", [corrupt()], 0.0, "7.0")[0][1]
            == b.update("model_integrity", [corrupt()], 3.0, "7.0")[0][1])


def test_restored_findings_neither_refire_nor_clear_during_the_grace_runs() -> None:
    before = ActiveFindings("h", 30.0)
    before.update("model_integrity", [corrupt()], 0.0, "1.0")
    after = ActiveFindings("h", 30.0)
    after.restore(before.dump())
    for i in range(RESTORED_GRACE):
        assert after.update("model_integrity", [], 10.0 + i, f"2.{i}") == []
    [(cleared, _)] = after.update("model_integrity", [], 20.0, "3.0")
    assert cleared.TYPE == "condition_cleared"
    # still present after a restart: not a new appearance within the interval
    again = ActiveFindings("h", 30.0)
    again.restore(before.dump())
    assert again.update("model_integrity", [corrupt()], 10.0, "2.0") == []


def test_a_run_with_partial_errors_clears_nothing() -> None:
    af = ActiveFindings("h", interval=30.0)
    af.update("model_integrity", [corrupt()], now=0.0, run_id="1.0")
    assert af.update("model_integrity", [], now=40.0, run_id="2.0", clear=False) == []
    assert af.active
