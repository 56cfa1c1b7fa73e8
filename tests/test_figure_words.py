"""Figures in words a team lead understands (issue 12 §3, the rendering side): n says what it counts,
p50/p85 are put in words where they first appear, PR size is in whole lines, no data never reads as
calm, a signal is its one plain line (its statistics are Explain's), and the digest names the items
behind a signal or a missed target, within Slack's limits.

Through Slack, on a team whose 2026Q3 holds five items finished in 1, 2, 3, 4 and 10 days (p50 3.0 d;
p85 at h = 4·0.85 = 3.4: 4 + 0.4·6 = 6.4 d), five merged PRs of 10, 20, 30, 40 and 101 lines (p50 30;
p85 40 + 0.4·61 = 64.4, shown 64), and incidents only in 2026Q2.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from builders import incident, item, org_figure, pr, team
from fakes.slack import MockSlack
from slackkit import assert_valid_message, command_reply, slack_app

from bot.render import digest as digest_view
from bot.render import format as fmt
from bot.render import replies
from bot.render.templates import SECTION_TEXT
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Result
from metrics.digest import Digest, Figure
from metrics.store import open_db
from metrics.teams import seed_from_config
from metrics.timeutil import Window, local_midnight, zone

M = CATALOGUE
Q3 = Window(
    local_midnight(datetime(2026, 7, 1).date(), zone("UTC")),
    local_midnight(datetime(2026, 10, 1).date(), zone("UTC")),
)


def _result(metric_id: str, value, previous=None, n: int = 12, **kw) -> Result:
    r = Result(metric_id, "pay", Q3, value, M[metric_id].unit, n, previous, [])
    for k, v in kw.items():
        setattr(r, k, v)
    return r


# -- what n counts --------------------------------------------------------------------------------------
def test_n_says_what_it_counts():
    assert fmt.counted(M["wip"], 30) == "30 days sampled"
    assert fmt.counted(M["flow-load"], 1) == "1 day sampled"
    assert fmt.counted(M["deployment-frequency"], 12) == "12 deployments"
    assert fmt.counted(M["change-failure-rate"], 12) == "12 deployments"
    assert fmt.counted(M["lead-time-for-changes"], 7) == "7 PRs"
    assert fmt.counted(M["pr-size"], 1) == "1 PR"
    assert fmt.counted(M["time-to-restore"], 3) == "3 incidents"
    assert fmt.counted(M["aging-wip"], 4) == "4 open items"
    assert fmt.counted(M["cycle-time"], 42).endswith("items")
    assert fmt.counted(M["throughput"], 1).endswith("item")
    for metric in M.values():  # every metric says something, never a bare "(n = 3)"
        assert fmt.counted(metric, 3).startswith("3 ") and len(fmt.counted(metric, 3)) > 3


# -- through Slack -------------------------------------------------------------------------------------
@pytest.fixture
def app_env(tmp_path):
    path = tmp_path / "words.db"
    db = open_db(path)
    for k, days in enumerate([1, 2, 3, 4, 10]):
        start = datetime(2026, 7, 6, 9, tzinfo=UTC) + timedelta(days=k)
        done = start + timedelta(days=days)
        item(
            db,
            f"PAY-{k + 1}",
            "2026-03-02 09:00",
            [(start.strftime("%Y-%m-%d %H:%M"), "In Progress"), (done.strftime("%Y-%m-%d %H:%M"), "Done")],
        )
    for k, lines in enumerate([10, 20, 30, 40, 101]):
        pr(db, k + 1, "2026-07-06 09:00", merged=f"2026-07-{7 + k:02d} 09:00", additions=lines, deletions=0)
    incident(db, "inc-1", "2026-05-04 09:00", "2026-05-04 11:00")
    incident(db, "inc-2", "2026-05-11 09:00", "2026-05-11 12:00")
    seed_from_config(db, [team(metrics=["cycle-time", "pr-size"])], {"north_star": []})
    db.conn.close()
    with MockSlack(members={"C1": ["U1"]}) as slack:
        yield slack_app(path, slack), slack


def test_p50_and_p85_are_put_in_words_through_slack(app_env):
    app, slack = app_env
    figure = command_reply(app, slack, "cycle-time 2026Q3")["blocks"][0]["text"]["text"]
    assert "*p50 3.0 d · p85 6.4 d*  (5 items)" in figure
    assert "\nhalf of them within 3.0 d, 85% within 6.4 d\n" in figure
    assert "(n = " not in figure


def test_pr_size_is_in_whole_lines_through_slack(app_env):
    app, slack = app_env
    figure = command_reply(app, slack, "pr-size 2026Q3")["blocks"][0]["text"]["text"]
    assert "*p50 30 · p85 64 lines*  (5 PRs)" in figure
    assert "half of them within 30 lines, 85% within 64 lines" in figure
    assert "64.4" not in figure and ".0 lines" not in figure


def test_no_data_says_so_and_never_reads_as_calm_through_slack(app_env):
    app, slack = app_env
    reply = command_reply(app, slack, "time-to-restore 2026Q3")
    figure = reply["blocks"][0]["text"]["text"]
    assert "*no data: no incidents resolved in this period*" in figure  # the metric's reason
    assert "(0 incidents)" not in figure and "half of them" not in figure
    context = next(b for b in reply["blocks"] if b.get("block_id") == "signal")["elements"][0]["text"]
    assert "within normal variation" not in context.lower()


def test_no_data_shows_its_reason_on_every_surface():
    """A reason the metric gives (``Result.no_data_reason``) is shown with "no data in this period",
    and nothing beside it says the figure is within normal variation."""
    r = _result("deployment-frequency", None, 2.0, n=0, no_data_reason="GitHub has not been synced yet")
    reply = replies.metric_message(team(), r)
    figure = reply["blocks"][0]["text"]["text"]
    assert "*no data in this period: GitHub has not been synced yet*" in figure
    assert "Previous period: 2.0/wk" in figure and "Change" not in figure
    context = next(b for b in reply["blocks"] if b.get("block_id") == "signal")["elements"][0]["text"]
    assert context == "ⓘ no signal: no data in this period"
    d = Digest(team(), Q3, [Figure(M["deployment-frequency"], r, None, None)], [])
    now = datetime(2026, 10, 2, tzinfo=UTC)
    blocks = {b.get("block_id"): b for b in digest_view.message(d, now)["blocks"]}
    assert (
        "_no data in this period: GitHub has not been synced yet_"
        in blocks["fig:deployment-frequency"]["text"]["text"]
    )
    assert blocks["signals"]["text"]["text"] == "No signals: no figure has the data and history to be tested."
    text = digest_view.text(d, now)
    assert "no data in this period: GitHub has not been synced yet" in text
    assert "within normal variation" not in text
    # With a calm figure beside it, "no signals" covers only the figures that could be tested.
    calm = _result("throughput", 4.0, 4.0)
    d = replace(d, determinants=[Figure(M["throughput"], calm, None, None)])
    blocks = {b.get("block_id"): b for b in digest_view.message(d, now)["blocks"]}
    assert blocks["signals"]["text"]["text"] == (
        "No signals: every figure with data and enough history is within normal variation."
    )


def test_north_star_explains_p50_and_p85_once():
    cycle = _result("cycle-time", {"p50": 72.0, "p85": 153.6})
    lead = _result("lead-time", {"p50": 96.0, "p85": 240.0})
    reply = replies.north_star_message(
        [org_figure(_result("throughput", 3.0, 2.0)), org_figure(cycle), org_figure(lead)], "UTC"
    )
    texts = [b["text"]["text"] for b in reply["blocks"] if b["type"] == "section"]
    assert "half of them" not in texts[0]
    assert "\nhalf of them within 3.0 d, 85% within 6.4 d\n" in texts[1]
    assert "half of them" not in texts[2] and "*p50 4.0 d · p85 10.0 d*" in texts[2]


def test_a_signal_is_its_plain_line_and_its_statistics_stay_out_of_the_figure():
    r = _result(
        "cycle-time",
        {"p50": 72.0, "p85": 153.6},
        signal="slower than usual for 8 weeks in a row, ending the week of 21 Sep",
        signal_detail="XmR chart: 8 in a row above X̄ = 2.1; natural process limits 0.0 to 5.2",
    )
    reply = replies.metric_message(team(), r)
    context = next(b for b in reply["blocks"] if b.get("block_id") == "signal")["elements"][0]["text"]
    assert context == "⚑ slower than usual for 8 weeks in a row, ending the week of 21 Sep"
    assert "XmR" not in str(reply)
    d = Digest(team(), Q3, [], [Figure(M["cycle-time"], r, None, None)])
    now = datetime(2026, 10, 2, tzinfo=UTC)
    payload = digest_view.message(d, now)
    signals = next(b for b in payload["blocks"] if b.get("block_id") == "signals")
    assert signals["text"]["text"] == (
        "*Worth a look*\n• *Cycle time*: slower than usual for 8 weeks in a row, ending the week of 21 Sep"
    )
    assert "XmR" not in str(payload) and "XmR" not in digest_view.text(d, now)


# -- the digest: what p50/p85 mean, once; the items behind a figure --------------------------------------
HOSTILE = "<!channel> & <@U1>"


def _behind(n: int = 4) -> dict:
    return {
        "heading": "Oldest open items",
        "items": [
            {
                "key": f"PAY-{k}",
                "title": f"{HOSTILE} item {k}",
                "url": f"https://jira.example/browse/PAY-{k}?a=1&b=2",
                "detail": f"In Progress, {21 - k} days",
            }
            for k in range(1, n + 1)
        ],
    }


def _digest_with_behind() -> Digest:
    cycle = _result("cycle-time", {"p50": 72.0, "p85": 153.6}, {"p50": 70.0, "p85": 150.0})
    wip = _result("wip", 9.0, 8.0, signal="higher than its normal weekly range (week of 21 Sep)")
    return Digest(
        team(),
        Q3,
        [],
        [
            Figure(M["cycle-time"], cycle, 100.0, "missed", behind=None),
            Figure(M["wip"], wip, None, None, behind=_behind()),
        ],
    )


def test_the_digest_names_the_items_behind_a_figure_escaped_and_linked():
    d = _digest_with_behind()
    now = datetime(2026, 10, 2, tzinfo=UTC)
    payload = digest_view.message(d, now)
    assert_valid_message(payload)
    text = next(b for b in payload["blocks"] if b.get("block_id") == "fig:wip")["text"]["text"]
    assert "\n*Oldest open items*\n• <https://jira.example/browse/PAY-1?a=1&amp;b=2|PAY-1> " in text
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt; item 1 — In Progress, 20 days" in text
    assert "PAY-3" in text and "PAY-4" not in text  # up to three
    assert "<!channel>" not in str(payload) and "<@U1>" not in str(payload)
    terminal = digest_view.text(d, now)
    assert "Oldest open items:" in terminal
    assert f"PAY-1 {HOSTILE} item 1 — In Progress, 20 days (https://jira.example/browse/PAY-1?a=1&b=2)" in (
        terminal
    )
    assert "PAY-4" not in terminal


def test_the_digest_says_what_p50_and_p85_mean_once():
    d = _digest_with_behind()
    now = datetime(2026, 10, 2, tzinfo=UTC)
    payload = digest_view.message(d, now)
    meaning = "p50: half were within it · p85: 85% were"
    assert str(payload).count(meaning) == 1
    assert meaning in payload["blocks"][1]["elements"][0]["text"]
    assert digest_view.text(d, now).count("p50: half were within it") == 1
    # A digest without a p50/p85 figure does not explain them.
    d = replace(d, determinants=d.determinants[1:])
    assert meaning not in str(digest_view.message(d, now)) and "p50" not in digest_view.text(d, now)


def test_items_behind_every_figure_stay_within_slacks_limits():
    d = _digest_with_behind()
    figures = []
    for k in range(30):
        for f in d.determinants:
            metric = copy.copy(f.metric)
            metric.id = f"{f.metric.id}-{k}"
            long = {
                "heading": "Oldest open items",
                "items": [i | {"title": "T" * 1500} for i in _behind()["items"]],
            }
            figures.append(replace(f, metric=metric, behind=long))
    payload = digest_view.message(replace(d, determinants=figures), datetime(2026, 10, 2, tzinfo=UTC))
    assert_valid_message(payload)
    sections = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]
    assert all(len(t) <= SECTION_TEXT for t in sections)
    assert any(t.endswith("…") and "|PAY-1> TTT" in t for t in sections)  # cut, never dropped
    assert any(str(b.get("block_id")).startswith("fig:wip") for b in payload["blocks"])


def test_a_forecast_says_how_likely_each_date_is_through_slack(tmp_path):
    path = tmp_path / "forecast.db"
    db = open_db(path)
    for k in range(20):  # an item done every other day before NOW (25 Nov 2026)
        done = datetime(2026, 11, 24, 12, tzinfo=UTC) - timedelta(days=2 * k)
        start = done - timedelta(days=3)
        moves = [(start.strftime("%Y-%m-%d %H:%M"), "In Progress"), (done.strftime("%Y-%m-%d %H:%M"), "Done")]
        item(db, f"PAY-{k + 1}", "2026-08-01 09:00", moves)
    seed_from_config(db, [team()], {"north_star": []})
    db.conn.close()
    with MockSlack(members={"C1": ["U1"]}) as slack:
        reply = command_reply(slack_app(path, slack), slack, "forecast 10")
    text = reply["blocks"][0]["text"]["text"]
    assert "\n50% likely by *20" in text and ": as likely as not\n" in text
    assert "\n85% likely by *20" in text and ": a date to plan on\n" in text
    assert "\n95% likely by *20" in text and text.endswith(": nearly certain")
    context = reply["blocks"][1]["elements"][0]["text"]
    assert context.startswith("From 10,000 simulated futures that replay this team's last 12 weeks")
