"""Signal versus noise (docs/metrics.md): a baseline holds only weeks on or after the first week in which the
metric's source has data, a short history gives a note instead of an XmR verdict, a partial week is
not tested, a run says when it ended, and a chart draws the limits the verdict used.

Weekly deployment counts are the workhorse: a baseline alternating 10 and 12 deploys has X̄ = 11 and
mR̄ = 2, so its natural process limits are 11 ± 5.32 = 5.68 .. 16.32 and the 3-of-4 zones lie beyond
11 ± 2.66 = 8.34 .. 13.66.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from builders import deploy, incident, item, new_db, team, ts

from bot.cli import main
from bot.render import chart, replies
from bot.render import digest as digest_view
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import SPRINTS, Result
from metrics.dataset import TeamData
from metrics.digest import Digest, Figure, build_digest
from metrics.sample import SAMPLE_ORG, build_sample, sample_teams
from metrics.store import memory_db, open_db
from metrics.teams import list_teams, seed_from_config
from metrics.timeutil import Window, days_ending_today, local_midnight, week_start, zone

UTC_ZONE = zone("UTC")
SOURCES = {"items", "prs", "deployments", "incidents", SPRINTS}
NO_SIGNAL_RULES = {"aging-wip", "flow-distribution", "forecast"}  # no signal is ever computed for them


def win(since: str, until: str) -> Window:
    return Window(
        local_midnight(date.fromisoformat(since), UTC_ZONE),
        local_midnight(date.fromisoformat(until), UTC_ZONE),
    )


def weekly_deploys(db, first_monday: str, counts: list[int], *, failing: int = 0) -> None:
    """``counts[k]`` deployments in the k-th week from ``first_monday``, one a day from Monday 09:00;
    the first ``failing`` of each week is followed by an incident an hour later."""
    monday = date.fromisoformat(first_monday)
    for k, n in enumerate(counts):
        week = monday + timedelta(weeks=k)
        for i in range(n):
            at = datetime(week.year, week.month, week.day, 9 + i // 5, tzinfo=UTC) + timedelta(days=i % 5)
            deploy(db, f"{week}-{i}", at.strftime("%Y-%m-%d %H:%M"))
            if i < failing:
                incident(db, f"inc-{week}-{i}", (at + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"))


def compute(db, metric_id: str, window: Window, now: str) -> Result:
    return CATALOGUE[metric_id].compute(TeamData(db, team(), ts(now)), window)


ALTERNATING = [10, 12] * 10  # 20 baseline weeks: X̄ 11, mR̄ 2 (ends on 12: no run starts in it)


# -- a short history ---------------------------------------------------------------------------------------
def young_team_db() -> object:
    """Two deploys a week, every week, since 12 Jan 2026: 7 weeks before the baseline of a window that
    starts 2 Mar. Zero-filled, the baseline's 13 earlier weeks made every ordinary week 'high'."""
    db = new_db()
    weekly_deploys(db, "2026-01-12", [2] * 11)
    return db


def test_a_history_shorter_than_12_weeks_gives_a_note_not_a_signal():
    r = compute(young_team_db(), "deployment-frequency", win("2026-03-02", "2026-03-30"), "2026-04-01 00:00")
    assert r.value == 2.0
    assert r.signal is None
    assert r.signal_note == "not enough history for a signal (7 weeks)"
    assert r.limits is None
    out = r.to_json()
    assert out["signal"] is None and out["signal_note"] == "not enough history for a signal (7 weeks)"


def test_an_open_items_old_creation_does_not_reach_back_the_history():
    """Items history begins at the earliest stored update (the sync reads by update time): an item
    created in 2024 and still open does not make the 13 weeks before 12 Jan known zeros."""
    db = new_db()
    item(db, "PAY-1", "2024-06-03 09:00", [("2026-01-13 09:00", "In Progress")])
    n = 1
    for k in range(11):  # two items done each week from the week of 12 Jan
        for _ in range(2):
            n += 1
            done = date(2026, 1, 14) + timedelta(weeks=k)
            item(
                db,
                f"PAY-{n}",
                "2026-01-12 09:00",
                [("2026-01-12 10:00", "In Progress"), (f"{done} 09:00", "Done")],
            )
    r = compute(db, "throughput", win("2026-03-02", "2026-03-30"), "2026-04-01 00:00")
    assert r.value == 2.0
    assert (r.signal, r.signal_note) == (None, "not enough history for a signal (7 weeks)")


