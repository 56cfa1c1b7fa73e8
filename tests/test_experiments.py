"""Improvement experiments (metrics/experiments.py): the verdict by docs/metrics.md "Improvement
experiments" on small hand-built databases, starting and stopping, refusals, and the settings log.

Every experiment here starts on Monday 2 March 2026 00:00 UTC and lasts 4 weeks unless said
otherwise: during = [2 Mar, 30 Mar), before = [2 Feb, 2 Mar).
"""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from builders import deploy, new_db, pr, team, ts

from metrics import experiments as ex
from metrics.errors import VsmError
from metrics.stats import p_text
from metrics.teams import create_team, set_org, settings_log

START = ts("2026-03-02 00:00")
END = ts("2026-03-30 00:00")
METRICS = ["pr-cycle-time", "merged-without-review", "deployment-frequency", "wip", "sprint-completion"]


@pytest.fixture
def db():
    d = new_db()
    create_team(d, team(metrics=METRICS), who="U0")
    return d


def merged_pr(db, number: int, merged: str, hours: float, *, reviewed: bool = True) -> None:
    """A PR merged at ``merged`` whose first commit was ``hours`` before: its PR cycle time."""
    at = ts(merged)
    review = [(merged, "bob", "APPROVED")] if reviewed else []
    pr(db, number, at - hours * 3600, first_commit=at - hours * 3600, merged=merged, reviews=review)


def z_p(u: float, n1: int, n2: int, tie_term: float = 0.0) -> float:
    """Mann–Whitney's two-sided p by the normal approximation with continuity and tie corrections,
    from the U of the larger side (hand computation, independent of metrics.stats)."""
    n = n1 + n2
    sd = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    return math.erfc((u - n1 * n2 / 2 - 0.5) / sd / math.sqrt(2))


def days_before(day: int, hour: int = 12) -> str:
    return f"2026-02-{day:02d} {hour:02d}:00"


def days_during(day: int, hour: int = 12) -> str:
    return f"2026-03-{day:02d} {hour:02d}:00"


def start_pr_experiment(db, **kw) -> ex.Experiment:
    args = dict(metric_id="pr-cycle-time", change="pair on every review", weeks=4, who="U1", now=START)
    return ex.start(db, "pay", **(args | kw))


# -- durations: Mann–Whitney U -------------------------------------------------------------------------
def test_a_clear_shift_in_a_duration_is_improved_with_its_numbers_and_the_north_star_beside_it(db):
    set_org(db, "north_star", ["pr-cycle-time"], who="U0")
    # Before: 12 PRs of 48..59 h; during: 12 of 10..21 h, every one faster (U = 144 of 144).
    for i in range(12):
        merged_pr(db, 100 + i, days_before(3 + 2 * i), 48 + i)
        merged_pr(db, 200 + i, days_during(3 + 2 * i), 10 + i)
    merged_pr(db, 300, "2026-01-30 12:00", 1)  # before the window before: not counted
    merged_pr(db, 301, "2026-03-30 00:00", 1)  # at the end (half-open): not counted
    exp = start_pr_experiment(db)
    assert (exp.state, exp.started, exp.ends) == ("running", START, END)
    assert ex.due(db, END - 1) == []
    assert [e.id for e in ex.due(db, END)] == [exp.id]

    done = ex.conclude(db, exp, END + 3600)
    assert done.verdict == "improved" and done.state == "concluded" and not done.stopped_early
    p = z_p(144, 12, 12)  # z = 71.5 / √300 = 4.128
    assert done.result["test"] == {
        "name": "mann-whitney",
        "p": round(p, 6),
        "n_before": 12,
        "n_during": 12,
        "alpha": 0.05,
    }
    assert done.detail == (
        "Mann–Whitney U test, two-sided, α = 0.05: p < 0.001; median 15.5 h during the experiment "
        "(n = 12) vs 2.2 d in the 4 weeks before (n = 12)"
    )
    # p85 of 48..59: x[9] + 0.35 = 57.35; of 10..21: 19.35.
    assert done.result["before"] == {
        "since": "2026-02-02T00:00:00Z",
        "until": "2026-03-02T00:00:00Z",
        "value": {"p50": 53.5, "p85": 57.35},
        "sample_size": 12,
    }
    assert done.result["during"]["value"] == {"p50": 15.5, "p85": 19.35}
    assert done.measured_until == END and done.concluded_at == END + 3600
    [north] = done.north_star
    assert north["metric"] == "pr-cycle-time"
    assert north["before"]["value"] == {"p50": 53.5, "p85": 57.35} and north["before"]["sample_size"] == 12
    assert north["during"]["value"] == {"p50": 15.5, "p85": 19.35}
    shown = done.to_json()
    assert shown["north_star_note"] == ex.NORTH_STAR_NOTE
    assert (shown["started"], shown["ends"], shown["verdict"]) == (
        "2026-03-02T00:00:00Z",
        "2026-03-30T00:00:00Z",
        "improved",
    )
    assert ex.due(db, END + 7200) == []


