"""What a Result says in words (issue 12 §2–3): a previous period before the history is "no earlier
data", an empty figure says why, a signal reads in one line with its statistics apart, and data-quality
notes are sentences. Small databases, expectations computed by hand in the comments.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from builders import deploy, item, new_db, pr, sprint, team, ts

from bot.cli import main
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Result
from metrics.dataset import TeamData
from metrics.store import open_db
from metrics.teams import seed_from_config
from metrics.timeutil import dates_window, zone

UTC = zone("UTC")


def run(db, metric: str, since: str, until: str, now: str, **team_kw) -> Result:
    t = team(**team_kw)
    return CATALOGUE[metric].compute(TeamData(db, t, ts(now)), dates_window(since, until, zone(t.timezone)))


def flowed(db, key: str, committed: str, done: str | None) -> None:
    """In Progress at ``committed``, Done at ``done`` (its last change, which places the history)."""
    item(db, key, committed, [(committed, "In Progress")] + ([(done, "Done")] if done else []))


# -- the previous period before the history began ----------------------------------------------------------
Q3 = ("2026-07-01", "2026-10-01")  # 92 days; the previous period is 31 Mar (a Tuesday) .. 1 Jul


def q3_db(first_done: str | None, db=None) -> object:
    """Ten items done in Q3, one on 10 Jun (in Q2), and optionally one earlier (``first_done``)."""
    db = new_db() if db is None else db
    for i in range(10):
        day = date(2026, 7, 6) + timedelta(days=7 * i)
        flowed(db, f"PAY-{i}", f"{day} 09:00", f"{day} 17:00")
    flowed(db, "PAY-Q2", "2026-06-10 09:00", "2026-06-10 17:00")
    if first_done:
        flowed(db, "PAY-OLD", f"{first_done} 08:00", f"{first_done} 09:00")
    return db


def test_a_previous_period_mostly_before_the_first_item_is_no_earlier_data_not_zero():
    """Throughput for 2026Q3 against a Q2 whose first ten weeks had no data at all: without the rule
    the previous figure was 1 item / 13.1 weeks = 0.0761 and Q3 read "↑ 900%"."""
    r = run(q3_db(None), "throughput", *Q3, "2026-10-05 00:00")
    assert r.value == round(10 / (92 / 7), 4) == 0.7609
    assert (r.previous, r.previous_note) == (None, "no earlier data")
    out = r.to_json()
    assert (out["previous"], out["previous_note"]) == (None, "no earlier data")


def test_a_previous_period_that_only_starts_before_the_history_is_unknown_too():
    """The rule is "starts before", not "mostly before": history from the week of Monday 6 Apr leaves
    only 31 Mar – 5 Apr of the 92 previous days unknown, and that is enough to withhold the figure."""
    r = run(q3_db("2026-04-06"), "throughput", *Q3, "2026-10-05 00:00")
    assert (r.previous, r.previous_note) == (None, "no earlier data")


def test_a_previous_period_inside_the_history_keeps_its_figure():
    """History from Wednesday 1 Apr: its first week is that of Monday 30 Mar, and the previous period
    (from Tuesday 31 Mar) lies inside it. 1 Apr and 10 Jun are in it: 2 items / (92 / 7) weeks."""
    r = run(q3_db("2026-04-01"), "throughput", *Q3, "2026-10-05 00:00")
    assert r.previous == round(2 / (92 / 7), 4) == 0.1522
    assert r.previous_note is None


def test_aging_wip_counts_at_the_window_start_only_when_the_history_reaches_it():
    db = new_db()
    flowed(db, "PAY-1", "2026-03-04 09:00", None)  # last change Wednesday 4 Mar: history from 2 Mar
    before = run(db, "aging-wip", "2026-02-23", "2026-03-09", "2026-03-06 00:00")
    assert (before.previous, before.previous_note) == (None, "no earlier data")  # at 23 Feb: unknown
    inside = run(db, "aging-wip", "2026-03-02", "2026-03-09", "2026-03-06 00:00")
    assert (inside.previous, inside.previous_note) == (0, None)  # at 2 Mar 00:00: nothing open yet


# -- why a figure is empty ---------------------------------------------------------------------------------
def test_an_empty_scope_is_the_reason():
    db = new_db()
    flowed(db, "PAY-1", "2026-03-03 09:00", "2026-03-03 17:00")
    cases = [
        ("cycle-time", {"jira_projects": []}, "no Jira projects in this team's scope"),
        ("sprint-completion", {"jira_projects": []}, "no Jira boards or projects in this team's scope"),
        ("pr-cycle-time", {"repos": []}, "no repositories in this team's scope"),
        (
            "deployment-frequency",
            {"repos": [], "services": []},
            "no services or repositories in this team's scope",
        ),
    ]
    for metric, scope, reason in cases:
        r = run(db, metric, "2026-03-02", "2026-03-09", "2026-03-20 00:00", **scope)
        assert (r.sample_size, r.no_data_reason) == (0, reason), metric
        assert r.signal is None and r.signal_note is not None, metric  # never "within normal variation"


def test_a_source_never_synced_is_the_reason():
    db = new_db()
    cases = [
        ("cycle-time", {}, "Jira has not been synced yet"),
        ("pr-review-time", {}, "GitHub has not been synced yet"),
        ("pr-review-time", {"repos": [], "gitlab_projects": ["acme/pay"]}, "GitLab has not been synced yet"),
        ("time-to-restore", {}, "PagerDuty has not been synced yet"),
        ("sprint-completion", {}, "Jira has not been synced yet"),
    ]
    for metric, scope, reason in cases:
        r = run(db, metric, "2026-03-02", "2026-03-09", "2026-03-20 00:00", **scope)
        assert r.no_data_reason == reason, metric
    # Lead time for changes needs the PRs as well as the deployments that shipped them.
    deploy(db, "d1", "2026-03-03 10:00", prs=[1])
    r = run(db, "lead-time-for-changes", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert r.no_data_reason == "GitHub has not been synced yet"


def test_a_synced_source_with_nothing_of_the_scope_says_so():
    db = new_db()
    flowed(db, "WEB-1", "2026-03-03 09:00", "2026-03-03 17:00")  # another team's project
    db["sync_status"].insert({"source": "jira", "stream": "issues", "last_success": "2026-03-19T00:00:00Z"})
    r = run(db, "cycle-time", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert r.no_data_reason == "no Jira issues synced yet for this team's projects"
    db = new_db()  # a sync ran (GitHub held nothing to store): no longer "not synced yet"
    db["sync_status"].insert({"source": "gh", "stream": "pulls", "last_success": "2026-03-19T00:00:00Z"})
    r = run(db, "pr-cycle-time", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert r.no_data_reason == "no pull requests synced yet for this team's repositories"


def test_nothing_finished_and_a_period_before_the_history():
    db = new_db()
    flowed(db, "PAY-1", "2026-02-02 09:00", "2026-02-03 17:00")
    flowed(db, "PAY-2", "2026-03-10 09:00", None)  # in progress since, never finished
    r = run(db, "cycle-time", "2026-03-02", "2026-03-16", "2026-03-20 00:00")
    assert (r.value, r.sample_size, r.no_data_reason) == (None, 0, "no items finished in this period")
    assert r.signal is None and r.signal_note is not None
    r = run(db, "throughput", "2026-03-02", "2026-03-16", "2026-03-20 00:00")
    assert (r.value, r.no_data_reason) == (0.0, "no items finished in this period")
    r = run(db, "cycle-time", "2025-12-01", "2026-01-05", "2026-03-20 00:00")
    assert r.no_data_reason == "this period is before the synced history begins"
    pr(db, 1, "2026-03-03 09:00")  # open, never merged
    r = run(db, "pr-cycle-time", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert r.no_data_reason == "no PRs merged in this period"


def test_a_failure_rate_without_any_incident_synced_does_not_read_as_good_news():
    db = new_db()
    deploy(db, "d1", "2026-03-03 10:00")
    r = run(db, "change-failure-rate", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert (r.value, r.sample_size) == (None, 0)  # unknown, not 0% (which would judge a target)
    assert r.no_data_reason == "PagerDuty has not been synced yet, so no deployment can count as failed"
    assert all(p["value"] is None for p in r.series)


def test_a_figure_with_data_gives_no_reason():
    db = new_db()
    flowed(db, "PAY-1", "2026-03-03 09:00", "2026-03-03 17:00")
    r = run(db, "cycle-time", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert r.sample_size == 1 and r.no_data_reason is None
    assert r.signal_note != "no data in this period"


# -- a signal in one line, its statistics apart ----------------------------------------------------------
BASE_MONDAY = date(2025, 10, 13)  # 20 weeks before Monday 2 Mar 2026


def weekly_cycle_times(db, hours: list[float]) -> None:
    """One item a week from ``BASE_MONDAY``, committed Monday 09:00 and done ``hours[k]`` later."""
    for k, h in enumerate(hours):
        monday = BASE_MONDAY + timedelta(weeks=k)
        start = ts(f"{monday} 09:00")
        item(db, f"PAY-{k}", f"{monday} 09:00", [(start, "In Progress"), (start + h * 3600, "Done")])


def test_a_slow_week_is_said_as_slower_with_the_limits_in_the_detail():
    """Weekly medians alternate 10 h and 12 h for 20 weeks: X̄ = 11 h, mR̄ = 2 h, limits 11 ± 5.32 =
    5.68 .. 16.32 h. A week at 20 h is beyond the upper limit; for a duration, up is slower."""
    db = new_db()
    weekly_cycle_times(db, [10, 12] * 10 + [20])
    r = run(db, "cycle-time", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert r.signal == "slower than its normal weekly range (week of 2 Mar)"
    assert r.signal_detail == (
        "XmR chart: above the upper process limit (week of 2 Mar: 20.0 h); X̄ = 11.0 h, mR̄ = 2.0 h, "
        "natural process limits 5.7 h to 16.3 h, from 20 baseline weeks"
    )
    out = r.to_json()
    assert (out["signal"], out["signal_detail"]) == (r.signal, r.signal_detail)


def test_a_fast_week_is_said_as_faster():
    db = new_db()
    weekly_cycle_times(db, [10, 12] * 10 + [2])  # 2 h, below the lower limit 5.68 h
    r = run(db, "cycle-time", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert r.signal == "faster than its normal weekly range (week of 2 Mar)"
    assert r.signal_detail.startswith("XmR chart: below the lower process limit (week of 2 Mar: 2.0 h)")


def test_a_two_sample_signal_compares_the_items_with_the_weeks_before():
    """Six weeks of history (too few for XmR): 12 items of 10 h, then 12 of 30 h in the four weeks of
    March. Mann–Whitney: every March item ranks above every earlier one, U = 144 of 144, with the tie
    correction z = (144 − 72 − 0.5) / 15.01 = 4.76, p ≈ 0.000002."""
    db = new_db()
    n = 0
    for first, weeks, h in (("2026-01-19", 6, 10), ("2026-03-02", 4, 30)):
        for k in range(weeks):
            for _ in range(12 // weeks):
                monday = date.fromisoformat(first) + timedelta(weeks=k)
                start = ts(f"{monday} 09:00") + n * 60
                item(db, f"PAY-{n}", start, [(start, "In Progress"), (start + h * 3600, "Done")])
                n += 1
    r = run(db, "cycle-time", "2026-03-02", "2026-03-30", "2026-04-01 00:00")
    assert r.signal == "slower than the 6 weeks before (items in this period vs before)"
    assert r.signal_detail == (
        "Mann–Whitney U test, two-sided, α = 0.05: p < 0.001; median 1.3 d in this period (n = 12) "
        "vs 10.0 h in the 6 weeks before (n = 12)"
    )
    assert r.signal_note is None


def test_a_rate_says_better_or_worse_beside_its_direction():
    """PR size: larger is worse. Weekly medians alternate 100 and 120 lines (X̄ 110, mR̄ 20, upper limit
    163.2); a week of 400-line PRs is beyond it."""
    db = new_db()
    for k, lines in enumerate([100, 120] * 10 + [400]):
        monday = BASE_MONDAY + timedelta(weeks=k)
        pr(db, k, f"{monday} 09:00", merged=f"{monday} 15:00", additions=lines, deletions=0)
    r = run(db, "pr-size", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert r.signal == "larger (worse) than its normal weekly range (week of 2 Mar)"
    assert r.signal_detail.startswith(
        "XmR chart: above the upper process limit (week of 2 Mar: 400.0 lines); X̄ = 110.0 lines"
    )


# -- data-quality notes in plain words ----------------------------------------------------------------------
def test_items_straight_from_backlog_to_done_are_said_as_such():
    db = new_db()
    flowed(db, "PAY-1", "2026-03-03 09:00", "2026-03-03 17:00")
    for k in range(4):
        item(db, f"PAY-{10 + k}", "2026-03-02 09:00", [(f"2026-03-0{4 + k} 09:00", "Done")])
    r = run(db, "cycle-time", "2026-03-02", "2026-03-09", "2026-03-20 00:00")
    assert r.notes == [
        "4 items went straight from Backlog to Done and are not in cycle time",
        "low sample: only 1 item",
    ]


# -- vsm metric --json: every key kept, the new ones added -----------------------------------------------
OLD_KEYS = {
    "metric",
    "team",
    "since",
    "until",
    "value",
    "unit",
    "sample_size",
    "low_sample",
    "previous",
    "series",
    "signal",
    "signal_note",
    "limits",
    "notes",
    "extra",
    "items",
}


def test_vsm_metric_json_keeps_its_keys_and_adds_the_words(tmp_path, capsys, monkeypatch):
    path = tmp_path / "q3.db"
    db = q3_db(None, open_db(path))
    seed_from_config(db, [team()], {"north_star": []})
    monkeypatch.setenv("VSM_NOW", "2026-10-05T00:00:00Z")
    monkeypatch.delenv("VSM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    argv = ["metric", "throughput", "--team", "pay", "--since", Q3[0], "--until", Q3[1]]
    assert main([*argv, "--db", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= OLD_KEYS
    assert {"previous_note", "no_data_reason", "signal_detail"} <= set(out)
    assert (out["value"], out["sample_size"]) == (0.7609, 10)
    assert (out["previous"], out["previous_note"], out["no_data_reason"]) == (None, "no earlier data", None)


# -- sprint figures the test cannot judge say so -----------------------------------------------------------
def test_a_sprint_figure_too_small_to_test_says_so_instead_of_reading_as_calm():
    """One sprint, 2 items committed, 1 done at its end: Fisher's test needs 10 items a side."""
    db = new_db()
    item(db, "PAY-1", "2026-01-02 09:00", [("2026-01-06 09:00", "In Progress"), ("2026-01-08 09:00", "Done")])
    item(db, "PAY-2", "2026-01-02 09:00")
    events = [("PAY-1", "2026-01-04 09:00", "add"), ("PAY-2", "2026-01-04 09:00", "add")]
    sprint(db, "1", "2026-01-05 09:00", "2026-01-16 09:00", complete="2026-01-16 09:00", events=events)
    window = dates_window("2026-01-05", "2026-02-02", UTC)
    data = TeamData(db, team(), ts("2026-02-10 00:00"))
    r = CATALOGUE["sprint-completion"].compute(data, window)
    assert (r.value, r.signal) == (50.0, None)
    assert (
        r.signal_note == "too few committed items for a signal (2 in this period, 0 before; 10 a side needed)"
    )
    r = CATALOGUE["sprint-scope-change"].compute(data, window)
    assert (r.value, r.signal) == (0.0, None)
    assert r.signal_note == "not tested for signals: this share can pass 100%"
    r = CATALOGUE["sprint-completion"].compute(data, dates_window("2026-02-02", "2026-02-09", UTC))
    assert (r.sample_size, r.no_data_reason) == (0, "no sprint ended in this period")