def test_every_surface_tells_a_missing_signal_from_a_calm_one(tmp_path, capsys, monkeypatch):
    path = tmp_path / "young.db"
    db = open_db(path)
    weekly_deploys(db, "2026-01-12", [2] * 11)
    seed_from_config(db, [team()], {"north_star": []})
    note = "not enough history for a signal (7 weeks)"
    monkeypatch.setenv("VSM_NOW", "2026-04-01T00:00:00Z")
    monkeypatch.delenv("VSM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no vsm.toml there: the team comes from the database
    argv = [
        "metric",
        "deployment-frequency",
        "--team",
        "pay",
        "--since",
        "2026-03-02",
        "--until",
        "2026-03-30",
    ]
    argv += ["--db", str(path)]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["signal"], out["signal_note"], out["limits"]) == (None, note, None)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert note in text and "within normal variation" not in text

    r = compute(db, "deployment-frequency", win("2026-03-02", "2026-03-30"), "2026-04-01 00:00")
    reply = replies.metric_message(team(), r)
    context = next(b for b in reply["blocks"] if b.get("block_id") == "signal")["elements"][0]["text"]
    assert context == f"ⓘ {note}"
    metric = CATALOGUE["deployment-frequency"]
    d = Digest(team(), r.window, [Figure(metric, r, None, None)], [])
    now = datetime(2026, 4, 1, tzinfo=UTC)
    assert note in digest_view.text(d, now)
    # Its only figure could not be tested: "no signals" must not read as "all calm".
    assert "Signals: none; no figure has the data and history to be tested." in digest_view.text(d, now)
    blocks = digest_view.message(d, now)["blocks"]
    figure = next(b for b in blocks if b.get("block_id") == "fig:deployment-frequency")
    assert f"_{note}_" in figure["text"]["text"]
    signals = next(b for b in blocks if b.get("block_id") == "signals")
    assert signals["text"]["text"] == "No signals: no figure has the data and history to be tested."


def test_a_calm_figure_with_enough_history_is_within_normal_variation():
    db = new_db()
    weekly_deploys(db, "2025-10-13", ALTERNATING + [11] * 4)
    r = compute(db, "deployment-frequency", win("2026-03-02", "2026-03-30"), "2026-04-01 00:00")
    assert (r.signal, r.signal_note, r.limits["centre"]) == (None, None, 11.0)
    d = Digest(team(), r.window, [Figure(CATALOGUE["deployment-frequency"], r, None, None)], [])
    now = datetime(2026, 4, 1, tzinfo=UTC)
    assert "Signals: none; every figure is within normal variation." in digest_view.text(d, now)
    signals = next(b for b in digest_view.message(d, now)["blocks"] if b.get("block_id") == "signals")
    assert signals["text"]["text"] == "No signals: every figure is within normal variation."


def test_the_two_sample_test_uses_only_the_history_of_every_source_the_metric_needs():
    """Deployments since 13 Oct 2025, incidents known only since 19 Jan 2026. Before then every
    deployment looks successful: counted, they made 40% failures look like a change (Fisher)."""
    db = new_db()
    weekly_deploys(db, "2025-10-13", [5] * 14)  # no incident source yet
    weekly_deploys(db, "2026-01-19", [5] * 10, failing=2)  # 6 baseline weeks + the window: 40%
    r = compute(db, "change-failure-rate", win("2026-03-02", "2026-03-30"), "2026-04-01 00:00")
    assert r.value == 40.0
    assert (r.signal, r.signal_note) == (None, "not enough history for a signal (6 weeks)")
    # A real change still speaks through the two-sample test, against the baseline it really has.
    db = new_db()
    weekly_deploys(db, "2025-10-13", [5] * 14)
    weekly_deploys(db, "2026-01-19", [5] * 6, failing=2)
    weekly_deploys(db, "2026-03-02", [5] * 4, failing=5)
    r = compute(db, "change-failure-rate", win("2026-03-02", "2026-03-30"), "2026-04-01 00:00")
    assert r.value == 100.0
    assert r.signal == "higher (worse) than the 6 weeks before (deployments in this period vs before)"
    assert r.signal_detail.startswith("Fisher's exact test, two-sided, α = 0.05: p < 0.001; ")
    assert r.signal_detail.endswith(
        "100.0% in this period (20 of 20) vs 40.0% in the 6 weeks before (12 of 30)"
    )
    assert r.signal_note is None


