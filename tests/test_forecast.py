"""Monte Carlo forecast: answers with hand-computed distributions, history calendar, speed."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import numpy as np
import pytest
from builders import item, new_db, team, ts

from metrics.catalogue import CATALOGUE
from metrics.catalogue.forecast import SEED, how_many, trial_steps, trial_totals, when
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


def test_trial_steps_matches_day_by_day_drawing():
    # The empty-day shortcut must give the same distribution as drawing every day until N.
    samples = np.array([0, 0, 1, 3] * 21)
    rng = np.random.default_rng(7)
    brute = (samples[rng.integers(0, 84, size=(10_000, 120))].cumsum(axis=1) >= 10).argmax(axis=1) + 1
    fast = trial_steps(samples, 10)
    # mean days for 10 items at 1 item/day on average is about 10 + overshoot; the two agree closely
    assert abs(fast.mean() - brute.mean()) < 0.25
    assert [np.quantile(fast, c) for c in (0.5, 0.85)] == [np.quantile(brute, c) for c in (0.5, 0.85)]


def test_trials_are_reproducible_by_seed():
    samples = np.array([0, 1, 2, 5] * 21)
    assert np.array_equal(trial_totals(samples, 14, seed=1), trial_totals(samples, 14, seed=1))
    assert not np.array_equal(trial_totals(samples, 14, seed=1), trial_totals(samples, 14, seed=2))
    assert np.array_equal(trial_steps(samples, 30, seed=3), trial_steps(samples, 30, seed=3))
    d = data(history_db(lambda i: i % 3))
    assert how_many(d, 14, seed=11) == how_many(d, 14, seed=11)
    assert how_many(d, 14, seed=11)["seed"] == 11


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
    assert hm["note"] == "no items done in the 12 weeks before: no forecast"


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
    # previous = as of 16 Mar 00:00: history 22 Dec .. 15 Mar = 14 empty days + 70 days of 2 items, so a
    # 14-day total is 2 x Binomial(14, 5/6); CDF: P(<=8) = .019, P(<=9) = .069, P(<=10) = .194,
    # P(<=11) = .421, P(<=12) = .704 -> median 12 (24 items), 15th pct 10 (20), 5th pct 9 (18)
    assert r.previous == {"p50": 24, "p85": 20, "p95": 18}
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
    assert r.notes == ["no items done in the 12 weeks before: no forecast"]


def test_ten_thousand_trials_are_fast():
    samples = np.array([0, 1, 1, 2, 3, 0, 4] * 12)
    trial_totals(samples, 14), trial_steps(samples, 20)  # warm up
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        trial_totals(samples, 14)
        trial_steps(samples, 20)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.05


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
