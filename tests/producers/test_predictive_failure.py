"""predictive_failure with injected samples and an injected clock (no sleeps)."""

from __future__ import annotations

from grace import events
from producers.base import Env, make_env
from producers.predictive_failure import PredictiveFailure
from producers.stats import linear_fit, time_to_limit


def _trigger(env: Env, now: list[float], values: dict[str, list[float]]) -> PredictiveFailure:
    trig = PredictiveFailure(make_env(env.cfg, env.state, clock=lambda: now[0]))
    it = {k: iter(v) for k, v in values.items()}
    trig.sampler = lambda: {k: next(v) for k, v in it.items()}
    return trig


async def test_rising_memory_predicts_exhaustion_within_horizon(env: Env) -> None:
    now = [0.0]
    # +1 % per minute from 60 %: 95 % is reached 35 minutes after the first sample
    trig = _trigger(env, now, {"memory": [60.0 + i for i in range(10)], "disk": [40.0] * 10})
    res = None
    for i in range(10):
        now[0] = 60.0 * i
        res = await trig.check()
    assert res is not None
    [f] = res.findings
    assert isinstance(f, events.FailureRiskPredicted) and f.resource == "memory"
    assert abs(f.eta_s - (35 * 60 - 9 * 60)) < 1 and f.confidence > 0.99 and f.limit == 95.0


async def test_noisy_or_flat_series_predict_nothing(env: Env) -> None:
    now = [0.0]
    noisy = [50, 70, 40, 80, 45, 75, 50, 72, 41, 79]
    trig = _trigger(env, now, {"memory": [float(v) for v in noisy], "disk": [40.0] * 10})
    for i in range(10):
        now[0] = 60.0 * i
        res = await trig.check()
    assert res.findings == []


async def test_slow_growth_beyond_the_horizon_predicts_nothing(env: Env) -> None:
    now = [0.0]
    trig = _trigger(env, now, {"disk": [50.0 + 0.01 * i for i in range(10)]})
    for i in range(10):
        now[0] = 60.0 * i
        res = await trig.check()
    assert res.findings == []


def test_fit_recovers_slope_and_eta() -> None:
    pts = [(float(t), 10.0 + 2.0 * t) for t in range(5)]
    a, b, r2 = linear_fit(pts)
    assert (round(a, 6), round(b, 6), round(r2, 6)) == (10.0, 2.0, 1.0)
    eta, _, _ = time_to_limit(pts, 30.0, now=4.0)
    assert eta == 6.0
