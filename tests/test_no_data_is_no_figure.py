"""No data is never a figure (issue 12 follow-up: B1, R1-#1, #2, #3, #4, #9, #11 and the services-only
lead time): a figure nobody could know (no source in the team's scope, never synced, before the
history) has no value, no weekly points, no target verdict and no target nudge, and says why; a known
zero (a synced scope where nothing was finished) is judged like any figure. Driven through the app with
signed requests, reading the Block Kit it sends; expectations worked out by hand from tests/builders.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from builders import deploy, item, pr, team
from fakes.slack import MockSlack
from slackkit import NOW, assert_valid_message, click, command, slack_app

from metrics import catalogue
from metrics.digest import digest_window
from metrics.nudges import find_nudges
from metrics.store import open_db
from metrics.targets import read_target
from metrics.teams import Team, save_team
from metrics.timeutil import iso

# Period: the 28 complete local days before NOW (Wed 25 Nov 2026): 28 Oct – 24 Nov.
DIGEST = {"day": "mon", "time": "09:00", "period_days": 28}
CHANNEL = "C1"


def targets(**bounds: str) -> dict:
    return {
        mid.replace("_", "-"): read_target(catalogue.get(mid.replace("_", "-")), b)
        for mid, b in bounds.items()
    }


def day(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def store(tmp_path):
    """A database file for the app, and the open handle the test writes rows through."""
    path = tmp_path / "app.db"
    db = open_db(path)
    yield db, path
    db.conn.close()


@pytest.fixture
def slack():
    with MockSlack(members={CHANNEL: ["U1"]}) as mock:
        yield mock


def ask(path, slack, t: Team, *texts: str) -> list[dict]:
    """The replies to ``/vsm <text>`` for each text, in the team's channel."""
    app = slack_app(path, slack)
    before = len(slack.responses())
    for i, text in enumerate(texts):
        command(app, text, channel=t.channel, response_url=f"{slack.url}/response/{i}")
    replies = slack.responses()[before:]
    assert len(replies) == len(texts)
    for r in replies:
        assert_valid_message(r)
    return replies


def said(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False)


def figure_text(reply: dict) -> str:
    return next(b for b in reply["blocks"] if b.get("block_id") == "figure")["text"]["text"]


def signal_line(reply: dict) -> str:
    return next(b for b in reply["blocks"] if b.get("block_id") == "signal")["elements"][0]["text"]


# -- B1: a team never synced: no verdict, no nudge ----------------------------------------------------------
def test_a_never_synced_team_gets_no_target_verdict_and_no_target_nudge(store, slack):
    db, path = store
    t = team(
        metrics=["aging-wip", "throughput", "change-failure-rate"],
        targets=targets(aging_wip="5", throughput="8", change_failure_rate="10%"),
        nudges=["target"],
        digest=DIGEST,
    )
    save_team(db, t, "test")
    digest, aging, throughput = ask(path, slack, t, "digest", "aging-wip", "throughput")
    for reply in (digest, aging, throughput):
        text = said(reply)
        assert "has not been synced yet" in text
        assert "on target" not in text and "off target" not in text
    assert "Jira has not been synced yet" in figure_text(aging)
    assert "`" not in figure_text(throughput)  # no flat sparkline of invented zero weeks
    assert find_nudges(db, t, NOW) == []
    result = catalogue.compute(db, t, "aging-wip", digest_window(t, NOW), NOW).to_json()
    assert (result["value"], result["sample_size"]) == (None, 0)
    assert [p["value"] for p in result["series"]] == [None] * len(result["series"])


def test_a_synced_scope_where_nothing_finished_is_a_real_zero_and_judged(store, slack):
    db, path = store
    t = team(metrics=["throughput"], targets=targets(throughput="8"), nudges=["target"], digest=DIGEST)
    save_team(db, t, "test")
    # Jira synced since June: one item done then, nothing since.
    item(db, "PAY-1", "2026-06-01 09:00", [("2026-06-02 09:00", "In Progress"), ("2026-06-05 09:00", "Done")])
    [reply] = ask(path, slack, t, "throughput")
    assert "no items finished in this period" in figure_text(reply)
    assert "off target" in figure_text(reply)
    result = catalogue.compute(db, t, "throughput", digest_window(t, NOW), NOW)
    assert (result.value, result.sample_size) == (0.0, 0)
    assert all(p["value"] == 0.0 for p in result.series if not p.get("partial"))
    [nudge] = find_nudges(db, t, NOW)
    assert [i["subject"].split(":")[0] for i in nudge.items] == ["throughput"]


