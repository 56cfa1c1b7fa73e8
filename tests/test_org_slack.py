"""Issue 13 §1 and §3 in Slack: `/vsm northstar` from any channel is the org roll-up, `/vsm teams`
lists every team, both within Slack's limits for a 1,000-team org; driven by signed requests against
the mock Slack (and through a real `vsm serve --http`), reading the Block Kit sent.

The org (``build_org``), hand-computed. North Star: throughput. Org window: the 28 complete UTC days
before ``end`` (4 weeks). Items finished in it: AAA-1, AAA-2, SHR-1 (alpha: projects AAA and SHR),
BBB-1 and SHR-1 (bravo: BBB and SHR), CCC-1 (charlie). Each team's throughput: alpha 3 / 4 = 0.75,
shown 0.8/wk (target ≥ 0.5: on target); bravo 2 / 4 = 0.5/wk (target ≥ 5: off target); charlie 1 / 4 =
0.25, shown 0.3/wk (no target). The org's: SHR-1 is in two teams' scopes and counts once, so 5
distinct items / 4 = 1.25, shown 1.3/wk (the teams' rows sum to 6 / 4 = 1.5/wk); org target ≥ 2: off
target.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from builders import item, team
from fakes.slack import MockSlack
from slackkit import NOW, assert_valid_message, command_body, command_reply, signed, slack_app, wait_for
from test_slack_serve import post, vsm_serve

from bot.cli import main
from metrics.store import open_db
from metrics.teams import seed_from_config
from metrics.workspace import SINGLE

CHANNELS = {"alpha": "C0ALPHA", "bravo": "C0BRAVO", "charlie": "C0CHARLIE"}
OUTSIDE = "C0LEADERS"  # a channel no team uses


def _done(db, key: str, end: date, days_before: int) -> None:
    """An item started two days before it finished, ``days_before`` days before ``end``."""

    def at(days: int) -> str:
        return f"{(end - timedelta(days=days)).isoformat()} 09:00"

    item(db, key, at(days_before + 3), [(at(days_before + 2), "In Progress"), (at(days_before), "Done")])


def build_org(path, end: date, *, north_star: tuple[str, ...] = ("throughput",)) -> None:
    """Three teams, one shared project, on a new database at ``path`` (see the module's docstring)."""
    db = open_db(path)
    for key, days in (("AAA-1", 3), ("AAA-2", 10), ("SHR-1", 5), ("BBB-1", 7), ("CCC-1", 12)):
        _done(db, key, end, days)
    scope = {"repos": [], "services": [], "metrics": ["throughput", "cycle-time"]}
    teams = [
        team(
            name="alpha",
            channel=CHANNELS["alpha"],
            jira_projects=["AAA", "SHR"],
            targets={"throughput": 0.5},
            **scope,
        ),
        team(
            name="bravo",
            channel=CHANNELS["bravo"],
            jira_projects=["BBB", "SHR"],
            targets={"throughput": 5.0},
            **scope,
        ),
        team(name="charlie", channel=CHANNELS["charlie"], jira_projects=["CCC"], **scope),
    ]
    seed_from_config(db, teams, {"north_star": list(north_star)})
    # The org's target, as `[org] targets` stores it (metrics.org.org_targets reads it).
    db["org"].upsert(
        {"workspace": SINGLE, "key": "targets", "value": json.dumps({"throughput": 2.0})},
        pk=("workspace", "key"),
    )
    db.conn.close()


def break_workflow(path, team: str = "bravo") -> None:
    """The team's stored workflow loses its statuses (a hand edit, a damaged row): loading the team's
    data raises, as it would for any settings row no rule expected."""
    db = open_db(path, create=False)
    settings = json.loads(db.execute("select settings from teams where name = ?", [team]).fetchone()[0])
    settings["workflow"] = [{"stage": "done"}]
    db.execute("update teams set settings = ? where name = ?", [json.dumps(settings), team])
    db.conn.commit()
    db.conn.close()


@pytest.fixture
def org_app(tmp_path):
    path = tmp_path / "org.db"
    build_org(path, NOW.date())
    with MockSlack(members={**{c: ["U1"] for c in CHANNELS.values()}, OUTSIDE: ["U1"]}) as slack:
        yield slack_app(path, slack), slack, path


def section(payload: dict, block_id: str) -> str:
    return next(b for b in payload["blocks"] if b.get("block_id") == block_id)["text"]["text"]


def rows(payload: dict, metric: str) -> list[str]:
    """Every line of the team rows under one org figure, in order."""
    return [
        line
        for b in payload["blocks"]
        if str(b.get("block_id", "")).startswith(f"ns_teams:{metric}:")
        for line in b["text"]["text"].split("\n")
    ]


# -- /vsm northstar -----------------------------------------------------------------------------------------
def test_northstar_outside_any_team_is_the_org_figure_then_every_team_by_name(org_app):
    app, slack, _ = org_app
    reply = command_reply(app, slack, "northstar", channel=OUTSIDE)
    org = section(reply, "ns:throughput")
    # The pooled figure: SHR-1 once (1.3/wk), not the sum of the rows (1.5/wk); the org target judged.
    assert "*Throughput* · all teams · 2026-10-28 – 2026-11-24\n*1.3/wk*  (5 items)" in org
    assert "⚠️ off target (≥ 2.0/wk)" in org
    assert "North Star across 3 teams · 2026-10-28 – 2026-11-24 (UTC)" in json.dumps(
        reply, ensure_ascii=False
    )
    signal = next(b for b in reply["blocks"] if b.get("block_id") == "ns_signal:throughput")
    assert signal["elements"][0]["text"].startswith("ⓘ ")  # four weeks of history: no signal, said why
    assert "not enough history" in signal["elements"][0]["text"]
    assert rows(reply, "throughput") == [
        "• alpha: 0.8/wk (3 items) · on target",
        "• bravo: 0.5/wk (2 items) · off target",
        "• charlie: 0.3/wk (1 item)",
    ]
    assert reply["blocks"][-1]["elements"][0]["action_id"] == "set_north_star"


def test_northstar_in_a_team_channel_puts_that_teams_row_first(org_app):
    app, slack, _ = org_app
    reply = command_reply(app, slack, "northstar", channel=CHANNELS["bravo"])
    assert "*1.3/wk*  (5 items)" in section(reply, "ns:throughput")  # the same org figure anywhere
    assert rows(reply, "throughput") == [
        "_This channel's team_",
        "• bravo: 0.5/wk (2 items) · off target",
        "_Other teams, by name_",
        "• alpha: 0.8/wk (3 items) · on target",
        "• charlie: 0.3/wk (1 item)",
    ]


def test_northstar_without_north_star_metrics_says_how_to_set_them(tmp_path):
    path = tmp_path / "none.db"
    build_org(path, NOW.date(), north_star=())
    with MockSlack() as slack:
        reply = command_reply(slack_app(path, slack), slack, "northstar", channel=OUTSIDE)
    said = section(reply, "no_north_star")
    assert "No North Star metrics are set" in said and "`[org] north_star`" in said
    assert "Change (admins)" in said
    assert [b.get("block_id") for b in reply["blocks"]] == ["no_north_star", "north_star_actions"]


# -- /vsm teams ---------------------------------------------------------------------------------------------
def test_teams_lists_every_team_as_vsm_teams_does(org_app, capsys, monkeypatch, tmp_path):
    app, slack, path = org_app
    reply = command_reply(app, slack, "teams", channel=OUTSIDE)
    assert reply["text"] == "3 teams, by name"
    listed = section(reply, "teams:1").split("\n")
    assert listed == [
        f"• *{name}* · <#{CHANNELS[name]}> · digest Mondays 09:00 UTC, last 28 days · metrics: throughput, cycle-time"
        for name in ("alpha", "bravo", "charlie")
    ]
    # The terminal says the same schedule in the same words.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VSM_CONFIG", raising=False)
    assert main(["teams", "--db", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "alpha  channel C0ALPHA  UTC",
        "  digest: Mondays 09:00 UTC, last 28 days",
        "  metrics: throughput, cycle-time",
    ]


# -- a 1,000-team org ---------------------------------------------------------------------------------------
def build_big_org(path) -> list[str]:
    """1,000 teams, each with one item finished in the window, on a new database at ``path``; their
    channels."""
    db = open_db(path)
    teams = []
    for i in range(1000):
        _done(db, f"P{i}-1", NOW.date(), 3 + i % 20)
        teams.append(
            team(
                name=f"team {i:04d}",
                channel=f"C0T{i:04d}",
                jira_projects=[f"P{i}"],
                repos=[],
                services=[],
                metrics=["throughput", "cycle-time", "wip"],
                targets={"throughput": 1.0},
            )
        )
    seed_from_config(db, teams, {"north_star": ["throughput", "cycle-time"]})
    db.conn.close()
    return [t.channel for t in teams]


@pytest.fixture(scope="module")
def big_org(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.db"
    return path, build_big_org(path)


def _counted(payload: dict, prefix: str, more: str) -> tuple[int, int]:
    """(rows shown, teams counted in the "…and N more" line) of the sections whose id starts so."""
    lines = [
        line
        for b in payload["blocks"]
        if str(b.get("block_id", "")).startswith(prefix)
        for line in b["text"]["text"].split("\n")
    ]
    shown = [line for line in lines if line.startswith("• ")]
    [tail] = [line for line in lines if line.startswith("…and ")]
    assert tail.endswith(more), tail
    return len(shown), int(tail.split()[1])


def test_a_thousand_team_org_fits_slacks_limits(big_org):
    path, channels = big_org
    with MockSlack() as slack:
        app = slack_app(path, slack)
        north = command_reply(app, slack, "northstar", channel=channels[500])  # checks 50 blocks, text
        teams = command_reply(app, slack, "teams", channel=OUTSIDE)
    for payload in (north, teams):
        for b in payload["blocks"]:
            text = b.get("text") or {}
            assert len(text.get("text", "")) <= 3000
    for metric in ("throughput", "cycle-time"):
        shown, more = _counted(north, f"ns_teams:{metric}:", "`vsm northstar` lists every team.")
        assert shown + more == 1000 and shown >= 40
        assert rows(north, metric)[:2] == ["_This channel's team_", rows(north, metric)[1]]
        assert rows(north, metric)[1].startswith("• team 0500: ")
    shown, more = _counted(teams, "teams:", "`vsm teams` lists every team.")
    assert shown + more == 1000 and shown >= 100


# -- through a real `vsm serve --http` ----------------------------------------------------------------------
def _answer(served, slack, text: str, channel: str) -> dict:
    body = command_body(text, channel=channel, response_url=f"{slack.url}/response/{text}")
    before = len(slack.responses())
    assert (
        post(served.url, body, signed(body, content_type="application/x-www-form-urlencoded")).status_code
        == 200
    )
    return wait_for(lambda: len(slack.responses()) > before and slack.responses()[-1], why=served.log)


def test_vsm_serve_answers_northstar_and_teams_from_any_channel(tmp_path):
    """The real process, on its own clock: the org built relative to today."""
    build_org(tmp_path / "s.db", datetime.now(UTC).date())
    with MockSlack() as slack, vsm_serve(tmp_path, slack.base_url) as served:
        north = _answer(served, slack, "northstar", CHANNELS["charlie"])
        teams = _answer(served, slack, "teams", OUTSIDE)
    for payload in (north, teams):
        payload.pop("replace_original")
        assert_valid_message(payload)
    assert "*1.3/wk*  (5 items)" in section(north, "ns:throughput")
    assert rows(north, "throughput")[:2] == ["_This channel's team_", "• charlie: 0.3/wk (1 item)"]
    assert len(section(teams, "teams:1").split("\n")) == 3
