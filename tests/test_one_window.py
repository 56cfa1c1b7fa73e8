"""Issue 12 §1: without a period asked for, every surface shows the team's digest period (the last
``period_days`` complete local days), names it, and so shows the same number: `/vsm <metric>`,
`/vsm northstar` (the channel's team's row, with the org's zone and period the team's), App Home, the
digest preview and `vsm metric` in a terminal."""

import json
import re
from dataclasses import replace
from datetime import date

import pytest
from fakes.slack import MockSlack
from slackkit import NOW, command, command_body, event, signed, slack_app, wait_for
from test_slack_serve import post, vsm_serve

from bot.cli import main
from bot.render import format as fmt
from metrics import catalogue
from metrics.store import open_db
from metrics.teams import get_team, save_team, set_org
from metrics.timeutil import Window, local_midnight

TEAM = "platform"  # Asia/Kolkata: its local days are not UTC's
PERIOD_DAYS = 21  # not the default 28, and not the 30 days the command used to show
# NOW is Wed 25 Nov 2026 15:00 UTC, 20:30 in Kolkata: the last 21 complete local days.
SINCE, UNTIL = date(2026, 11, 4), date(2026, 11, 25)
LABEL = "2026-11-04 – 2026-11-24"
ANY_LABEL = re.compile(r"\d{4}-\d{2}-\d{2} – \d{4}-\d{2}-\d{2}")


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    db = open_db(db_path, create=False)
    team = get_team(db, TEAM)
    team = replace(team, digest={**team.digest, "period_days": PERIOD_DAYS})
    save_team(db, team, "test")
    # `/vsm northstar` shows the org roll-up over the org's window, each team's row on it: with the
    # org's zone and period the team's own, that row is the team's digest figure.
    set_org(db, "timezone", team.timezone, "test")
    set_org(db, "digest", {"day": "mon", "time": "08:00", "period_days": PERIOD_DAYS}, "test")
    db.conn.close()
    with MockSlack(members={team.channel: ["U1"]}) as slack:
        yield slack_app(db_path, slack), slack, team, db_path


def expected(db_path, team, metric_id: str) -> str:
    """The figure over the hand-made window, as a reader sees it: cycle time's p50, deployments a week."""
    window = Window(local_midnight(SINCE, team.tz), local_midnight(UNTIL, team.tz))
    db = open_db(db_path, create=False)
    metric = catalogue.get(metric_id)
    value = catalogue.compute(db, team, metric_id, window, NOW).value
    db.conn.close()
    assert value is not None, metric_id  # the sample has data there: a figure to compare
    return fmt.duration(value["p50"]) if metric.kind == "duration" else fmt.number(metric, value)


def text_of(payload) -> str:
    return json.dumps(payload, ensure_ascii=False)


def block(payload: dict, block_id: str) -> str:
    return text_of(next(b for b in payload["blocks"] if b.get("block_id") == block_id))


def team_row(north: dict, metric_id: str) -> str:
    """The channel's team's row under the org figure in `/vsm northstar`: first, under its heading."""
    rows = next(b for b in north["blocks"] if b.get("block_id") == f"ns_teams:{metric_id}:1")
    heading, row, *_others = rows["text"]["text"].split("\n")
    assert heading == "_This channel's team_"
    return row


def home_line(view: dict, name: str) -> str:
    """App Home's line for one figure: "Cycle time: *p50 … · p85 …* `▃▅▂`"."""
    figures = next(b for b in view["blocks"] if b.get("block_id") == "figures:1")["text"]["text"]
    return next(line for line in figures.split("\n") if line.startswith(f"{name}:"))