# -- R1-#2 and R1-#11: no Jira project in scope ----------------------------------------------------------------
def test_no_jira_project_gives_no_throughput_and_no_forecast_with_the_reason(store, slack):
    db, path = store
    t = team(jira_projects=[], metrics=["throughput"], targets=targets(throughput="8"), nudges=["target"])
    save_team(db, t, "test")
    throughput, forecast = ask(path, slack, t, "throughput", "forecast 10")
    assert "no Jira projects in this team's scope" in figure_text(throughput)
    assert "⚠️" not in figure_text(throughput) and "off target" not in said(throughput)
    assert (
        forecast["blocks"][0]["text"]["text"]
        == "No forecast for *pay*: no Jira projects in this team's scope."
    )
    assert find_nudges(db, t, NOW) == []
    figure = catalogue.compute(db, t, "forecast", digest_window(t, NOW), NOW)
    assert figure.no_data_reason == "no Jira projects in this team's scope"
    assert [p["value"] for p in figure.series] == [None] * len(figure.series)


def test_a_forecast_for_a_team_never_synced_says_so_not_that_nothing_was_done(store, slack):
    db, path = store
    t = team()
    save_team(db, t, "test")
    [forecast] = ask(path, slack, t, "forecast 10")
    assert forecast["blocks"][0]["text"]["text"] == "No forecast for *pay*: Jira has not been synced yet."


# -- R1-#1: deployments without any incident source ---------------------------------------------------------
def _deployments(db, service: str = "acme/pay") -> None:
    """Five deployments a week from July to the day before NOW."""
    d = datetime(2026, 7, 6, 10, tzinfo=UTC)
    while d < NOW - timedelta(days=1):
        if d.weekday() < 5:
            deploy(db, f"d{d:%Y%m%d}", day(d), service=service)
        d += timedelta(days=1)


@pytest.mark.parametrize(
    ("scope", "reason"),
    [
        (
            {"services": ["acme/pay"]},
            "PagerDuty has not been synced yet, so no deployment can count as failed",
        ),
        (
            {"services": [], "repos": ["acme/pay"]},
            "no incident service in this team's scope, and no incidents synced for its repositories, "
            "so no deployment can count as failed",
        ),
    ],
)
def test_change_failure_rate_without_incidents_is_no_data_with_the_reason(store, slack, scope, reason):
    db, path = store
    t = team(
        metrics=["change-failure-rate"], targets=targets(change_failure_rate="10%"), digest=DIGEST, **scope
    )
    save_team(db, t, "test")
    _deployments(db)
    [reply] = ask(path, slack, t, "change-failure-rate")
    text = figure_text(reply)
    assert f"no data in this period: {reason}" in text
    assert "*0.0%*" not in text and "on target" not in text and "✅" not in text
    result = catalogue.compute(db, t, "change-failure-rate", digest_window(t, NOW), NOW).to_json()
    assert (result["value"], result["previous"], result["no_data_reason"]) == (None, None, reason)


# -- R1-lower: a services-only scope has lead times, and earlier ones, as it has deployments -----------------
def test_lead_time_for_changes_of_a_services_only_team_has_its_previous_figure(store, slack):
    db, path = store
    t = team(jira_projects=[], repos=[], services=["SVC"], metrics=["lead-time-for-changes"], digest=DIGEST)
    save_team(db, t, "test")
    d = datetime(2026, 7, 6, 10, tzinfo=UTC)
    n = 0
    while d < NOW - timedelta(days=1):  # a deployment every Monday, shipping a PR begun two days before
        n += 1
        pr(db, n, day(d - timedelta(days=2)), merged=day(d - timedelta(days=1)))
        deploy(db, f"d{n}", day(d), service="SVC", prs=[n])
        d += timedelta(days=7)
    window = digest_window(t, NOW)
    lead = catalogue.compute(db, t, "lead-time-for-changes", window, NOW)
    frequency = catalogue.compute(db, t, "deployment-frequency", window, NOW)
    assert frequency.previous is not None
    assert lead.value == {"p50": 48.0, "p85": 48.0}
    assert (lead.previous, lead.previous_note) == ({"p50": 48.0, "p85": 48.0}, None)
    assert not (lead.signal_note or "").startswith("not enough history")
    rework = catalogue.compute(db, t, "rework-rate", window, NOW)
    assert (rework.previous, rework.previous_note) == (0.0, None)
    [reply] = ask(path, slack, t, "lead-time-for-changes")
    assert "no earlier data" not in said(reply)
    assert "not enough history for a signal (0 weeks)" not in said(reply)


def test_lead_time_and_rework_are_unknown_while_the_shipped_prs_are_not_synced(store):
    db, _path = store
    t = team(jira_projects=[], repos=[], services=["SVC"], digest=DIGEST)
    deploy(db, "d1", "2026-11-02 10:00", service="SVC", prs=[1])  # PR 1 of acme/pay: not stored
    window = digest_window(t, NOW)
    reason = "the pull requests these deployments shipped have not been synced yet"
    lead = catalogue.compute(db, t, "lead-time-for-changes", window, NOW)
    rework = catalogue.compute(db, t, "rework-rate", window, NOW)
    assert (lead.value, lead.no_data_reason) == (None, reason)
    assert (rework.value, rework.no_data_reason) == (None, f"{reason}, so no deployment can count as rework")