def test_a_sparse_series_says_it_has_too_few_weekly_points():
    """An incident every other week for 20 weeks: 20 weeks of history, but only 10 weekly medians, too
    few for limits (without the note, the figure read as "within normal variation")."""
    db = new_db()
    for k in range(0, 24, 2):
        monday = date(2025, 10, 13) + timedelta(weeks=k)
        incident(db, f"i{k}", f"{monday} 10:00", f"{monday} 12:00")
    r = compute(db, "time-to-restore", win("2026-03-02", "2026-03-30"), "2026-04-01 00:00")
    assert r.value == {"p50": 2.0, "p85": 2.0}
    assert (r.signal, r.signal_note) == (None, "too few weeks with data for a signal (10 of 20 weeks)")


# -- which weeks are tested, and how a run is worded -------------------------------------------------------
def test_a_partial_week_is_not_tested_and_recent_means_the_last_completed_week():
    db = new_db()
    # Baseline: the 20 weeks before the week of 2 Mar. Then 11, three high weeks (inside the limits),
    # and one deploy so far in the week of 30 Mar, which is still running on Wednesday 1 Apr.
    weekly_deploys(db, "2025-10-13", [*ALTERNATING, 11, 15, 15, 15, 1])
    window = days_ending_today(28, UTC_ZONE, datetime(2026, 4, 1, 12, tzinfo=UTC))  # Thu 5 Mar – Wed 1 Apr
    r = compute(db, "deployment-frequency", window, "2026-04-01 12:00")
    assert r.series[-1] == {"week": "2026-03-30", "value": 1.0, "partial": True}
    # Tested, the partial week's 1 would be "below the lower process limit" (5.68), the first rule.
    assert r.signal == "higher (better) than usual in 3 of 4 recent weeks, ending the week of 23 Mar"
    assert r.signal_detail == (
        "XmR chart: 3 of 4 recent weeks high, ending the week of 23 Mar (beyond X̄ + 1.33·mR̄ = 13.7); "
        "X̄ = 11.0, mR̄ = 2.0, natural process limits 5.7 to 16.3, from 20 baseline weeks"
    )
    assert r.limits == {
        "centre": 11.0,
        "upper": 16.32,
        "lower": 5.68,
        "baseline_weeks": [(date(2025, 10, 13) + timedelta(weeks=k)).isoformat() for k in range(20)],
    }


@pytest.mark.parametrize(
    ("window_weeks", "signal"),
    [
        (
            [10] * 8 + [12, 10, 12, 10, 12],
            "lower (worse) than usual for 8 weeks in a row, ending the week of 23 Feb",
        ),
        (
            [12, 10, 12, 10, 12] + [10] * 8,
            "lower (worse) than usual for 8 recent weeks in a row, ending the week of 30 Mar",
        ),
    ],
)
def test_a_run_says_when_it_ended(window_weeks, signal):
    db = new_db()
    weekly_deploys(db, "2025-08-18", ALTERNATING + window_weeks)
    r = compute(db, "deployment-frequency", win("2026-01-05", "2026-04-06"), "2026-04-08 00:00")
    assert r.signal == signal


# -- charts draw what the verdict used ---------------------------------------------------------------------
def test_the_chart_draws_the_limits_the_verdict_used():
    db = new_db()
    weekly_deploys(db, "2025-08-18", ALTERNATING + [10] * 8 + [12, 10, 12, 10, 12])
    r = compute(db, "deployment-frequency", win("2026-01-05", "2026-04-06"), "2026-04-08 00:00")
    metric = CATALOGUE["deployment-frequency"]
    d = chart.drawing(metric, r, 9.0)
    # The baseline's limits (11 ± 5.32), not those of the 13 weeks shown (X̄ ≈ 10.5).
    assert d.limits == r.limits
    assert (r.limits["centre"], r.limits["upper"], r.limits["lower"]) == (11.0, 16.32, 5.68)
    assert d.series.values == [10.0] * 8 + [12.0, 10.0, 12.0, 10.0, 12.0]
    assert (d.p85, d.target, d.target_label) == (None, 9.0, "target")
    drawn = {round(float(line.get_ydata()[0]), 4) for line in chart.figure(d).axes[0].lines[-4:]}
    assert drawn == {11.0, 16.32, 5.68, 9.0}
    png = chart.png(metric, r, 9.0)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_a_duration_target_is_drawn_against_the_weekly_p85():
    db = new_db()
    # Done on Wed 4 Mar with cycle times 1, 2, 3, 4 and 10 days: median 3 d, p85 6.4 d (153.6 h).
    for n, days in enumerate([1, 2, 3, 4, 10], start=1):
        committed = datetime(2026, 3, 4, 12, tzinfo=UTC) - timedelta(days=days)
        item(
            db,
            f"PAY-{n}",
            "2026-01-05 09:00",
            [(committed.strftime("%Y-%m-%d %H:%M"), "In Progress"), ("2026-03-04 12:00", "Done")],
        )
    r = compute(db, "cycle-time", win("2026-03-02", "2026-03-09"), "2026-03-20 00:00")
    assert r.series == [{"week": "2026-03-02", "value": 72.0, "p85": 153.6}]
    d = chart.drawing(CATALOGUE["cycle-time"], r, 120.0)
    # In days, as the reply shows "p50 3.0 d · p85 6.4 d"; the 120 h target is 5 days.
    assert (d.unit, d.scale) == ("days", 24.0)
    assert (d.series.label, d.series.values) == ("weekly p50", [3.0])
    assert (d.p85.label, d.p85.values) == ("weekly p85", [6.4])
    assert (d.target, d.target_label) == (5.0, "target (judged on p85)")
    assert d.note == "not enough history for a signal (0 weeks)" and d.limits is None
    labels = chart.figure(d).axes[0].get_legend_handles_labels()[1]
    assert labels == ["weekly p50", "weekly p85", "target (judged on p85)"]


