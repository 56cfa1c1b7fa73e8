"""Percentiles, process-behaviour (XmR) limits and two-sample tests, exactly as docs/metrics.md defines them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


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


def xmr_limits(
    baseline: Sequence[float], floor_zero: bool = True, ceiling: float | None = None
) -> Limits | None:
    """Natural process limits X̄ ± 2.66·mR̄ of a baseline series. Counts are floored at 0 and rates
    clipped to 0–100% (``ceiling``): a limit no point can cross is drawn where the scale ends."""
    if len(baseline) < 2:
        return None
    centre = sum(baseline) / len(baseline)
    mr_bar = sum(abs(b - a) for a, b in zip(baseline, baseline[1:], strict=False)) / (len(baseline) - 1)
    lower, upper = centre - 2.66 * mr_bar, centre + 2.66 * mr_bar
    if floor_zero:
        lower = max(0.0, lower)
    if ceiling is not None:
        upper = min(ceiling, upper)
    return Limits(centre, mr_bar, lower, upper)


@dataclass(frozen=True)
class Finding:
    """Which rule the current points break, and the index (in ``current``) of the last point it
    covers: a run is worded by the week it ends, so a reader knows whether it is still going on."""

    rule: str  # "above" | "below" | "high" | "low" | "run above" | "run below"
    end: int

    @property
    def is_run(self) -> bool:
        return self.rule not in ("above", "below")


def xmr_finding(baseline: Sequence[float], current: Sequence[float], lim: Limits) -> Finding | None:
    """The first rule (in docs/metrics.md's order) the current points break against ``lim``, or None.

    Rules: a point beyond a natural process limit; 3 of 4 consecutive points beyond X̄ ± 1.33·mR̄ on
    one side; 8 in a row on one side of X̄ (a run may start in the baseline). Of several runs of one
    rule, the one ending latest is reported: it says most about now.
    """
    if not current:
        return None
    if lim.mr_bar > 0:
        for i, v in enumerate(current):
            if v > lim.upper or v < lim.lower:
                return Finding("above" if v > lim.upper else "below", i)
    series = list(baseline[-7:]) + list(current)
    n_base = len(series) - len(current)
    hi, lo = lim.centre + 1.33 * lim.mr_bar, lim.centre - 1.33 * lim.mr_bar
    if lim.mr_bar > 0:
        for end in reversed(range(max(n_base, 3), len(series))):
            window = series[end - 3 : end + 1]
            if sum(v > hi for v in window) >= 3:
                return Finding("high", end - n_base)
            if sum(v < lo for v in window) >= 3:
                return Finding("low", end - n_base)
    for end in reversed(range(max(n_base, 7), len(series))):
        run = series[end - 7 : end + 1]
        if all(v > lim.centre for v in run):
            return Finding("run above", end - n_base)
        if all(v < lim.centre for v in run):
            return Finding("run below", end - n_base)
    return None


def week_label(monday: date) -> str:
    """``19 Oct``: the Monday a week starts, as docs/metrics.md words a run's end."""
    return f"{monday.day} {monday:%b}"


def wording(finding: Finding, end_week: date | None = None, recent: bool = True) -> str:
    """The plain-language signal. A run says the week it ends ("ending the week of 19 Oct") and is
    "recent" only when that is the period's last completed week (``recent``)."""
    if finding.rule == "above":
        return "above the upper process limit"
    if finding.rule == "below":
        return "below the lower process limit"
    now = "recent " if recent else ""
    if finding.rule in ("high", "low"):
        text = f"3 of 4 {now}weeks {finding.rule}"
    else:
        text = f"8 {now}weeks in a row {finding.rule.split()[1]} the average"
    return text if end_week is None else f"{text}, ending the week of {week_label(end_week)}"


def xmr_signal(
    baseline: Sequence[float],
    current: Sequence[float],
    floor_zero: bool = True,
    weeks: Sequence[date] | None = None,
    last_week: date | None = None,
) -> str | None:
    """The signal the current points give against the baseline's limits, worded, or None.

    ``weeks`` are the Mondays of the current points and ``last_week`` the period's last completed
    week: with them a run is worded by its end week and is "recent" only when it ends there; without
    them a run ending at the last point is recent.
    """
    lim = xmr_limits(baseline, floor_zero)
    finding = None if lim is None else xmr_finding(baseline, current, lim)
    if finding is None:
        return None
    if weeks is None:
        return wording(finding, None, finding.end == len(current) - 1)
    end_week = weeks[finding.end]
    return wording(finding, end_week, end_week == last_week)


MIN_SIDE = 10
ALPHA = 0.05


def _average_ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Ranks 1..n in the order of ``values``, tied values sharing their average rank, and the size
    of each group of ties (for the variance's tie correction)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def p_text(p: float) -> str:
    """A p-value as a reader takes it: ``p = 0.012``, or ``p < 0.001`` where three decimals would
    print a p of exactly nothing (``p = 0.000``), which no test gives."""
    return "p < 0.001" if p < 0.0005 else f"p = {p:.3f}"


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Mann–Whitney U p-value, or None with fewer than 10 observations a side.

    The normal approximation with tie correction and continuity correction: what scipy's
    ``mannwhitneyu`` computes for samples this size (it is exact only below 9 a side, which never
    reaches here). Written out because importing scipy.stats costs about half a second, three times
    a command's whole budget; tests/test_stats.py checks it against scipy.
    """
    n1, n2 = len(a), len(b)
    if n1 < MIN_SIDE or n2 < MIN_SIDE:
        return None
    if len(set(a) | set(b)) == 1:
        return 1.0
    ranks, ties = _average_ranks([*a, *b])
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    n = n1 + n2
    tie_term = sum(t**3 - t for t in ties)
    sd = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    z = (u - n1 * n2 / 2 - 0.5) / sd
    return min(1.0, max(0.0, math.erfc(z / math.sqrt(2))))  # 2 · P(Z > z)


def fisher_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float | None:
    """Two-sided Fisher's exact p-value for two proportions, or None with fewer than 10 a side.

    The sum of the probabilities of every table with the same margins that is no more likely than
    the one observed, in exact integer arithmetic (the hypergeometric numerators share one
    denominator), as scipy's ``fisher_exact`` defines it; written out for the same start-up reason
    as ``mann_whitney_p`` and checked against scipy in tests/test_stats.py.
    """
    if n_a < MIN_SIDE or n_b < MIN_SIDE:
        return None
    hits = hits_a + hits_b
    lo, hi = max(0, hits - n_b), min(hits, n_a)
    # Tables with x hits in a weigh C(n_a, x) · C(n_b, hits - x); each weight follows from the one
    # before by an exact integer step, so the sum costs one comb pair, not one per table.
    w = math.comb(n_a, lo) * math.comb(n_b, hits - lo)
    weights = [w]
    for x in range(lo, hi):
        w = w * (n_a - x) * (hits - x) // ((x + 1) * (n_b - hits + x + 1))
        weights.append(w)
    observed = weights[hits_a - lo]
    as_extreme = sum(v for v in weights if v <= observed)
    return min(1.0, as_extreme / math.comb(n_a + n_b, hits))