# -- R1-#3: weeks before the history are unknown, not zeros ---------------------------------------------------
def test_weeks_before_the_history_began_are_null_not_zero(store):
    db, _path = store
    t = team(digest=DIGEST)
    # Jira's history begins on Fri 13 Nov (the earliest update stored), in the week of 9 Nov: the
    # period's weeks of 26 Oct and 2 Nov lie before it and are unknown, not weeks with nothing done.
    item(db, "PAY-1", "2026-11-12 09:00", [("2026-11-12 10:00", "In Progress"), ("2026-11-13 10:00", "Done")])
    item(db, "PAY-2", "2026-11-16 09:00", [("2026-11-16 10:00", "In Progress")])
    window = digest_window(t, NOW)
    for mid in ("throughput", "wip", "aging-wip", "net-flow", "forecast"):
        series = catalogue.compute(db, t, mid, window, NOW).to_json()["series"]
        weeks = {p["week"]: p["value"] for p in series}
        assert weeks["2026-10-26"] is None and weeks["2026-11-02"] is None, mid
        assert weeks["2026-11-16"] is not None, mid
    throughput = catalogue.compute(db, t, "throughput", window, NOW).to_json()["series"]
    assert [p["value"] for p in throughput] == [None, None, 1.0, 0.0, 0.0]


# -- R1-#4 and R1-#9: aging WIP says how many are aging, and each item's status as the team wrote it -------
def test_aging_wip_names_the_aged_count_first_and_the_teams_status(store, slack):
    db, path = store
    workflow = [
        {"stage": "backlog", "kind": "backlog", "statuses": ["Backlog"]},
        {"stage": "in_progress", "kind": "active", "statuses": ["In Progress"]},
        {"stage": "review", "kind": "waiting", "statuses": ["Peer Review"]},
        {"stage": "done", "kind": "done", "statuses": ["Done"]},
    ]
    t = team(workflow=workflow, metrics=["aging-wip"], digest=DIGEST)
    save_team(db, t, "test")
    for i in range(5):  # five done within the last 90 days, each in 2 days: p85 = 2.0 d
        item(
            db,
            f"PAY-{i}",
            "2026-10-01 09:00",
            [("2026-10-05 09:00", "In Progress"), ("2026-10-07 09:00", "Done")],
        )
    # Open: one in Peer Review for 10 days (aged), one in progress for a day (not).
    item(
        db,
        "PAY-10",
        "2026-11-10 09:00",
        [("2026-11-14 09:00", "In Progress"), ("2026-11-16 09:00", "Peer Review")],
    )
    item(db, "PAY-11", "2026-11-20 09:00", [("2026-11-23 09:00", "In Progress")])
    # In Peer Review when the period ended (25 Nov 00:00), back In Progress since: the figure's status.
    item(
        db,
        "PAY-12",
        "2026-11-20 09:00",
        [
            ("2026-11-23 12:00", "In Progress"),
            ("2026-11-24 09:00", "Peer Review"),
            ("2026-11-25 10:00", "In Progress"),
        ],
    )
    [reply] = ask(path, slack, t, "aging-wip")
    line = signal_line(reply)
    assert line.startswith("ⓘ 1 of 3 open items is older than usual: over 2.0 d")
    assert "within normal variation" not in line
    window = digest_window(t, NOW)
    result = catalogue.compute(db, t, "aging-wip", window, NOW)
    assert [(i["key"], i["stage"], i["status"], i["flagged"]) for i in result.items] == [
        ("PAY-10", "review", "Peer Review", True),
        ("PAY-11", "in_progress", "In Progress", False),
        ("PAY-12", "review", "Peer Review", False),
    ]
    wip = catalogue.compute(db, t, "wip", window, NOW)
    assert {i["key"]: i["status"] for i in wip.extra["current_items"]} == {
        "PAY-10": "Peer Review",
        "PAY-11": "In Progress",
        "PAY-12": "Peer Review",
    }
    # Explain names the status each item was in, as the aging nudge does ("Peer Review"), not a stage.
    value = json.dumps(
        {"metric": "aging-wip", "team": t.name, "since": iso(window.start), "until": iso(window.end)}
    )
    action = {"action_id": "explain", "block_id": "metric_actions", "value": value, "type": "button"}
    click(slack_app(path, slack), [action], channel=t.channel, response_url=f"{slack.url}/response/9")
    explained = said(slack.responses()[-1])
    assert "PAY-10> summary of PAY-10 · Peer Review" in explained
    assert "PAY-12> summary of PAY-12 · Peer Review" in explained
    assert "· Review ·" not in explained
