"""App Home for a member of exactly one team that chose no metrics (the settings form's metrics are
optional: a team saved with the defaults has none). It was not drawn at all: the template read
``single.failed``, which only the error path set (``UndefinedError`` in the log, nothing published).
Driven through a signed ``app_home_opened`` event against the mock Slack, the view published read
back and round-tripped through Block Kit's models."""

from __future__ import annotations

from builders import team
from fakes.slack import MockSlack
from slackkit import NOW, slack_app
from test_org_slack import CHANNELS, build_org
from test_portfolio import home, ids, text

from metrics.store import open_db
from metrics.teams import create_team

SETTINGS_LINE = "No metrics chosen yet: pick them with *Settings*, or `/vsm settings` in <#C0QUIET>."


def _with_quiet_team(path) -> None:
    """build_org's org (three teams, an org North Star), and "quiet": a team that chose no metrics."""
    build_org(path, NOW.date())
    db = open_db(path)
    create_team(db, team(name="quiet", channel="C0QUIET", metrics=[]), who="U0")
    db.conn.close()


def test_one_team_without_metrics_gets_app_home_pointing_to_settings(tmp_path, caplog):
    path = tmp_path / "org.db"
    _with_quiet_team(path)
    with MockSlack(members={"C0QUIET": ["U9"]}) as slack:
        view = home(slack_app(path, slack), slack, "U9")  # published, and Block Kit parses it
    assert "failed" not in caplog.text  # no listener error: the view was drawn
    assert ids(view)[-2:] == ["team:1", "figures:1"]
    assert text(view, "team:1").startswith("*quiet* · <#C0QUIET> · last 28 days to 24 Nov")
    assert view["blocks"][-2]["accessory"]["action_id"] == "adjust_metrics"
    assert view["blocks"][-1]["elements"][0]["text"] == SETTINGS_LINE
    assert text(view, "org_north_star").startswith("*Throughput* 1.3/wk")  # the org's, above it


def test_a_portfolio_team_without_metrics_says_the_same(tmp_path):
    """In a portfolio (here with no org North Star, so the quiet team's block has no lines at all),
    the team's block points to its settings in the same words."""
    path = tmp_path / "org.db"
    _with_quiet_team(path)
    db = open_db(path)
    db.conn.execute("DELETE FROM org WHERE key = 'north_star'")
    db.conn.commit()
    db.conn.close()
    with MockSlack(members={"C0QUIET": ["U9"], CHANNELS["alpha"]: ["U9"]}) as slack:
        view = home(slack_app(path, slack), slack, "U9")
    quiet = next(b for b in view["blocks"] if b.get("text", {}).get("text", "").startswith("*quiet*"))
    figures = view["blocks"][view["blocks"].index(quiet) + 1]
    assert figures["text"]["text"] == SETTINGS_LINE
    assert figures["accessory"]["action_id"] == "adjust_metrics"
