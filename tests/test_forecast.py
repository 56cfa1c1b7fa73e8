"""Monte Carlo forecast: answers with hand-computed distributions, both trial engines against exact
distributions, the history calendar."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta

import pytest
from builders import item, new_db, team, ts

from metrics.catalogue import CATALOGUE, forecast
from metrics.catalogue.forecast import SEED, how_many, quantile, trial_steps, trial_totals, when
from metrics.dataset import TeamData
from metrics.errors import VsmError
from metrics.timeutil import dates_window, zone

NOW = "2026-03-30 12:00"  # a Monday, mid-day: history = the 84 days 5 Jan .. 29 Mar
FIRST = date(2026, 1, 5)


def history_db(per_day) -> object:
    """Items done at noon on each of the 84 history days: ``per_day(i)`` items on day i (0 = 5 Jan)."""
    db = new_db()
    n = 0
    for i in range(84):
        day = (FIRST + timedelta(days=i)).isoformat()
        for _ in range(per_day(i)):
            n += 1
            item(db, f"PAY-{n}", f"{day} 08:00", [(f"{day} 09:00", "In Progress"), (f"{day} 12:00", "Done")])
    return db


def data(db, now: str = NOW, **kw) -> TeamData:
    return TeamData(db, team(**kw), ts(now))


# -- the trial cores ---------------------------------------------------------------------------------------
def test_constant_throughput_gives_exact_answers():
    d = data(history_db(lambda i: 2))
    hm = how_many(d, 14)
    assert (hm["p50"], hm["p85"], hm["p95"]) == (28, 28, 28)  # 14 days x 2 items, every trial
    assert hm["from"] == "2026-03-31"  # the first whole day after now
    assert hm["by"] == "2026-04-13"  # 14 days: 31 Mar .. 13 Apr inclusive
    assert hm["history"] == {"since": "2026-01-05", "until": "2026-03-30", "days": 84, "done": 168}
    assert hm["seed"] == SEED and hm["trials"] == 10_000
    w = when(d, 20)
    assert (w["p50"], w["p85"], w["p95"]) == (10, 10, 10)  # 20 items / 2 a day
    assert w["dates"] == {"p50": "2026-04-09", "p85": "2026-04-09", "p95": "2026-04-09"}  # 31 Mar + 9 days
    assert when(d, 21)["p50"] == 11  # 21 needs an 11th day: rounded up, never short


def test_how_many_reads_the_lower_percentile_of_totals():
    # Days alternate 0 and 2 items: a 14-day total is 2 x Binomial(14, 1/2).
    # Binomial CDF: P(<=3) = .029, P(<=4) = .090, P(<=5) = .212, P(<=6) = .395, P(<=7) = .605
    # 50%: median 7 -> 14 items; 85%: 15th percentile 5 -> 10; 95%: 5th percentile 4 -> 8
    hm = how_many(data(history_db(lambda i: 2 * (i % 2))), 14)
    assert (hm["p50"], hm["p85"], hm["p95"]) == (14, 10, 8)


def test_how_many_rounds_down():
    # 3 days in 4 have one item: a 5-day total is Binomial(5, 3/4).
    # CDF: P(<=1) = .016, P(<=2) = .104, P(<=3) = .367, P(<=4) = .763
    # 50% -> 4; 85% (15th percentile) -> 3; 95% (5th percentile) -> 2
    hm = how_many(data(history_db(lambda i: int(i % 4 != 0))), 5)
    assert (hm["p50"], hm["p85"], hm["p95"]) == (4, 3, 2)


def test_when_reads_the_upper_percentile_of_completion_days():
    # 3 days in 4 have one item; 3 items need 3 item-days plus F empty days, F ~ NegBin(3, 3/4):
    # P(F=0) = .422, P(F<=1) = .738, P(F<=2) = .897, P(F<=3) = .962
    # 50% -> 3 + 1 = 4 days; 85% -> 3 + 2 = 5; 95% -> 3 + 3 = 6
    w = when(data(history_db(lambda i: int(i % 4 != 0))), 3)
    assert (w["p50"], w["p85"], w["p95"]) == (4, 5, 6)
    assert w["dates"] == {"p50": "2026-04-03", "p85": "2026-04-04", "p95": "2026-04-05"}


def exact_totals_cdf(samples: list[int], days: int) -> dict[int, float]:
    """P(total of ``days`` draws <= t), by convolving the daily distribution ``days`` times."""
    daily = {v: c / len(samples) for v, c in Counter(samples).items()}
    dist = {0: 1.0}
    for _ in range(days):
        nxt: dict[int, float] = {}
        for t, pt in dist.items():
            for v, pv in daily.items():
                nxt[t + v] = nxt.get(t + v, 0.0) + pt * pv
        dist = nxt
    cdf, acc = {}, 0.0
    for t in range(max(dist) + 1):
        acc += dist.get(t, 0.0)
        cdf[t] = acc
    return cdf


def exact_steps_cdf(samples: list[int], n_items: int, days: int) -> list[float]:
    """P(days drawn until the total reaches N <= d) for d = 1..days: P(total of d draws >= N)."""
    daily = {v: c / len(samples) for v, c in Counter(samples).items()}
    below = {0: 1.0}  # running totals still under N, with their probabilities
    cdf = []
    for _ in range(days):
        nxt: dict[int, float] = {}
        for t, pt in below.items():
            for v, pv in daily.items():
                if t + v < n_items:
                    nxt[t + v] = nxt.get(t + v, 0.0) + pt * pv
        below = nxt
        cdf.append(1.0 - sum(below.values()))
    return cdf


def ecdf_distance(values: list[int], cdf) -> float:
    """Largest gap between the empirical CDF of ``values`` and ``cdf(x)`` (Kolmogorov's statistic)."""
    counts = Counter(values)
    acc, worst = 0, 0.0
    for x in range(min(values), max(values) + 1):
        acc += counts.get(x, 0)
        worst = max(worst, abs(acc / len(values) - cdf(x)))
    return worst


# 10,000 trials: a sampler that is right is within about 0.014 of the exact CDF (5% level); 0.02 is
# far out (p < 0.001), and a biased sampler misses by more (one sample of 84 drawn twice as often: ~0.05)
KS_TOLERANCE = 0.02


@pytest.mark.parametrize(
    "samples",
    [
        [0, 1, 1, 2, 3, 0, 4] * 12,  # one byte per draw
        list(range(84)),  # 84 distinct days: any bias of the byte mapping shows
        [0, 300, 700] * 28,  # over 255 items a day: random.choices
        [0, 1, 2, 5] * 75,  # over 256 days: random.choices
    ],
)
def test_trial_totals_follow_the_exact_distribution(samples):
    totals = trial_totals(samples, 14)
    assert len(totals) == 10_000
    cdf = exact_totals_cdf(samples, 14)
    assert ecdf_distance(totals, lambda t: cdf.get(t, 1.0)) < KS_TOLERANCE


def test_every_history_day_is_drawn_equally_often():
    # 84 distinct days, one draw per trial: each about 84,000 / 84 = 1,000 times (sd 31)
    drawn = Counter(trial_totals(list(range(84)), 1, trials=84_000))
    assert set(drawn) == set(range(84))
    assert all(880 <= n <= 1120 for n in drawn.values())


@pytest.mark.parametrize("engine", ["python", "numpy"])
@pytest.mark.parametrize(
    ("samples", "n_items"),
    [
        ([0, 0, 1, 3] * 21, 10),
        ([0] * 80 + [1, 2, 1, 3], 20),  # mostly empty days
        ([7, 12, 9, 0, 15, 11, 10] * 12, 20),  # a busy team: the catalogue figure
        ([0, 0, 1, 3] * 21, 400),  # a trial spans blocks of draws
    ],
)
def test_trial_steps_follow_the_exact_distribution(monkeypatch, engine, samples, n_items):
    # Both engines (day by day in Python; numpy with the empty-day shortcut, used past _PY_CELLS draws)
    # against P(days <= d) = P(total of d draws >= N), computed exactly.
    monkeypatch.setattr(forecast, "_PY_CELLS", 0 if engine == "numpy" else 10**9)
    monkeypatch.setattr(forecast, "_BLOCK", 4096)
    steps = trial_steps(samples, n_items)
    assert len(steps) == 10_000
    cdf = exact_steps_cdf(samples, n_items, max(steps))
    assert ecdf_distance(steps, lambda d: cdf[d - 1] if d >= 1 else 0.0) < KS_TOLERANCE


def test_engine_is_chosen_by_the_days_drawn(monkeypatch):
    calls = []

    class Steps(list):  # what the numpy engine returns, as far as trial_steps reads it
        def tolist(self):
            return list(self)

    monkeypatch.setattr(forecast, "_trial_steps_numpy", lambda *args: calls.append(args) or Steps([1]))
    trial_steps([2] * 84, 20)  # 10 days a trial: 100,000 days in Python
    assert calls == []
    trial_steps([0] * 83 + [1], 20)  # 1,680 days a trial: numpy
    assert len(calls) == 1


def test_quantile_interpolates_as_numpy_does():
    np = pytest.importorskip("numpy")
    values = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
    for c in (0.05, 0.15, 0.5, 0.85, 0.95, 0.0, 1.0):
        assert quantile(sorted(values), c) == pytest.approx(float(np.quantile(values, c)))


def test_trials_are_reproducible_by_seed():
    samples = [0, 1, 2, 5] * 21
    assert trial_totals(samples, 14, seed=1) == trial_totals(samples, 14, seed=1)
    assert trial_totals(samples, 14, seed=1) != trial_totals(samples, 14, seed=2)
    assert trial_steps(samples, 30, seed=3) == trial_steps(samples, 30, seed=3)
    assert trial_steps(samples, 30, seed=3) != trial_steps(samples, 30, seed=4)
    slow = [0] * 83 + [1]  # the numpy engine
    assert trial_steps(slow, 3, seed=3) == trial_steps(slow, 3, seed=3)
    d = data(history_db(lambda i: i % 3))
    assert how_many(d, 14, seed=11) == how_many(d, 14, seed=11)
    assert how_many(d, 14, seed=11)["seed"] == 11
    assert when(d, 20, seed=11) == when(d, 20, seed=11)


def test_the_catalogue_figure_does_not_load_numpy():
    # numpy's import (about 50 ms) was a third of a `vsm metric forecast` process
    code = (
        "import sys\n"
        "from metrics.catalogue.forecast import HOW_MANY_DAYS, WHEN_ITEMS, trial_steps, trial_totals\n"
        "for samples in ([0, 1, 1, 2, 3, 0, 4] * 12, [0] * 70 + [1] * 14, [10] * 84):\n"
        "    trial_totals(samples, HOW_MANY_DAYS), trial_steps(samples, WHEN_ITEMS)\n"
        "assert 'numpy' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_slow_team_still_gets_an_answer():
    # One item in 84 days: 2 items take 2 item-days plus NegBin(2, 1/84) empty days, whose median,
    # 85th and 95th percentiles are 139, 281 and 395 days: 141, 283 and 397 days in all.
    w = when(data(history_db(lambda i: int(i == 40))), 2)
    assert 130 <= w["p50"] <= 152
    assert 265 <= w["p85"] <= 300
    assert 370 <= w["p95"] <= 425


# -- no forecast, bad input --------------------------------------------------------------------------------
def test_all_zero_history_gives_no_forecast():
    d = data(new_db())
    hm, w = how_many(d, 14), when(d, 20)
    assert (hm["p50"], hm["p85"], hm["p95"]) == (None, None, None)
    assert (w["p50"], w["p85"], w["p95"]) == (None, None, None)
    assert w["dates"] == {"p50": None, "p85": None, "p95": None}
    assert hm["note"] == "Jira has not been synced yet"  # never synced: not "nothing was done"
    item(d.db, "PAY-9", "2025-01-05 09:00")  # synced, long ago, nothing done in the 12 weeks
    assert (
        when(data(d.db), 20)["note"]
        == "no item was done in the last 12 weeks, so there is nothing to resample"
    )
    assert how_many(data(d.db, jira_projects=[]), 14)["note"] == "no Jira projects in this team's scope"


def test_bad_requests_are_clear_errors():
    d = data(new_db())
    with pytest.raises(VsmError, match="at least 1"):
        how_many(d, 0)
    with pytest.raises(VsmError, match="at least 1"):
        when(d, 0)


# -- the history calendar ---------------------------------------------------------------------------------
def test_history_is_the_84_whole_days_before_today_and_counts_delivered_items_only():
    db = new_db()
    item(db, "PAY-1", "2026-01-05 00:00", [("2026-01-05 00:00", "In Progress"), ("2026-01-05 00:00", "Done")])
    item(db, "PAY-2", "2026-01-04 09:00", [("2026-01-04 10:00", "In Progress"), ("2026-01-04 23:59", "Done")])
    item(db, "PAY-3", "2026-03-30 01:00", [("2026-03-30 02:00", "In Progress"), ("2026-03-30 03:00", "Done")])
    item(db, "PAY-4", "2026-03-01 00:00", [("2026-03-02 00:00", "Done")])  # closed without flow
    item(
        db,
        "PAY-5",
        "2026-03-01 00:00",
        [("2026-03-02 00:00", "In Progress"), ("2026-03-03 00:00", "Done")],
        resolution="Won't Do",
    )
    item(db, "PAY-6", "2026-03-28 00:00", [("2026-03-28 01:00", "In Progress"), ("2026-03-29 23:00", "Done")])
    hm = how_many(data(db), 14)
    # in: PAY-1 (first instant of 5 Jan) and PAY-6 (29 Mar); out: PAY-2 (4 Jan), PAY-3 (today, partial),
    # PAY-4 (closed without flow), PAY-5 (discarded)
    assert hm["history"]["done"] == 2


def test_forecast_from_a_local_midnight_starts_that_day():
    d = data(history_db(lambda i: 1), now="2026-03-30 00:00")
    hm = how_many(d, 7)
    assert hm["from"] == "2026-03-30" and hm["by"] == "2026-04-05"
    assert hm["history"]["since"] == "2026-01-05"
    assert hm["p50"] == 7


def test_history_days_are_local_days():
    db = new_db()
    # 29 Mar 23:30 in New York is 30 Mar 03:30 UTC: still yesterday there, so in the history
    item(
        db,
        "PAY-1",
        "2026-03-29 20:00-04:00",
        [("2026-03-29 21:00-04:00", "In Progress"), ("2026-03-29 23:30-04:00", "Done")],
    )
    hm = how_many(data(db, now="2026-03-30 16:00", timezone="America/New_York"), 14)
    assert hm["history"]["done"] == 1
    assert hm["from"] == "2026-03-31"
    # the same instant for a UTC team is today (30 Mar), not yet history
    assert how_many(data(db, now="2026-03-30 16:00"), 14)["history"]["done"] == 0


# -- the catalogue metric ----------------------------------------------------------------------------------
def test_forecast_metric_value_previous_and_extra():
    db = history_db(lambda i: 2)
    t = team()
    r = CATALOGUE["forecast"].compute(
        TeamData(db, t, ts(NOW)), dates_window("2026-03-16", "2026-03-31", zone("UTC"))
    )
    assert r.value == {"p50": 28, "p85": 28, "p95": 28}
    assert r.extra["when"]["p85"] == 10
    assert r.extra["seed"] == SEED and r.extra["trials"] == 10_000
    assert r.extra["by"] == "2026-04-13"
    assert r.sample_size == 168  # 84 days x 2
    # previous = as of 16 Mar 00:00: history 22 Dec .. 15 Mar = 14 days before the items' history began
    # + 70 days of 2 items, so a 14-day total would be 2 x Binomial(14, 5/6); CDF: P(<=8) = .019,
    # P(<=9) = .069, P(<=10) = .194, P(<=11) = .421, P(<=12) = .704 -> median 12 (24 items), 15th pct
    # 10 (20), 5th pct 9 (18). Those 14 days are unknown, not idle: the figure has no previous forecast.
    before = how_many(TeamData(db, t, ts("2026-03-16 00:00")), 14)
    assert (before["p50"], before["p85"], before["p95"]) == (24, 20, 18)
    assert (r.previous, r.previous_note) == (None, "no earlier data")
    # series: items done per week (the throughput the forecast resamples)
    assert r.series == [
        {"week": "2026-03-16", "value": 14.0},
        {"week": "2026-03-23", "value": 14.0},
        {"week": "2026-03-30", "value": 0.0, "partial": True},
    ]
    assert r.items[0] == {"key": "PAY-1", "done": "2026-01-05T12:00:00Z"}


def test_forecast_metric_without_history_has_no_value():
    r = CATALOGUE["forecast"].compute(data(new_db()), dates_window("2026-03-16", "2026-03-30", zone("UTC")))
    assert r.value is None
    assert r.previous is None
    assert r.notes == []
    assert r.no_data_reason == "Jira has not been synced yet"
    assert all(p["value"] is None for p in r.series)  # unknown weeks, not a flat line of zeros


def test_forecast_metric_series_stops_at_now_and_is_json_ready():
    db = history_db(lambda i: 1)
    r = CATALOGUE["forecast"].compute(data(db), dates_window("2026-03-23", "2026-04-13", zone("UTC")))
    assert r.series == [
        {"week": "2026-03-23", "value": 7.0},
        {"week": "2026-03-30", "value": 0.0, "partial": True},
        {"week": "2026-04-06", "value": None, "partial": True},  # not begun: no value
    ]
    assert r.extra["as_of"] == "2026-03-30T12:00:00Z"  # now, before the window's end
    assert r.value == {"p50": 14, "p85": 14, "p95": 14}  # one item a day, every day
    payload = json.loads(json.dumps(r.to_json()))
    assert payload["extra"]["when"]["dates"]["p95"] == "2026-04-19"  # 20 days from 31 Mar
