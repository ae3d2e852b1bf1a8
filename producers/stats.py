"""The statistics triggers use: PSI and a least-squares trend (pure functions).

PSI (population stability index): bin edges are quantiles of the baseline
(duplicates dropped), so each bin holds an equal share of it; a value equal to
an edge falls in the bin below it, so a baseline of one repeated value still has
a bin above it. The number of bins is len(baseline) // 20, between 2 and 10: PSI
of two samples of one distribution is about (bins - 1) * (1/n1 + 1/n2), so few
samples need few bins to stay well under the 0.25 threshold; p_i, q_i are the
shares of baseline and recent samples per bin, floored at half a sample
(0.5 / n) so an empty bin stays finite and a few outliers against an empty bin
do not look like a shift; PSI = sum((q_i - p_i) * ln(q_i / p_i)).
Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence


def quantile_edges(baseline: Sequence[float], bins: int = 10) -> list[float]:
    s = sorted(baseline)
    n = len(s)
    edges = [s[min(n - 1, int(n * i / bins))] for i in range(1, bins)]
    return sorted(set(edges))


def psi(baseline: Sequence[float], recent: Sequence[float], bins: int | None = None) -> float:
    """Population stability index of `recent` against `baseline` (bins from the baseline)."""
    if not baseline or not recent:
        return 0.0
    if bins is None:
        bins = max(2, min(10, len(baseline) // 20))
    edges = quantile_edges(baseline, bins)

    def shares(values: Sequence[float]) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for v in values:
            counts[bisect.bisect_left(edges, v)] += 1
        return [max(c, 0.5) / len(values) for c in counts]

    p, q = shares(baseline), shares(recent)
    return sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))


def linear_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares y = a + b*t: (intercept a, slope b, r^2). r^2 is 0 for a flat series."""
    n = len(points)
    if n < 2:
        return (points[0][1] if points else 0.0), 0.0, 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    stt = sum((t - mt) ** 2 for t, _ in points)
    syy = sum((y - my) ** 2 for _, y in points)
    sty = sum((t - mt) * (y - my) for t, y in points)
    if stt == 0:
        return my, 0.0, 0.0
    b = sty / stt
    a = my - b * mt
    r2 = (sty * sty) / (stt * syy) if syy > 0 else 0.0
    return a, b, r2


def time_to_limit(points: Sequence[tuple[float, float]], limit: float, now: float
                  ) -> tuple[float | None, float, float]:
    """(seconds from `now` until the fitted line reaches `limit` or None, slope, r^2)."""
    a, b, r2 = linear_fit(points)
    if b <= 0:
        return None, b, r2
    eta = (limit - a) / b - now
    return max(0.0, eta), b, r2
