"""Issue 12 §8: a chart agrees with the reply beside it. Its axis is in the unit the figure is shown in
(days from 24 h on, ``format.duration``), each line names its statistic, the target is drawn against the
statistic it is judged on (p85 for durations), the unfinished current week is explained in the legend,
a rate stays within 0–100%, and the limits drawn are exactly those the verdict used.

Cycle times: 20 baseline weeks whose items took 2, 3, 4 days (median 72 h) and 3, 4, 5 days (median
96 h) in turn, so the weekly-median baseline has X̄ = 84 h and mR̄ = 24 h: limits 84 ± 63.84 h, that is
3.5 d centre, 6.16 d upper and 0.84 d lower.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

from builders import deploy, incident, item, new_db, team, ts
from fakes.slack import MockSlack
from slackkit import command, slack_app

from bot.render import chart
from metrics.catalogue import CATALOGUE
from metrics.dataset import TeamData
from metrics.sample import sample_teams
from metrics.timeutil import Window, local_midnight, zone

UTC_ZONE = zone("UTC")
FIRST = date(2025, 11, 10)  # a Monday; the window's four weeks start 20 weeks later, on 30 Mar 2026
SINCE, UNTIL = FIRST + timedelta(weeks=20), FIRST + timedelta(weeks=24)
NOW = "2026-04-22 18:00"  # Wednesday of the window's last week (20 Apr): that week is unfinished


def window(since: date = SINCE, until: date = UNTIL) -> Window:
    return Window(local_midnight(since, UTC_ZONE), local_midnight(until, UTC_ZONE))


def done_on(db, key: str, done: datetime, cycle: timedelta) -> None:
    start = done - cycle
    fmt = "%Y-%m-%d %H:%M"
    created = (start - timedelta(days=1)).strftime(fmt)
    item(db, key, created, [(start.strftime(fmt), "In Progress"), (done.strftime(fmt), "Done")])


def cycle_times_db():
    db = new_db()
    for k in range(24):
        wednesday = datetime.combine(FIRST + timedelta(weeks=k, days=2), datetime.min.time(), UTC)
        for n, days in enumerate([2, 3, 4] if k % 2 == 0 else [3, 4, 5]):
            done_on(db, f"PAY-{k}-{n}", wednesday + timedelta(hours=12), timedelta(days=days))
    return db


def compute(db, metric_id: str, w: Window, now: str):
    return CATALOGUE[metric_id].compute(TeamData(db, team(), ts(now)), w)


def test_a_duration_in_days_is_drawn_in_days_with_its_statistics_named():
    r = compute(cycle_times_db(), "cycle-time", window(), NOW)
    assert (r.limits["centre"], r.limits["upper"], r.limits["lower"]) == (84.0, 147.84, 20.16)
    d = chart.drawing(CATALOGUE["cycle-time"], r, 144.0)  # a 6-day target, in hours as stored
    assert (d.unit, d.scale) == ("days", 24.0)
    assert (d.limits["centre"], d.limits["upper"], d.limits["lower"]) == (3.5, 6.16, 0.84)
    assert d.series.values == [3.0, 4.0, 3.0, 4.0]  # weekly p50s, as "p50 … d" reads
    assert d.p85.values == [3.7, 4.7, 3.7, 4.7]  # p85 of 2, 3, 4 days: 3.7 d
    assert d.target == 6.0

    ax = chart.figure(d).axes[0]
    assert ax.get_ylabel() == "days"
    labels = ax.get_legend_handles_labels()[1]
    assert labels == [
        "weekly p50",
        "weekly p85",
        "week of 20 Apr so far (unfinished, not tested)",
        "average (baseline)",
        "process limits",
        "target (judged on p85)",
    ]
    by_label = {line.get_label(): line for line in ax.lines}
    assert [float(y) for y in by_label["weekly p85"].get_ydata()] == d.p85.values
    assert float(by_label["target (judged on p85)"].get_ydata()[0]) == 6.0
    # The lines drawn are the verdict's limits, converted to days and nothing else.
    flat = {round(float(line.get_ydata()[0]), 4) for line in ax.lines[-4:]}
    assert flat == {3.5, 6.16, 0.84, 6.0}


def test_the_unfinished_week_is_the_one_hollow_point():
    r = compute(cycle_times_db(), "cycle-time", window(), NOW)
    d = chart.drawing(CATALOGUE["cycle-time"], r, None)
    assert d.complete == [True, True, True, False]
    ax = chart.figure(d).axes[0]
    hollow = [line for line in ax.lines if line.get_markerfacecolor() == "white" and len(line.get_xdata())]
    assert [(list(h.get_xdata()), float(h.get_ydata()[0])) for h in hollow] == [(["2026-04-20"], 4.0)]
    # Once the week is over, there is nothing to explain.
    done = chart.drawing(
        CATALOGUE["cycle-time"], compute(cycle_times_db(), "cycle-time", window(), "2026-04-27 00:00"), None
    )
    assert done.partial_label is None and all(done.complete)
    assert not any(
        "unfinished" in label for label in chart.figure(done).axes[0].get_legend_handles_labels()[1]
    )


def test_a_duration_under_a_day_stays_in_hours():
    db = new_db()
    wednesday = datetime(2026, 4, 1, 12, tzinfo=UTC)
    for n, hours in enumerate([2, 4, 6]):
        done_on(db, f"PAY-{n}", wednesday, timedelta(hours=hours))
    r = compute(db, "cycle-time", window(date(2026, 3, 30), date(2026, 4, 6)), "2026-04-10 00:00")
    assert r.value["p50"] == 4.0
    d = chart.drawing(CATALOGUE["cycle-time"], r, 8.0)
    assert (d.unit, d.scale, d.series.values, d.target) == ("hours", 1.0, [4.0], 8.0)
    assert chart.figure(d).axes[0].get_ylabel() == "hours"


def test_a_rate_and_its_limits_stay_within_0_to_100_percent():
    """Change failure rate alternating 100% and 0% a week: X̄ 50%, mR̄ 100 points, raw limits −216%
    and 316%; the verdict clips them to 0 and 100%, and the chart draws those, on a 0–100% axis."""
    db = new_db()
    for k in range(24):
        monday = datetime.combine(FIRST + timedelta(weeks=k), datetime.min.time(), UTC)
        for i in range(2):
            at = monday + timedelta(days=i, hours=9)
            deploy(db, f"d-{k}-{i}", at.strftime("%Y-%m-%d %H:%M"))
            if (k < 20 and k % 2 == 0) or (k >= 20 and i == 0):  # the window's weeks: 1 of 2 failing, 50%
                incident(db, f"inc-{k}-{i}", (at + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"))
    r = compute(db, "change-failure-rate", window(), NOW)
    assert (r.limits["centre"], r.limits["upper"], r.limits["lower"]) == (50.0, 100.0, 0.0)
    d = chart.drawing(CATALOGUE["change-failure-rate"], r, 10.0)
    assert d.limits == r.limits and (d.unit, d.series.label) == ("%", "weekly %")
    assert d.series.values == [50.0, 50.0, 50.0, 50.0]
    ax = chart.figure(d).axes[0]
    low, high = ax.get_ylim()
    assert low >= 0 and high <= 100
    assert {float(line.get_ydata()[0]) for line in ax.lines if line.get_label() == "process limits"} == {
        100.0
    }


def test_a_count_names_what_it_counts():
    db = new_db()
    for k in range(4):
        monday = datetime.combine(SINCE + timedelta(weeks=k), datetime.min.time(), UTC)
        deploy(db, f"d-{k}", (monday + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M"))
    d = chart.drawing(
        CATALOGUE["deployment-frequency"], compute(db, "deployment-frequency", window(), NOW), 5.0
    )
    assert (d.unit, d.series.label, d.target_label) == ("deploys/week", "deploys per week", "target")


def test_the_chart_posted_from_slack_names_the_replys_window(sample_db, tmp_path):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    payments = next(t for t in sample_teams() if t.name == "payments")
    with MockSlack(members={payments.channel: ["U1"]}) as slack:
        app = slack_app(db_path, slack)
        command(app, "cycle-time chart", channel=payments.channel, response_url=f"{slack.url}/response/1")
        [reply] = slack.responses()
        [done] = slack.calls_to("files.completeUploadExternal")
    label = re.compile(r"\d{4}-\d{2}-\d{2} – \d{4}-\d{2}-\d{2}")
    [period] = set(label.findall(json.dumps(reply, ensure_ascii=False)))
    assert label.findall(done.body["initial_comment"]) == [period]
