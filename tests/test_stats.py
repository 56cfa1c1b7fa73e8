import subprocess
import sys
from datetime import date, timedelta

import pytest

from metrics import stats


def test_percentile_linear_interpolation_matches_metrics_md():
    # docs/metrics.md: [1,2,3,4,10] -> p50 = 3; p85: h = 4*0.85 = 3.4 -> 4 + 0.4*(10-4) = 6.4
    assert stats.percentile([10, 1, 3, 2, 4], 0.5) == 3
    assert stats.percentile([1, 2, 3, 4, 10], 0.85) == pytest.approx(6.4)


def test_percentile_edge_cases():
    assert stats.percentile([], 0.5) is None  # n = 0 -> no value, never 0
    assert stats.percentile([7], 0.85) == 7
    assert stats.percentile([1, 2], 0.5) == 1.5


def test_xmr_limits():
    # X̄ = 4, moving ranges |6-2|,|2-6|,|6-2| = 4 each -> mR̄ = 4; limits 4 ± 10.64, lower floored at 0
    lim = stats.xmr_limits([2, 6, 2, 6])
    assert lim.centre == 4 and lim.mr_bar == 4
    assert lim.upper == pytest.approx(14.64)
    assert lim.lower == 0


def test_xmr_signals():
    base = [10, 11, 9, 10, 11, 9, 10, 11, 9, 10, 11, 9]  # X̄ = 10, mR̄ = 16/11 ≈ 1.4545, UNPL ≈ 13.87
    assert stats.xmr_signal(base, [10, 11]) is None
    assert stats.xmr_signal(base, [14]) == "above the upper process limit"
    # 1.33·mR̄ ≈ 1.93: three of four above 11.93 without crossing 13.87
    assert stats.xmr_signal(base, [12.5, 12.5, 10, 12.5]) == "3 of 4 recent weeks high"
    assert stats.xmr_signal(base, [10.5] * 8) == "8 recent weeks in a row above the average"


def test_a_run_is_worded_by_the_week_it_ends():
    base = [10, 11, 9, 10, 11, 9, 10, 11, 9, 10, 11, 9]  # X̄ = 10
    mondays = [date(2026, 1, 5) + timedelta(weeks=k) for k in range(13)]
    # 8 weeks below the average, then 5 ordinary weeks: the run ended the week of 23 Feb.
    current = [9.5] * 8 + [10.5, 9.5, 10.5, 9.5, 10.5]
    signal = stats.xmr_signal(base, current, weeks=mondays, last_week=mondays[-1])
    assert signal == "8 weeks in a row below the average, ending the week of 23 Feb"
    # The same run ending in the period's last completed week is recent.
    current = [10.5, 9.5, 10.5, 9.5, 10.5] + [9.5] * 8
    signal = stats.xmr_signal(base, current, weeks=mondays, last_week=mondays[-1])
    assert signal == "8 recent weeks in a row below the average, ending the week of 30 Mar"
    # Of several 3-of-4 runs, the one ending latest is reported, with its end.
    current = [12.5, 12.5, 12.5, 10, 10, 12.5, 12.5, 10, 12.5, 10, 10, 10, 10]
    signal = stats.xmr_signal(base, current, weeks=mondays, last_week=mondays[-1])
    assert signal == "3 of 4 weeks high, ending the week of 2 Mar"


def test_rate_limits_are_clipped_to_100_percent():
    lim = stats.xmr_limits([90, 100, 80, 100], ceiling=100.0)  # X̄ 92.5, mR̄ 50/3: UNPL 136.8
    assert lim.upper == 100.0
    assert lim.lower == pytest.approx(92.5 - 2.66 * 50 / 3)


def test_importing_the_metrics_loads_neither_scipy_nor_numpy():
    """scipy.stats costs half a second, numpy a tenth: every `vsm` start-up would pay them."""
    code = (
        "import sys, bot.cli, bot.render.format, metrics.catalogue, metrics.stats, metrics.digest;"
        "print(sorted(m for m in ('scipy', 'numpy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_two_sample_tests_need_ten_a_side():
    assert stats.mann_whitney_p([1] * 9, [2] * 20) is None
    assert stats.mann_whitney_p(list(range(10)), list(range(100, 110))) < 0.001
    assert stats.fisher_p(1, 9, 1, 10) is None
    assert stats.fisher_p(10, 10, 0, 10) < 0.001
    assert stats.fisher_p(5, 10, 5, 10) == pytest.approx(1.0)


def _samples(rnd, n: int, kind: str, shift: float) -> list[float]:
    if kind == "continuous":
        return [rnd.expovariate(1) + shift for _ in range(n)]
    return [float(rnd.randint(0, 4) + round(shift)) for _ in range(n)]  # heavy ties, as hours in days


def test_mann_whitney_agrees_with_scipy():
    """The written-out normal approximation (ties, continuity) gives scipy's p-value on samples
    of every size a signal meets, with and without ties, with and without a real shift."""
    import random

    from scipy.stats import mannwhitneyu

    rnd = random.Random(7)
    for case in range(300):
        kind, shift = rnd.choice(["continuous", "ties"]), rnd.choice([0.0, 0.3, 1.0])
        a = _samples(rnd, rnd.randint(10, 120), kind, 0.0)
        b = _samples(rnd, rnd.randint(10, 120), kind, shift)
        expected = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        assert stats.mann_whitney_p(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-300), case


def test_fisher_agrees_with_scipy():
    import random

    from scipy.stats import fisher_exact

    rnd = random.Random(11)
    cases = [(0, 10, 0, 10), (10, 10, 10, 10), (0, 10, 10, 10), (3, 40, 3, 40), (1, 500, 30, 500)]
    cases += [(3333, 10_000, 5000, 10_000), (500, 4000, 540, 4000)]  # a busy repository's 20 weeks
    for _ in range(300):
        n_a, n_b = rnd.randint(10, 200), rnd.randint(10, 200)
        cases.append((rnd.randint(0, n_a), n_a, rnd.randint(0, n_b), n_b))
    for hits_a, n_a, hits_b, n_b in cases:
        table = [[hits_a, n_a - hits_a], [hits_b, n_b - hits_b]]
        expected = float(fisher_exact(table, alternative="two-sided").pvalue)
        got = stats.fisher_p(hits_a, n_a, hits_b, n_b)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-300), (hits_a, n_a, hits_b, n_b)


def test_a_p_value_too_small_for_three_decimals_is_said_as_below_them():
    from metrics.stats import p_text

    assert p_text(0.0123) == "p = 0.012"
    assert p_text(0.0004) == "p < 0.001"  # never "p = 0.000": no test gives a p of nothing
    assert p_text(0.0005) == "p = 0.001"