def test_the_same_shift_the_other_way_is_worse(db):
    for i in range(12):
        merged_pr(db, 100 + i, days_before(3 + 2 * i), 10 + i)
        merged_pr(db, 200 + i, days_during(3 + 2 * i), 48 + i)
    done = ex.conclude(db, start_pr_experiment(db), END)
    assert done.verdict == "worse"
    assert "median 2.2 d during the experiment (n = 12) vs 15.5 h in the 4 weeks before" in done.detail


def test_interleaved_durations_are_no_real_change(db):
    # Before 10, 12, ..., 32 h; during 11, 13, ..., 33 h: each during PR is slower than k + 1 of the
    # before ones, U = 1 + 2 + ... + 12 = 78 of 144: z = 5.5 / √300, p = 0.751.
    for k in range(12):
        merged_pr(db, 100 + k, days_before(3 + 2 * k), 10 + 2 * k)
        merged_pr(db, 200 + k, days_during(3 + 2 * k), 11 + 2 * k)
    done = ex.conclude(db, start_pr_experiment(db), END)
    assert done.verdict == "no real change"
    assert done.result["test"]["p"] == round(z_p(78, 12, 12), 6)
    assert "p = 0.751" in done.detail


def test_fewer_than_ten_a_side_is_not_enough_data_however_large_the_shift(db):
    for i in range(12):
        merged_pr(db, 100 + i, days_before(3 + 2 * i), 48 + i)
    for i in range(9):
        merged_pr(db, 200 + i, days_during(3 + 2 * i), 1)
    done = ex.conclude(db, start_pr_experiment(db), END)
    assert done.verdict == "not enough data for a verdict"
    assert done.detail == (
        "not enough data for a verdict: 9 PRs during the experiment, 12 in the 4 weeks before "
        "(10 a side needed)"
    )
    assert done.result["test"]["p"] is None and done.result["during"]["sample_size"] == 9


# -- rates: Fisher's exact --------------------------------------------------------------------------------
def test_a_rate_is_judged_by_fishers_exact_test(db):
    # Merged without review: 10 of 20 before, 1 of 20 during; scipy.stats.fisher_exact([[1, 19],
    # [10, 10]]) gives p = 0.0033420517.
    for i in range(20):
        merged_pr(db, 100 + i, days_before(2 + i), 5, reviewed=i >= 10)
        merged_pr(db, 200 + i, days_during(2 + i), 5, reviewed=i >= 1)
    exp = ex.start(db, "pay", "merged-without-review", "a second pair of eyes", 4, "U1", START)
    done = ex.conclude(db, exp, END)
    assert done.verdict == "improved"  # lower is better
    assert done.result["test"]["name"] == "fisher"
    assert done.result["test"]["p"] == pytest.approx(0.0033420517, abs=1e-6)
    assert done.detail == (
        "Fisher's exact test, two-sided, α = 0.05: p = 0.003; 5.0% during the experiment "
        "(1 of 20 PRs) vs 50.0% in the 4 weeks before (10 of 20)"
    )
    assert (done.result["before"]["value"], done.result["during"]["value"]) == (50.0, 5.0)


# -- counts: Mann–Whitney on weekly counts ---------------------------------------------------------------
def deploys_per_week(db, first_monday: float, weeks: int, per_week: int, prefix: str) -> None:
    for w in range(weeks):
        for k in range(per_week):
            at = first_monday + w * 7 * 86400 + (k + 1) * 86400 + 3600
            deploy(db, f"{prefix}-{w}-{k}", at)


