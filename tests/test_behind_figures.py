"""Issue 12 §4, from a figure to the work: the digest names the items behind a signal or a missed target,
Explain lists titles and dates (a deployment's time, a signal's statistics first, no command-line hint),
nudges name item titles and the status the team wrote, and target nudges judge the digest's window.

Expectations are worked out by hand from the rows each test writes (tests/builders.py).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pytest
from builders import deploy, incident, item, new_db, pr, team, ts
from fakes.slack import MockSlack
from slackkit import NOW as APP_NOW
from slackkit import assert_valid_message, click, slack_app

from bot.render import nudge as nudge_view
from bot.render.explain import explain_message
from metrics import catalogue
from metrics.catalogue.base import Result
from metrics.digest import build_digest, digest_window
from metrics.nudges import find_nudges
from metrics.sample import sample_teams
from metrics.store import open_db
from metrics.teams import Team
from metrics.timeutil import Window, local_midnight, zone


def at(text: str) -> datetime:
    return datetime.fromtimestamp(ts(text), UTC)


def rename(db, key: str, summary: str) -> None:
    db.execute("update work_items set summary = ? where key = ?", [summary, key])


# -- the digest: the items behind a signal or a missed target -----------------------------------------
DIGEST_NOW = at("2026-01-19 10:00")  # Monday; a 7-day period is 12-18 Jan


def digest_team(**kw) -> Team:
    return team(
        metrics=["cycle-time", "throughput", "aging-wip", "pr-pickup-time", "change-failure-rate", "pr-size"],
        targets={
            "cycle-time": 48.0,  # p85 of 1, 2, 3, 4 days is 3.55 d: missed
            "throughput": 1.0,  # 4 items in the week: met
            "aging-wip": 1.0,  # 2 open items: missed
            "pr-pickup-time": 1.0,  # one pickup of 5 h: missed
            "change-failure-rate": 10.0,  # 1 of 2 deployments followed by an incident: missed
            "pr-size": 100.0,  # p85 of 60 and 600 lines: missed
        },
        digest={"day": "mon", "time": "09:00", "period_days": 7},
        **kw,
    )


def digest_db():
    db = new_db()
    for n in range(1, 5):  # committed 12 Jan 00:00, done n days later
        item(
            db,
            f"PAY-{n}",
            "2026-01-10 00:00",
            [("2026-01-12 00:00", "Selected"), (f"2026-01-{12 + n} 00:00", "Done")],
        )
    rename(db, "PAY-4", "Improve onboarding flow")
    item(db, "PAY-10", "2026-01-01 00:00", [("2026-01-02 00:00", "Selected")])  # 17 d 10 h open
    # Open since 5 Jan; the tool spells the status in capitals, the team wrote "In Progress".
    item(db, "PAY-11", "2026-01-01 00:00", [("2026-01-05 00:00", "In Progress")], status="IN PROGRESS")
    pr(db, 1, "2026-01-12 09:00", reviews=[("2026-01-12 14:00", "bob", "APPROVED")])  # pickup 5 h
    # Waiting for a first review at DIGEST_NOW (19 Jan 10:00):
    pr(db, 2, "2026-01-10 00:00", title="Retry <!channel> payments")  # 9 d 10 h
    pr(db, 3, "2026-01-14 00:00")  # 5 d 10 h
    pr(db, 4, "2026-01-16 12:00")  # 2 d 22 h
    pr(db, 5, "2026-01-18 18:00")  # 16 h: the fourth, not named
    pr(db, 6, "2026-01-01 00:00", draft=True)  # a draft waits for nobody
    pr(db, 20, "2026-01-12 00:00", merged="2026-01-13 10:00", additions=500, deletions=100)
    pr(db, 21, "2026-01-12 00:00", merged="2026-01-15 10:00", additions=50, deletions=10)
    deploy(db, "d1", "2026-01-12 10:00")
    deploy(db, "d2", "2026-01-14 10:00")
    incident(db, "INC-1", "2026-01-14 12:00", "2026-01-14 15:00", title="Checkout down")
    return db


def figures(db, t: Team) -> dict:
    return {f.metric.id: f for f in build_digest(db, t, DIGEST_NOW).figures}


def test_a_missed_duration_target_names_the_slowest_finished_items_with_titles_and_dates():
    f = figures(digest_db(), digest_team())["cycle-time"]
    assert f.target_status == "missed"
    assert f.behind == {
        "heading": "Slowest finished items",
        "items": [
            {
                "key": "PAY-4",
                "title": "Improve onboarding flow",
                "url": "https://jira.example/browse/PAY-4",
                "detail": "4.0 d, started 12 Jan, done 16 Jan",
            },
            {
                "key": "PAY-3",
                "title": "summary of PAY-3",
                "url": "https://jira.example/browse/PAY-3",
                "detail": "3.0 d, started 12 Jan, done 15 Jan",
            },
            {
                "key": "PAY-2",
                "title": "summary of PAY-2",
                "url": "https://jira.example/browse/PAY-2",
                "detail": "2.0 d, started 12 Jan, done 14 Jan",
            },
        ],
    }


def test_a_met_target_without_a_signal_names_nothing():
    f = figures(digest_db(), digest_team())["throughput"]
    assert f.target_status == "met" and not f.result.signal
    assert f.behind is None


def test_open_work_names_the_oldest_items_with_the_status_the_team_wrote():
    f = figures(digest_db(), digest_team())["aging-wip"]
    assert f.target_status == "missed"
    assert f.behind == {
        "heading": "Oldest open items",
        "items": [
            {
                "key": "PAY-10",
                "title": "summary of PAY-10",
                "url": "https://jira.example/browse/PAY-10",
                "detail": "Selected, 17 days",
            },
            {
                "key": "PAY-11",
                "title": "summary of PAY-11",
                "url": "https://jira.example/browse/PAY-11",
                "detail": "In Progress, 14 days",
            },
        ],
    }


def test_slow_pickups_name_the_prs_waiting_longest_for_a_first_review():
    f = figures(digest_db(), digest_team())["pr-pickup-time"]
    assert f.target_status == "missed"
    assert f.behind["heading"] == "PRs waiting longest for a first review"
    assert [(i["key"], i["title"], i["detail"]) for i in f.behind["items"]] == [
        ("acme/pay#2", "Retry <!channel> payments", "9.4 d without a review"),
        ("acme/pay#3", "PR 3", "5.4 d without a review"),
        ("acme/pay#4", "PR 4", "2.9 d without a review"),
    ]
    assert f.behind["items"][0]["url"] == "https://github.example/acme/pay/pull/2"


def test_a_failure_rate_miss_names_the_incidents_after_the_period_deployments():
    f = figures(digest_db(), digest_team())["change-failure-rate"]
    assert f.target_status == "missed"
    assert f.behind == {
        "heading": "Incidents after deployments in the period",
        "items": [
            {
                "key": "INC-1",
                "title": "Checkout down",
                "url": "",
                "detail": "after the acme/pay deployment of 14 Jan 10:00",
            }
        ],
    }


def test_a_size_miss_names_the_largest_merged_prs():
    f = figures(digest_db(), digest_team())["pr-size"]
    assert f.target_status == "missed"
    assert f.behind["heading"] == "Largest merged PRs"
    assert [(i["key"], i["detail"]) for i in f.behind["items"]] == [
        ("acme/pay#20", "600 lines (+500 −100), merged 13 Jan"),
        ("acme/pay#21", "60 lines (+50 −10), merged 15 Jan"),
    ]


def test_no_person_is_named_behind_any_figure():
    text = json.dumps([f.behind for f in figures(digest_db(), digest_team()).values()])
    assert "alice" not in text and "bob" not in text


# -- nudges: titles, the team's status names, the digest's window ----------------------------------------
NUDGE_NOW = at("2026-01-24 12:00")


def test_the_aging_nudge_reads_title_then_status_as_the_team_wrote_it():
    db = new_db()
    for n in range(1, 6):  # cycle times 1..5 days: p85 = 4.4 days
        item(
            db,
            f"PAY-{n}",
            "2026-01-01 00:00",
            [("2026-01-02 00:00", "Selected"), (f"2026-01-{2 + n:02d} 00:00", "Done")],
        )
    item(db, "PAY-404", "2026-01-01 00:00", [("2026-01-03 12:00", "In Progress")], status="in progress")
    rename(db, "PAY-404", "Improve <onboarding> & flow")
    [nudge] = find_nudges(db, team(nudges=["aging-items"]), NUDGE_NOW)
    msg = nudge_view.message(team(), nudge)
    text = msg["blocks"][0]["text"]["text"]
    assert (
        "• <https://jira.example/browse/PAY-404|PAY-404> Improve &lt;onboarding&gt; &amp; flow"
        " — In Progress, 21 days (usual p85 4.4 d)"
    ) in text
    assert "in_progress" not in json.dumps(msg)
    assert_valid_message(msg)


def test_the_stale_pr_nudge_reads_key_with_repository_title_and_waiting_time():
    db = new_db()
    pr(db, 7, "2026-01-21 00:00", repo="acme/pay", title="Speed up <!here> exports", author="carol")
    [nudge] = find_nudges(db, team(nudges=["stale-prs"]), NUDGE_NOW)
    msg = nudge_view.message(team(), nudge)
    text = msg["blocks"][0]["text"]["text"]
    assert (
        "• <https://github.example/acme/pay/pull/7|acme/pay#7> Speed up &lt;!here&gt; exports"
        " — waiting 3.5 d for a first review"
    ) in text
    assert "carol" not in json.dumps(msg)
    assert_valid_message(msg)


def _weekly_team() -> Team:
    return team(
        nudges=["target"],
        metrics=["throughput"],
        targets={"throughput": 5.0},
        digest={"day": "mon", "time": "09:00", "period_days": 7},
    )


def _done(db, prefix: str, day: str, n: int) -> None:
    for i in range(n):
        item(
            db,
            f"PAY-{prefix}{i}",
            "2026-01-01 00:00",
            [("2026-01-02 00:00", "Selected"), (f"{day} 08:00", "Done")],
        )


def test_a_target_nudge_judges_the_digest_window_not_a_window_of_its_own():
    """Thu 15 Jan: the digest period is 8-14 Jan (complete days), with nothing done. Ten items done this
    morning count in no digest period yet, so the period as it stands misses 5/wk: a heads-up, quoting
    the very figure the digest would show today (a window ending today would have counted them, met
    the target and said nothing)."""
    db = new_db()
    t = _weekly_team()
    now = at("2026-01-15 12:00")
    _done(db, "a", "2026-01-06", 10)  # the period the last digest reported (5-11 Jan) met its target
    _done(db, "b", "2026-01-15", 10)  # today
    [nudge] = find_nudges(db, t, now)
    [line] = nudge.items
    assert line["subject"] == "throughput:at-risk:2026-01-12"
    assert line["title"] == "misses its target in 2026-01-08 – 2026-01-14, ahead of the next digest"
    digest = build_digest(db, t, now)
    assert digest.window == digest_window(t, now)
    [figure] = digest.figures
    assert line["detail"]["value"] == figure.result.value == 0.0
    text = nudge_view.message(t, nudge)["blocks"][0]["text"]["text"]
    assert "0.0/wk against a target of 5.0/wk" in text


def test_on_the_digest_day_the_nudge_notes_the_miss_the_digest_reported():
    db = new_db()
    t = _weekly_team()
    now = at("2026-01-12 12:00")  # Monday: the digest reported 5-11 Jan
    _done(db, "a", "2026-01-06", 3)
    [nudge] = find_nudges(db, t, now)
    [line] = nudge.items
    assert line["subject"] == "throughput:missed:2026-01-12"
    assert line["title"] == "missed its target in 2026-01-05 – 2026-01-11"
    assert line["detail"]["value"] == build_digest(db, t, now).figures[0].result.value == 3.0


# -- Explain through signed clicks ------------------------------------------------------------------------
@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    payments = next(t for t in sample_teams() if t.name == "payments")
    with MockSlack(members={payments.channel: ["U1"]}) as slack:
        yield slack_app(db_path, slack), slack, payments, db_path


def _explain(app, slack, t: Team, metric: str, since: str, until: str) -> dict:
    value = json.dumps({"metric": metric, "team": t.name, "since": since, "until": until})
    action = {"action_id": "explain", "block_id": "metric_actions", "value": value, "type": "button"}
    click(app, [action], channel=t.channel, user="U1", response_url=f"{slack.url}/response/7")
    reply = slack.responses()[-1]
    reply.pop("replace_original")
    assert_valid_message(reply)
    return reply


def _lines(reply: dict) -> list[str]:
    return [
        line
        for b in reply["blocks"]
        if b.get("block_id", "").startswith("explain_") and b["block_id"][8:].isdigit()
        for line in b["text"]["text"].split("\n")
    ]


def test_explain_lists_titles_and_dates_and_says_how_many_more_in_words(env):
    app, slack, t, db_path = env
    reply = _explain(app, slack, t, "cycle-time", "2026-08-01T00:00:00Z", "2026-11-25T00:00:00Z")
    lines = _lines(reply)
    assert len(lines) == 40
    pattern = re.compile(
        r"^• <(https://[^|]+)\|(PAY-\d+)> (.+) · started (\d+ \w{3}), done (\d+ \w{3}) · (\d+\.\d) ([dh])$"
    )
    db = open_db(db_path, create=False)
    for line in lines:
        m = pattern.match(line)
        assert m, line
        summary = db.execute("select summary from work_items where key = ?", [m[2]]).fetchone()[0]
        assert m[3] == summary.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:80]
    result = catalogue.compute(
        db,
        t,
        "cycle-time",
        Window(local_midnight(date(2026, 8, 1), t.tz), local_midnight(date(2026, 11, 25), t.tz)),
        APP_NOW,
    )
    assert len(result.items) > 40
    assert (
        reply["blocks"][-1]["elements"][0]["text"] == f"…and {len(result.items) - 40} more, not listed here."
    )
    text = json.dumps(reply)
    assert "vsm metric" not in text and "--json" not in text and "`" not in text


def test_deployment_explain_lists_the_deployment_time(env):
    app, slack, t, _ = env
    reply = _explain(app, slack, t, "deployment-frequency", "2026-11-01T00:00:00Z", "2026-11-25T00:00:00Z")
    lines = _lines(reply)
    assert lines
    for line in lines:
        assert re.search(r" · deployed \d{1,2} Nov \d\d:\d\d$", line), line


def test_explain_opens_with_the_statistics_behind_a_signal(env):
    app, slack, t, db_path = env
    db = open_db(db_path, create=False)
    w = digest_window(t, APP_NOW)
    result = catalogue.compute(db, t, "cycle-time", w, APP_NOW)
    assert result.signal and result.signal_detail  # the sample's payments team: cycle time went up
    reply = _explain(app, slack, t, "cycle-time", w.since.isoformat(), w.until.isoformat())
    [block] = [b for b in reply["blocks"] if b.get("block_id") == "explain_signal"]
    assert reply["blocks"].index(block) == 1  # right under the heading
    assert block["text"]["text"] == f"*Signal:* {result.signal}\n{result.signal_detail}"


def test_explain_renders_a_signal_detail_and_nothing_without_one():
    t = team()
    w = Window(local_midnight(date(2026, 1, 5), zone("UTC")), local_midnight(date(2026, 1, 12), zone("UTC")))
    r = Result("cycle-time", t.name, w, None, "duration", 0, None, [], signal="slower than usual")
    assert [b.get("block_id") for b in explain_message(t, r)["blocks"]] == ["explain_head"]
    r.signal_detail = "X̄ = 3.0 d, upper limit 5.1 d; Mann–Whitney p = 0.004 (12 vs 40 items)"
    blocks = explain_message(t, r)["blocks"]
    assert blocks[1]["text"]["text"] == f"*Signal:* slower than usual\n{r.signal_detail}"


def test_aging_explain_names_each_item_by_title_and_the_status_the_team_wrote(env):
    app, slack, t, db_path = env
    reply = _explain(app, slack, t, "aging-wip", "2026-11-18T00:00:00Z", "2026-11-26T00:00:00Z")
    lines = _lines(reply)
    assert lines
    statuses = {s for stage in t.flow.stages for s in stage.statuses}
    db = open_db(db_path, create=False)
    for line in lines:
        m = re.match(
            r"^• <https://[^|]+\|(PAY-\d+)> (.+) · ([^·]+) · (\d+ days?|\d+\.\d h)( \(older than usual\))?$",
            line,
        )
        assert m, line
        summary, status = db.execute(
            "select summary, status from work_items where key = ?", [m[1]]
        ).fetchone()
        assert m[2] == summary[:80] and m[3] in statuses and m[3].lower() == status.lower()
    assert "in_progress" not in json.dumps(reply)


def test_explain_escapes_tool_text_and_keeps_each_section_within_slack_limits():
    t = team()
    w = Window(local_midnight(date(2026, 1, 5), zone("UTC")), local_midnight(date(2026, 1, 12), zone("UTC")))
    items = [
        {
            "key": f"PAY-{n}",
            "title": "<!channel> & " + "<" * 200,
            "url": f"https://jira.example/browse/PAY-{n}?" + "x" * 250,
            "start": "2026-01-05T00:00:00Z",
            "end": "2026-01-07T12:00:00Z",
            "hours": 60.0,
        }
        for n in range(45)
    ]
    r = Result("cycle-time", t.name, w, None, "duration", 45, None, [], items=items)
    msg = explain_message(t, r)
    assert_valid_message(msg)
    sections = [b["text"]["text"] for b in msg["blocks"] if b["block_id"][8:].isdigit()]
    assert all(len(s) <= 3000 for s in sections)
    assert sections[0].startswith(
        "• <https://jira.example/browse/PAY-0?" + "x" * 250 + "|PAY-0> &lt;!channel&gt; &amp; &lt;"
    )
    assert "<!channel>" not in json.dumps(msg)
    assert " · started 5 Jan, done 7 Jan · 2.5 d" in sections[0]
    assert msg["blocks"][-1]["elements"][0]["text"] == "…and 5 more, not listed here."


def test_wip_explain_lists_the_windows_days_and_counts_them_as_days(env):
    """WIP is a daily sample: Explain names each day of the window (not the next one, when the
    sample was taken) and says how many days, not "items"."""
    app, slack, t, _ = env
    reply = _explain(app, slack, t, "wip", "2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z")
    days = [re.match(r"^• (\d+ \w{3}) · ", line)[1] for line in _lines(reply)]
    assert sorted(days, key=lambda d: int(d.split()[0])) == [f"{d} Nov" for d in range(2, 9)]
    assert "7 days sampled behind the figure" in reply["blocks"][0]["text"]["text"]


def test_sprint_and_wip_explain_say_what_was_left_undone_and_name_the_work_in_progress(env):
    app, slack, t, db_path = env
    sprints = _explain(app, slack, t, "sprint-completion", "2026-10-01T00:00:00Z", "2026-11-25T00:00:00Z")
    lines = _lines(sprints)
    assert lines and all(re.search(r"· \d+\.\d%, \d+ of \d+ committed items left undone$", x) for x in lines)
    wip = _explain(app, slack, t, "wip", "2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z")
    now = [
        b
        for b in wip["blocks"]
        if b.get("block_id", "").startswith("explain_now_") and b["block_id"][-1].isdigit()
    ]
    db = open_db(db_path, create=False)
    for line in now[0]["text"]["text"].split("\n"):
        key = re.match(r"^• <[^|]+\|(PAY-\d+)> ", line)[1]
        summary = db.execute("select summary from work_items where key = ?", [key]).fetchone()[0]
        assert f"|{key}> {summary[:40]}" in line.replace("&amp;", "&")  # its title, not the key alone
