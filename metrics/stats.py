"""Percentiles, process-behaviour (XmR) limits and two-sample tests, exactly as METRICS.md defines them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _scipy


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation (numpy/pandas default): ``h = (n-1)p``; no value for an empty sample."""
    if not values:
        return None
    x = sorted(values)
    h = (len(x) - 1) * p
    lo = math.floor(h)
    if lo + 1 >= len(x):
        return float(x[lo])
    return x[lo] + (h - lo) * (x[lo + 1] - x[lo])


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 0.5)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Limits:
    centre: float
    mr_bar: float
    lower: float
    upper: float


def xmr_limits(baseline: Sequence[float], floor_zero: bool = True) -> Limits | None:
    """Natural process limits X̄ ± 2.66·mR̄ of a baseline series (counts floored at 0)."""
    if len(baseline) < 2:
        return None
    centre = sum(baseline) / len(baseline)
    mr_bar = sum(abs(b - a) for a, b in zip(baseline, baseline[1:], strict=False)) / (len(baseline) - 1)
    lower = centre - 2.66 * mr_bar
    return Limits(centre, mr_bar, max(0.0, lower) if floor_zero else lower, centre + 2.66 * mr_bar)


def xmr_signal(baseline: Sequence[float], current: Sequence[float], floor_zero: bool = True) -> str | None:
    """The first Western Electric-style rule the current points break, or None.

    Rules (METRICS.md): a point beyond a natural process limit; 3 of 4 consecutive points beyond
    X̄ ± 1.33·mR̄ on one side; 8 in a row on one side of X̄ (the run may start in the baseline).
    """
    lim = xmr_limits(baseline, floor_zero)
    if lim is None or not current:
        return None
    for v in current:
        if v > lim.upper and lim.mr_bar > 0:
            return "above the upper process limit"
        if v < lim.lower and lim.mr_bar > 0:
            return "below the lower process limit"
    series = list(baseline[-7:]) + list(current)
    n_base = len(series) - len(current)
    hi, lo = lim.centre + 1.33 * lim.mr_bar, lim.centre - 1.33 * lim.mr_bar
    for end in range(max(n_base, 3), len(series)):
        window = series[end - 3 : end + 1]
        if len(window) == 4 and lim.mr_bar > 0:
            if sum(v > hi for v in window) >= 3:
                return "3 of 4 recent weeks high"
            if sum(v < lo for v in window) >= 3:
                return "3 of 4 recent weeks low"
    for end in range(max(n_base, 7), len(series)):
        run = series[end - 7 : end + 1]
        if all(v > lim.centre for v in run):
            return "8 weeks in a row above the average"
        if all(v < lim.centre for v in run):
            return "8 weeks in a row below the average"
    return None


MIN_SIDE = 10
ALPHA = 0.05


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Mann–Whitney U p-value, or None with fewer than 10 observations a side."""
    if len(a) < MIN_SIDE or len(b) < MIN_SIDE:
        return None
    if len(set(a) | set(b)) == 1:
        return 1.0
    return float(_scipy.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def fisher_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float | None:
    """Two-sided Fisher's exact p-value for two proportions, or None with fewer than 10 a side."""
    if n_a < MIN_SIDE or n_b < MIN_SIDE:
        return None
    table = [[hits_a, n_a - hits_a], [hits_b, n_b - hits_b]]
    return float(_scipy.fisher_exact(table, alternative="two-sided").pvalue)