def test_a_count_is_judged_on_weekly_counts_from_ten_weeks_a_side(db):
    weeks10 = 10 * 7 * 86400
    deploys_per_week(db, START - weeks10, 10, 2, "b")  # 2 a week before
    deploys_per_week(db, START, 10, 5, "d")  # 5 a week during
    exp = ex.start(db, "pay", "deployment-frequency", "ship behind flags", 10, "U1", START)
    done = ex.conclude(db, exp, START + weeks10)
    # All 20 weekly counts tied in two groups of 10: tie term 2 · (10³ − 10) = 1980; U = 100 of 100.
    assert done.verdict == "improved"
    assert done.result["test"] == {
        "name": "mann-whitney-weekly-counts",
        "p": round(z_p(100, 10, 10, 1980), 6),
        "n_before": 10,
        "n_during": 10,
        "alpha": 0.05,
    }
    assert (done.result["before"]["value"], done.result["during"]["value"]) == (2.0, 5.0)
    assert (done.result["before"]["sample_size"], done.result["during"]["sample_size"]) == (20, 50)
    assert done.detail == (
        f"Mann–Whitney U test on weekly counts, two-sided, α = 0.05: {p_text(z_p(100, 10, 10, 1980))}; "
        "median 5.0 deployments a week during the experiment (10 weeks) vs 2.0 deployments a week in "
        "the 10 weeks before (10 weeks)"
    )


def test_weeks_before_the_history_began_are_unknown_not_zeros(db):
    weeks10 = 10 * 7 * 86400
    # The deployments' history starts in the before window's 3rd week: zero-filled, the first two
    # weeks would make ten weeks a side (and "improved"); unknown, they leave 8.
    deploys_per_week(db, START - weeks10 + 2 * 7 * 86400, 8, 5, "b")
    deploys_per_week(db, START, 10, 5, "d")
    exp = ex.start(db, "pay", "deployment-frequency", "ship behind flags", 10, "U1", START)
    done = ex.conclude(db, exp, START + weeks10)
    assert done.verdict == "not enough data for a verdict"
    assert done.detail.startswith("not enough data for a verdict: 10 weeks during the experiment, 8 in")


# -- stopping early ---------------------------------------------------------------------------------------
def test_stop_early_judges_the_data_so_far_against_the_same_length_before(db):
    stop_at = ts("2026-03-16 00:00")  # after 2 weeks: during [2 Mar, 16 Mar), before [16 Feb, 2 Mar)
    for i in range(10):
        merged_pr(db, 100 + i, f"2026-02-{16 + i:02d} 12:00", 40 + i)
        merged_pr(db, 200 + i, days_during(2 + i), 10 + i)
    for i in range(5):  # in the 4 weeks before but not in the 2 weeks before; fast, so they'd blur it
        merged_pr(db, 300 + i, days_before(3 + i), 1)
    merged_pr(db, 400, "2026-03-20 12:00", 1)  # after the stop
    exp = start_pr_experiment(db)
    with pytest.raises(VsmError, match="other has no experiment #1"):
        ex.stop(db, exp.id, "other", "U9", stop_at)
    with pytest.raises(VsmError, match="runs until 2026-03-30T00:00:00Z: stop it"):
        ex.conclude(db, exp, stop_at)
    done = ex.stop(db, str(exp.id), "pay", "U2", stop_at)
    assert (done.state, done.stopped_early, done.verdict) == ("stopped", True, "improved")
    assert done.result["test"]["n_before"] == 10 and done.result["test"]["n_during"] == 10
    assert done.result["test"]["p"] == round(z_p(100, 10, 10), 6)
    assert done.result["before"]["since"] == "2026-02-16T00:00:00Z"
    assert done.measured_until == stop_at and done.ends == END
    assert "in the 2 weeks before (n = 10)" in done.detail
    assert ex.due(db, END + 1) == []  # stopped: never concluded again
    assert ex.conclude(db, exp, END + 1).state == "stopped"
    with pytest.raises(VsmError, match="over already"):
        ex.stop(db, exp.id, "pay", "U2", stop_at + 60)
    whats = [(r["who"], r["what"]) for r in settings_log(db, "pay")][1:]
    assert whats == [
        ("U1", "started experiment #1 on PR cycle time (pair on every review) for 4 weeks"),
        ("U2", "stopped experiment #1 on PR cycle time (pair on every review) early: improved"),
    ]