def test_every_surface_shows_the_same_figure_for_the_digest_period(env, monkeypatch, capsys):
    app, slack, team, db_path = env
    p50 = expected(db_path, team, "cycle-time")
    per_week = expected(db_path, team, "deployment-frequency")
    url = f"{slack.url}/response/1"

    command(app, "cycle-time", channel=team.channel, response_url=url)
    command(app, "deployment-frequency", channel=team.channel, response_url=url)
    command(app, "northstar", channel=team.channel, response_url=url)
    command(app, "digest", channel=team.channel, response_url=url)
    cycle, deploys, north, digest = slack.responses()
    event(app, {"type": "app_home_opened", "user": "U1", "tab": "home"})
    [published] = slack.calls_to("views.publish")
    home = published.body["view"]

    # Each names the one window, and no other.
    for payload in (cycle, deploys, north, digest, home):
        assert set(ANY_LABEL.findall(text_of(payload))) == {LABEL}, text_of(payload)
    assert f"last {PERIOD_DAYS} days to 24 Nov ({LABEL})" in block(home, "team:1")

    # Cycle time's p50, and deployment frequency, are the same figure on each.
    assert f"p50 {p50}" in block(cycle, "figure")
    assert f"p50 {p50}" in block(digest, "fig:cycle-time")
    assert f"p50 {p50}" in home_line(home, "Cycle time")
    assert per_week in block(deploys, "figure")
    assert f"• {TEAM}: {per_week} (" in team_row(north, "deployment-frequency")
    assert per_week in block(digest, "fig:deployment-frequency")
    assert per_week in home_line(home, "Deployment frequency")

    # The terminal agrees: `vsm metric` without --period is the same window and figure.
    monkeypatch.setenv("VSM_NOW", NOW.isoformat())
    monkeypatch.delenv("VSM_CONFIG", raising=False)
    monkeypatch.chdir(db_path.parent)
    for mid, figure in (("cycle-time", f"p50 {p50}"), ("deployment-frequency", per_week)):
        assert main(["metric", mid, "--team", TEAM, "--db", str(db_path)]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0].endswith(f"· {TEAM} · {LABEL}") and figure in out.splitlines()[1]
    assert main(["metric", "cycle-time", "--team", TEAM, "--db", str(db_path), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["since"], answer["until"]) == ("2026-11-03T18:30:00Z", "2026-11-24T18:30:00Z")


def test_a_period_asked_for_is_still_the_one_shown(env):
    app, slack, team, _ = env
    command(app, "cycle-time 90d", channel=team.channel, response_url=f"{slack.url}/response/1")
    [reply] = slack.responses()
    # 90 days ending today (25 Nov in Kolkata), not the digest period.
    assert set(ANY_LABEL.findall(text_of(reply))) == {"2026-08-28 – 2026-11-25"}


def _signed_command(served, slack, text: str, channel: str) -> None:
    body = command_body(text, channel=channel, response_url=f"{slack.url}/response/{text}")
    resp = post(served.url, body, signed(body, content_type="application/x-www-form-urlencoded"))
    assert resp.status_code == 200


def _answers(slack, n: int, deadline_s: float = 60) -> list[dict]:
    """The answers POSTed to response URLs, once there are ``n`` of them."""
    return wait_for(lambda: len(slack.responses()) >= n and slack.responses(), deadline_s, slack.responses)


def test_vsm_serve_answers_the_command_and_the_digest_over_one_window(sample_db, tmp_path):
    """The real `vsm serve --http` process (its own clock): `/vsm cycle-time` and `/vsm digest`
    name the same window, of the team's ``period_days``, and show the same p50."""
    (tmp_path / "s.db").write_bytes(sample_db.read_bytes())
    db = open_db(tmp_path / "s.db", create=False)
    team = get_team(db, TEAM)
    db.conn.close()
    with MockSlack() as slack, vsm_serve(tmp_path, slack.base_url) as served:
        _signed_command(served, slack, "cycle-time", team.channel)
        [cycle] = _answers(slack, 1)
        _signed_command(served, slack, "digest", team.channel)
        digest = _answers(slack, 2)[1]
    [label] = set(ANY_LABEL.findall(text_of(cycle)))
    assert set(ANY_LABEL.findall(text_of(digest))) == {label}
    since, last = (date.fromisoformat(d) for d in label.split(" – "))
    assert (last - since).days + 1 == team.digest["period_days"]
    p50 = re.search(r"p50 ([0-9.]+ [hd])", block(cycle, "figure")).group(1)
    assert f"p50 {p50}" in block(digest, "fig:cycle-time")
