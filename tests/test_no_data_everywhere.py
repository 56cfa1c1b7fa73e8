"""A figure nobody could know (no source in the team's scope, or never synced) reads as no data on
every surface: no value, no flat sparkline, no target verdict, no target nudge (issue 12 §3)."""

import json
from dataclasses import replace

import pytest
from fakes.slack import MockSlack
from slackkit import NOW, command, event, slack_app

from metrics import catalogue
from metrics.digest import digest_window
from metrics.nudges import find_nudges
from metrics.store import open_db
from metrics.targets import read_target
from metrics.teams import get_team, save_team

TEAM = "platform"


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    db = open_db(db_path, create=False)
    team = get_team(db, TEAM)
    # No Jira project in scope any more, and a throughput target the team cannot be judged against.
    team = replace(
        team,
        jira_projects=[],
        metrics=["throughput", "cycle-time"],
        targets={"throughput": read_target(catalogue.get("throughput"), "9")},
        nudges=["target"],
    )
    save_team(db, team, "test")
    db.conn.close()
    with MockSlack(members={team.channel: ["U1"]}) as slack:
        yield slack_app(db_path, slack), slack, team, db_path


def text_of(payload) -> str:
    return json.dumps(payload, ensure_ascii=False)


def test_no_source_in_scope_reads_as_no_data_on_every_surface(env):
    app, slack, team, db_path = env
    url = f"{slack.url}/response/1"
    command(app, "throughput", channel=team.channel, response_url=url)
    command(app, "digest", channel=team.channel, response_url=url)
    reply, digest = slack.responses()
    event(app, {"type": "app_home_opened", "user": "U1", "tab": "home"})
    [published] = slack.calls_to("views.publish")
    home = next(b for b in published.body["view"]["blocks"] if b.get("block_id") == "figures:1")
    line = next(x for x in home["text"]["text"].split("\n") if x.startswith("Throughput:"))
    assert "no Jira projects in this team's scope" in line and "`" not in line  # no sparkline
    for payload in (reply, digest):
        said = text_of(payload)
        assert "no Jira projects in this team's scope" in said
        assert "off target" not in said and "on target" not in said
        assert "0.0/wk" not in said

    db = open_db(db_path, create=False)
    result = catalogue.compute(db, get_team(db, TEAM), "throughput", digest_window(team, NOW), NOW)
    assert (result.value, result.sample_size) == (None, 0)
    assert all(p["value"] is None for p in result.series)
    assert find_nudges(db, get_team(db, TEAM), NOW) == []