# -- refusals --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"metric_id": "lead-time"}, "choose one of pay's metrics"),
        ({"metric_id": "nope"}, "choose one of pay's metrics"),
        ({"metric_id": None}, "choose one of pay's metrics"),
        ({"metric_id": "wip"}, "Work in progress has no better direction"),
        ({"metric_id": "sprint-completion"}, "no single observations to compare"),
        ({"metric_id": "deployment-frequency", "weeks": 4}, "needs at least 10 weeks"),
        ({"change": ""}, "1 to 300 characters"),
        ({"change": " \n\t "}, "1 to 300 characters"),
        ({"change": "x" * 301}, "301 characters long: at most 300"),
        ({"change": "ring the \x07 bell"}, "plain text"),
        ({"change": "hidden \u202e text"}, "plain text"),
        ({"change": 42}, "plain text"),
        ({"weeks": 1}, "from 2 to 12"),
        ({"weeks": 13}, "from 2 to 12"),
        ({"weeks": 4.0}, "from 2 to 12"),
        ({"weeks": True}, "from 2 to 12"),
        ({"weeks": "4"}, "from 2 to 12"),
        ({"now": float("nan")}, "now"),
        ({"now": 1e300}, "now"),
        ({"who": ""}, "settings log"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(db, kw, message):
    with pytest.raises(VsmError, match=message):
        start_pr_experiment(db, **kw)
    assert list(db["experiments"].rows) == []
    assert [r["what"] for r in settings_log(db, "pay")] == ["created"]


def test_an_unknown_team_is_refused(db):
    with pytest.raises(VsmError, match="unknown team 'nobody'"):
        ex.start(db, "nobody", "pr-cycle-time", "x", 4, "U1", START)
    assert list(db["experiments"].rows) == []


def test_one_running_experiment_per_team_and_metric(db):
    first = start_pr_experiment(db)
    with pytest.raises(VsmError, match="already runs experiment #1 on PR cycle time"):
        start_pr_experiment(db, change="something else")
    other = ex.start(db, "pay", "merged-without-review", "review first", 2, "U1", START)  # another metric
    assert [e.id for e in ex.experiments(db, "PAY")] == [other.id, first.id]  # newest first
    ex.stop(db, first.id, "pay", "U1", START + 86400)
    again = start_pr_experiment(db, now=START + 2 * 86400)  # the metric is free again
    assert again.id == 3
    # The store refuses a second running one by itself too, whoever writes it.
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "insert into experiments (team, metric, change, weeks, timezone, started, ends) "
            "values ('pay', 'pr-cycle-time', 'x', 4, 'UTC', 1, 2)"
        )


def test_text_is_kept_as_one_line_of_plain_text(db):
    exp = start_pr_experiment(db, change="  try   pairing\non reviews ")
    assert exp.change == "try pairing on reviews"
    assert start_pr_experiment(db, metric_id="merged-without-review", change="y" * 300).change == "y" * 300


# -- conclude exactly once, and the log ------------------------------------------------------------------
def test_conclude_is_idempotent_and_every_start_and_verdict_is_logged(db):
    exp = start_pr_experiment(db)
    first = ex.conclude(db, exp, END)
    again = ex.conclude(db, exp, END + 86400)  # the scheduler retries with the stale object
    assert first.verdict == again.verdict == "not enough data for a verdict"
    assert again.concluded_at == END
    log = settings_log(db, "pay")
    assert [(r["who"], r["what"]) for r in log] == [
        ("U0", "created"),
        ("U1", "started experiment #1 on PR cycle time (pair on every review) for 4 weeks"),
        (
            "vsm-bot",
            "experiment #1 on PR cycle time (pair on every review) ended: not enough data for a verdict",
        ),
    ]
    assert json.loads(log[1]["change"]) == {
        "experiment": [
            None,
            {"id": 1, "metric": "pr-cycle-time", "change": "pair on every review", "weeks": 4},
        ]
    }
    assert json.loads(log[2]["change"]) == {
        "experiment": ["running", {"id": 1, "state": "concluded", "verdict": "not enough data for a verdict"}]
    }
    row = db.execute("select * from experiments").fetchall()
    assert len(row) == 1 and "U1" not in json.dumps(first.to_json())  # who is in the log only


# -- progress for the digest -----------------------------------------------------------------------------
def test_progress_is_the_metric_so_far_against_the_same_length_before(db):
    now = ts("2026-03-09 12:00")  # 7.5 days in: before = [22 Feb 12:00, 2 Mar)
    merged_pr(db, 1, "2026-02-22 11:00", 99)  # just before the window before
    merged_pr(db, 2, "2026-02-22 13:00", 30)
    merged_pr(db, 3, "2026-02-27 13:00", 50)
    merged_pr(db, 4, "2026-03-03 13:00", 10)
    merged_pr(db, 5, "2026-03-09 13:00", 1)  # after now
    exp = start_pr_experiment(db)
    p = ex.progress(db, exp, now)
    assert p.to_json() == {
        "experiment": exp.id,
        "metric": "pr-cycle-time",
        "metric_name": "PR cycle time",
        "change": "pair on every review",
        "days_done": 7.5,
        "days": 28,
        "ends": "2026-03-30T00:00:00Z",
        "before": {
            "since": "2026-02-22T12:00:00Z",
            "until": "2026-03-02T00:00:00Z",
            "value": {"p50": 40.0, "p85": 47.0},
            "sample_size": 2,
        },
        "during": {
            "since": "2026-03-02T00:00:00Z",
            "until": "2026-03-09T12:00:00Z",
            "value": {"p50": 10.0, "p85": 10.0},
            "sample_size": 1,
        },
        "enough_for_a_verdict": False,
        "ended": False,
        "waiting_for": None,
        "figures_cut": None,
    }
    assert ex.get(db, exp.id).state == "running"  # progress judges nothing


