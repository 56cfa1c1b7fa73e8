"""Change arrows that tell better from worse (issue 12 §2): rates move in percentage points, a move
from, to or across zero is the difference in the metric's unit, every change says "better" or
"worse" by the metric's direction (neither for context metrics), and a previous period before the
history began is "no earlier data", not a zero.

Expectations are computed by hand. Through Slack: a team with 10 deployments a quarter; in 2026Q2 four
of them are followed by an incident (40.0%), in 2026Q3 one is (10.0%): "↓ 30.0 pts, better", where a
percent of the percent would have read "↓ 75.0%".
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from builders import deploy, incident, item, org_figure, team
from fakes.slack import MockSlack
from slackkit import NOW, command, command_reply, slack_app

from bot.render import digest as digest_view
from bot.render import format as fmt
from bot.render import replies
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Result
from metrics.digest import Digest, Figure
from metrics.store import open_db
from metrics.teams import seed_from_config
from metrics.timeutil import Window, local_midnight, zone

M = CATALOGUE


# -- format.change, hand-computed -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("metric", "now", "before", "expected"),
    [
        # A rate moves in points: 88.4% -> 70.0% is 18.4 points down (a percent of it would be 20.8%).
        ("sprint-completion", 70.0, 88.4, "↓ 18.4 pts, worse"),
        ("change-failure-rate", 15.0, 30.0, "↓ 15.0 pts, better"),
        ("merged-without-review", 12.5, 10.0, "↑ 2.5 pts, worse"),
        # From zero and to zero: the difference in the unit, not "was 0" or "↓ 100%".
        ("throughput", 3.0, 0.0, "↑ 3.0/wk, better"),
        ("deployment-frequency", 0.0, 2.5, "↓ 2.5/wk, worse"),
        # Across zero: net flow −0.2 from +1.0 moved 1.2/wk, toward balance (not "↓ 120%").
        ("net-flow", -0.2, 1.0, "↓ 1.2/wk, better"),
        ("net-flow", 1.5, 0.5, "↑ 1.0/wk, worse"),  # a balance: never a percent of a small number
        # Otherwise a percent of the previous figure: 6.5 -> 7.2 per week is +10.8%.
        ("deployment-frequency", 7.2, 6.5, "↑ 10.8%, better"),
        # A context metric has no better direction: the move is said, never judged.
        ("wip", 15.0, 12.0, "↑ 25.0%"),
        ("flow-load", 9.0, 0.0, "↑ 9.0 items"),
        # Durations move by their p85, in the duration's own unit: 10.0 d -> 12.1 d.
        ("cycle-time", {"p50": 100.0, "p85": 290.4}, {"p50": 90.0, "p85": 240.0}, "p85 ↑ 2.1 d, worse"),
        ("pr-pickup-time", {"p50": 2.0, "p85": 5.0}, {"p50": 4.0, "p85": 12.0}, "p85 ↓ 7.0 h, better"),
        # Sizes in whole lines.
        ("pr-size", {"p50": 80.0, "p85": 260.0}, {"p50": 90.0, "p85": 300.0}, "p85 ↓ 40 lines, better"),
        # Less than the display shows is no change, and no change is neither better nor worse.
        ("change-failure-rate", 20.02, 20.0, "no change"),
        ("throughput", 4.0, 4.0, "no change"),
        # At the precision the figures are shown in (issue 12, review round): the move the reader sees.
        # Both p85s read 14.0 d: no change, though 0.5 h apart (the review's "p85 ↓ 0.5 h").
        ("cycle-time", {"p50": 218.0, "p85": 336.0}, {"p50": 218.4, "p85": 336.5}, "no change"),
        # 14.04 d reads 14.0 d, 14.06 d reads 14.1 d: the move is the 0.1 d the reader sees (2.4 h),
        # not the 0.5 h between the unrounded figures.
        ("cycle-time", {"p50": 200.0, "p85": 336.96}, {"p50": 200.0, "p85": 337.44}, "p85 ↓ 2.4 h, better"),
        # In hours: 7.46 h and 7.54 h both read 7.5 h.
        ("pr-pickup-time", {"p50": 2.0, "p85": 7.46}, {"p50": 2.0, "p85": 7.54}, "no change"),
        # Across the hours/days line the display still tells them apart: 23.9 h against 1.0 d.
        ("pr-pickup-time", {"p50": 2.0, "p85": 23.94}, {"p50": 2.0, "p85": 24.0}, "p85 ↓ 0.1 h, better"),
        # Rates in points as shown: 20.04% and 19.96% both read 20.0%.
        ("change-failure-rate", 20.04, 19.96, "no change"),
        # A percent of a large figure too small to show is said in the unit: 1000.0 -> 1000.1/wk.
        ("deployment-frequency", 1000.1, 1000.0, "↑ 0.1/wk, better"),
    ],
)
def test_change_is_in_the_right_unit_and_marked_better_or_worse(metric, now, before, expected):
    assert fmt.change(M[metric], now, before) == expected


def test_nothing_to_compare_gives_no_change_text():
    assert fmt.change(M["throughput"], None, 3.0) == ""
    assert fmt.change(M["throughput"], 3.0, None) == ""


def _result(metric_id: str, value, previous, **kw) -> Result:
    w = Window(
        local_midnight(datetime(2026, 7, 1).date(), zone("UTC")),
        local_midnight(datetime(2026, 10, 1).date(), zone("UTC")),
    )
    r = Result(metric_id, "pay", w, value, M[metric_id].unit, kw.pop("n", 12), previous, [])
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_no_previous_figure_never_sits_beside_a_previous_figure():
    metric = M["throughput"]
    # The previous period had a figure, this one has none: say what the previous one was, no arrow.
    line = fmt.comparison(metric, _result("throughput", None, 5.0, n=0))
    assert line == "Previous period: 5.0/wk"
    # Before the history began: unknown, not zero, and said so.
    line = fmt.comparison(metric, _result("throughput", 7.0, None, previous_note="no earlier data"))
    assert line == "Previous period: no earlier data"
    assert fmt.versus(metric, _result("throughput", 7.0, None, previous_note="no earlier data")) == (
        "previous period: no earlier data"
    )
    line = fmt.comparison(metric, _result("throughput", 7.0, 5.0))
    assert line == "Change: ↑ 40.0%, better (previous period: 5.0/wk)"


def test_every_surface_marks_the_change_better_or_worse():
    """The figure reply, North Star and both digests carry the same marked change."""
    worse = _result("pr-pickup-time", {"p50": 20.0, "p85": 60.0}, {"p50": 10.0, "p85": 26.0})
    better = _result("change-failure-rate", 10.0, 40.0)
    reply = replies.metric_message(team(), worse)
    assert (
        "Change: p85 ↑ 1.4 d, worse (previous period: p50 10.0 h · p85 1.1 d)"
        in (reply["blocks"][0]["text"]["text"])
    )
    north = replies.north_star_message([org_figure(better), org_figure(worse)], "UTC")
    texts = [b["text"]["text"] for b in north["blocks"] if b["type"] == "section"]
    assert "Change: ↓ 30.0 pts, better (previous period: 40.0%)" in texts[0]
    assert "p85 ↑ 1.4 d, worse" in texts[1]
    d = Digest(
        team(),
        better.window,
        [Figure(M["change-failure-rate"], better, None, None)],
        [Figure(M["pr-pickup-time"], worse, None, None)],
    )
    now = datetime(2026, 10, 2, tzinfo=UTC)
    blocks = {b.get("block_id"): b for b in digest_view.message(d, now)["blocks"]}
    assert "\n↓ 30.0 pts, better" in blocks["fig:change-failure-rate"]["text"]["text"]
    assert "\np85 ↑ 1.4 d, worse" in blocks["fig:pr-pickup-time"]["text"]["text"]
    text = digest_view.text(d, now)
    assert "↓ 30.0 pts, better" in text and "p85 ↑ 1.4 d, worse" in text
    # An earlier period the team has no data for is said so in the digest too.
    young = replace(better, previous=None, previous_note="no earlier data")
    d = Digest(team(), better.window, [Figure(M["change-failure-rate"], young, None, None)], [])
    fig = next(
        b for b in digest_view.message(d, now)["blocks"] if b.get("block_id") == "fig:change-failure-rate"
    )
    assert "previous period: no earlier data" in fig["text"]["text"]
    assert "previous period: no earlier data" in digest_view.text(d, now)


# -- through Slack ------------------------------------------------------------------------------------
def _mondays(db, since: str, count: int, failing: int) -> None:
    """``count`` deployments, one each Monday 09:00 from the first Monday on or after ``since``; the
    first ``failing`` are followed by an incident an hour later (linked to them, the latest before)."""
    first = datetime.fromisoformat(since).replace(tzinfo=UTC)
    first += timedelta(days=(7 - first.weekday()) % 7)
    for k in range(count):
        at = first + timedelta(weeks=k, hours=9)
        deploy(db, f"{since}-{k}", at.strftime("%Y-%m-%d %H:%M"))
        if k < failing:
            incident(db, f"inc-{since}-{k}", (at + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"))


@pytest.fixture
def app_env(tmp_path):
    path = tmp_path / "arrows.db"
    db = open_db(path)
    deploy(db, "early", "2026-03-02 09:00")  # the history begins before 2026Q2
    incident(db, "inc-early", "2026-03-03 09:00", "2026-03-03 10:00")
    _mondays(db, "2026-04-01", 10, failing=4)  # 2026Q2: 40.0%
    _mondays(db, "2026-07-01", 10, failing=1)  # 2026Q3: 10.0%
    # The digest's period (28 Oct – 24 Nov, before NOW) and the one before: Mondays 5–26 Oct, two
    # failing (50.0%); Mondays 2–23 Nov, one failing (25.0%); 1.0/wk in both.
    _mondays(db, "2026-10-05", 4, failing=2)
    _mondays(db, "2026-11-02", 4, failing=1)
    item(db, "PAY-1", "2026-03-01 09:00", [("2026-03-02 09:00", "In Progress")])  # open all along
    seed_from_config(db, [team(metrics=["change-failure-rate", "deployment-frequency"])], {"north_star": []})
    db.conn.close()
    with MockSlack(members={"C1": ["U1"]}) as slack:
        yield slack_app(path, slack), slack


def test_a_rate_changes_in_points_and_says_better_through_slack(app_env):
    app, slack = app_env
    reply = command_reply(app, slack, "change-failure-rate 2026Q3")
    figure = reply["blocks"][0]["text"]["text"]
    assert "*10.0%*  (10 deployments)" in figure
    assert "Change: ↓ 30.0 pts, better (previous period: 40.0%)" in figure
    assert "75.0%" not in figure  # the old "percent of a percent"


def test_a_context_metric_is_never_better_or_worse_through_slack(app_env):
    app, slack = app_env
    figure = command_reply(app, slack, "wip 2026Q3")["blocks"][0]["text"]["text"]
    assert "*1 in progress at the end of 30 Sep · average 1.0 items*  (92 days sampled)" in figure  # 92 days
    assert "better" not in figure and "worse" not in figure
    assert "No change (previous period: 1.0 items)" in figure  # open all through Q2 and Q3


def test_the_digest_marks_its_changes_through_slack(app_env):
    app, slack = app_env
    command(app, "digest", channel="C1", response_url=f"{slack.url}/response/1")
    preview = slack.responses()[-1]
    blocks = {b.get("block_id"): b for b in preview["blocks"]}
    assert "\n↓ 25.0 pts, better" in blocks["fig:change-failure-rate"]["text"]["text"]
    assert "\nno change" in blocks["fig:deployment-frequency"]["text"]["text"]
    assert NOW.date().isoformat() == "2026-11-25"


def test_a_previous_period_before_the_history_is_no_earlier_data_through_slack(tmp_path):
    """Items were first synced in mid-June 2026: 2026Q2 is mostly before the history began, so
    throughput in 2026Q3 has no previous figure to compare with (not "↑ 220%" against invented zeros)."""
    path = tmp_path / "young.db"
    db = open_db(path)
    for k in range(8):
        start = datetime(2026, 6, 15, 9, tzinfo=UTC) + timedelta(weeks=k)
        done = start + timedelta(days=2)
        moves = [(start.strftime("%Y-%m-%d %H:%M"), "In Progress"), (done.strftime("%Y-%m-%d %H:%M"), "Done")]
        item(db, f"PAY-{k + 1}", "2026-06-15 08:00", moves)
    seed_from_config(db, [team()], {"north_star": []})
    db.conn.close()
    with MockSlack(members={"C1": ["U1"]}) as slack:
        figure = command_reply(slack_app(path, slack), slack, "throughput 2026Q3")["blocks"][0]["text"][
            "text"
        ]
    assert "\nPrevious period: no earlier data" in figure
    assert "↑" not in figure and "↓" not in figure and "%" not in figure