def test_every_metric_with_a_signal_names_the_sources_of_its_history():
    for mid, metric in CATALOGUE.items():
        if mid not in NO_SIGNAL_RULES:
            assert metric.history and set(metric.history) <= SOURCES, mid


# -- the sample --------------------------------------------------------------------------------------------
END = date(2026, 4, 13)  # the sample's 26 weeks start Mon 13 Oct 2025


@pytest.fixture(scope="module")
def sample():
    db = memory_db()
    build_sample(db, END)
    seed_from_config(db, sample_teams(), SAMPLE_ORG)
    return db


def first_week(data: TeamData, metric_id: str) -> str:
    return week_start(data.history_start(CATALOGUE[metric_id].history), data.tz).isoformat()


def test_no_sample_baseline_holds_a_week_before_the_history(sample):
    """Every figure of every sample digest, and 90 days of deployment frequency and throughput (whose
    20-week baseline reaches 7 weeks before the sample's history): limits only from history weeks."""
    now = datetime(2026, 4, 13, 9, tzinfo=UTC)
    checked = 0
    for t in list_teams(sample):
        data = TeamData(sample, t, now)
        results = [f.result for f in build_digest(sample, t, now).figures]
        window = days_ending_today(90, t.tz, now)
        results += [CATALOGUE[m].compute(data, window) for m in ("deployment-frequency", "throughput")]
        for r in results:
            if r.limits is not None:
                assert r.limits["baseline_weeks"][0] >= first_week(data, r.metric), (t.name, r.metric)
                checked += 1
        for r in results[-2:]:
            assert r.limits["baseline_weeks"][0] == first_week(data, r.metric) == "2025-10-13"
            assert len(r.limits["baseline_weeks"]) == 13
    assert checked > 10


def test_the_sample_false_alarms_from_zero_filled_weeks_are_gone(sample):
    """With the 7 weeks before the history counted as zeros these four were called (issue 9): their
    13 real baseline weeks say the period is ordinary. Mobile's deployment frequency keeps its
    signal: 4 deploys in a week (Feb, Mar) against 2 to 3 every week of its history."""
    now = datetime(2026, 4, 13, 9, tzinfo=UTC)
    teams = {t.name: t for t in list_teams(sample)}

    def ninety_days(name: str, metric_id: str) -> Result:
        t = teams[name]
        return CATALOGUE[metric_id].compute(TeamData(sample, t, now), days_ending_today(90, t.tz, now))

    for name, metric_id in [
        ("mobile", "throughput"),  # was "above the upper process limit"
        ("platform", "deployment-frequency"),  # was "above the upper process limit"
        ("platform", "throughput"),  # was "3 of 4 recent weeks high"
        ("payments", "deployment-frequency"),  # was "8 weeks in a row above the average"
    ]:
        assert ninety_days(name, metric_id).signal is None, (name, metric_id)
    r = ninety_days("mobile", "deployment-frequency")
    assert r.signal == "higher (better) than its normal weekly range (week of 2 Feb)"
    assert r.signal_detail.startswith("XmR chart: above the upper process limit (week of 2 Feb: 4.0); X̄ = ")
    tested = [p["value"] for p in r.series[1:] if not p.get("partial")]
    assert max(tested) == 4.0 > r.limits["upper"] > 3.0