def test_the_end_keeps_the_wall_clock_time_across_a_dst_change():
    # 2 weeks from Monday 16 Mar 2026 09:00 in London (GMT) end on 30 Mar 09:00 BST = 08:00 UTC.
    assert ex.end_of(ts("2026-03-16 09:00"), 2, "Europe/London") == ts("2026-03-30 08:00")


def test_a_stop_within_a_day_of_the_start_ends_it_with_no_verdict_and_no_figures(db):
    """A start by mistake can be stopped at once (the team can then start the right one on that
    metric), but hours compare nothing: no "0 in the 5.0 hours before"."""
    exp = start_pr_experiment(db)
    done = ex.stop(db, exp.id, "pay", "U2", START + 5 * 3600)
    assert (done.state, done.verdict) == ("stopped", "not enough data for a verdict")
    assert (
        done.detail
        == "not enough data for a verdict: stopped within a day of its start, too soon to compare anything"
    )
    assert "before" not in done.result and done.north_star == []
    assert ex.start(db, "pay", "pr-cycle-time", "pair on reviews", 4, "U1", START + 6 * 3600).running
    # A day in, it is judged on its data.
    later = ex.start(db, "pay", "deployment-frequency", "ship behind flags", 10, "U1", START)
    assert "before" in ex.stop(db, later.id, "pay", "U2", START + 86400).result


def test_a_stop_pressed_after_the_end_concludes_it_as_run_to_its_end(db):
    exp = start_pr_experiment(db)
    done = ex.stop(db, exp.id, "pay", "U2", END + 3600)
    assert (done.state, done.stopped_early, done.measured_until) == ("concluded", False, END)
    assert settings_log(db, "pay")[-1]["what"].endswith("ended: not enough data for a verdict")


def test_a_verdict_written_while_conclude_was_computing_is_kept(db, monkeypatch):
    """The scheduler computes outside the write lock; a stop that lands meanwhile wins, once."""
    exp = start_pr_experiment(db)
    real = ex.compare

    def stop_meanwhile(*args):
        db.execute(
            "update experiments set state = 'stopped', verdict = 'no real change', concluded_at = ? "
            "where id = ?",
            [END - 60, exp.id],
        )
        return real(*args)

    monkeypatch.setattr(ex, "compare", stop_meanwhile)
    done = ex.conclude(db, exp, END)
    assert (done.state, done.verdict, done.concluded_at) == ("stopped", "no real change", END - 60)
    assert [r["what"] for r in settings_log(db, "pay")][-1].startswith("started experiment")


def test_running_per_team_and_concluded_across_teams_for_the_digests(db):
    create_team(db, team(name="web", channel="C2", metrics=["pr-cycle-time"]), who="U0")
    a = start_pr_experiment(db)
    b = ex.start(db, "web", "pr-cycle-time", "smaller PRs", 2, "U3", START)
    c = ex.start(db, "pay", "merged-without-review", "review first", 2, "U1", START + 60)
    assert [e.id for e in ex.running(db, "pay")] == [a.id, c.id]
    ex.stop(db, c.id, "pay", "U1", START + 86400)
    ex.conclude(db, b, ex.get(db, b.id).ends)  # 16 Mar
    assert [e.id for e in ex.running(db, "pay")] == [a.id]
    assert [(e.team, e.id) for e in ex.concluded_between(db, START, START + 14 * 86400 + 1)] == [
        ("pay", c.id),
        ("web", b.id),
    ]
    assert [e.id for e in ex.concluded_between(db, START + 2 * 86400, START + 14 * 86400)] == []
    with pytest.raises(VsmError, match="pay has no experiment 'x; drop'"):
        ex.stop(db, "x; drop", "pay", "U1", START)
