"""Issue 13 §3: App Home's org North Star and a delivery manager's portfolio, and its "Full digest"
button, driven by signed requests against the mock Slack (and through a real `vsm serve --http`),
reading the views published and opened.

The org is ``test_org_slack.build_org``'s (figures hand-computed there): org throughput 1.3/wk, off
its target of ≥ 2.0/wk; alpha 0.8/wk on target (≥ 0.5), bravo 0.5/wk off target (≥ 5), charlie
0.3/wk without a target. So bravo needs attention and comes first, though it is not first by name;
alpha and charlie follow by name.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from builders import deploy, team
from fakes.slack import MockSlack
from slackkit import NOW, assert_valid_view, event, interaction, signed, slack_app, wait_for
from test_org_slack import CHANNELS, break_workflow, build_big_org, build_org
from test_slack_serve import post, vsm_serve

from bot.authz import MemberCache
from bot.render.home import MAX_TEAMS
from metrics import results
from metrics.store import open_db
from metrics.teams import create_team, seed_from_config

ORG_LINE = "*Throughput* 1.3/wk · previous period: no earlier data · "


def home(app, slack, user: str) -> dict:
    """App Home as ``user`` opens it: the view published, checked against Slack's view limits."""
    event(app, {"type": "app_home_opened", "user": user, "tab": "home"}, event_id=f"Ev-{user}")
    published = [c for c in slack.calls_to("views.publish") if c.body["user_id"] == user]
    view = published[-1].body["view"]
    assert_valid_view(view)
    return view


def ids(view: dict) -> list[str]:
    return [b.get("block_id", b["type"]) for b in view["blocks"]]


def text(view: dict, block_id: str) -> str:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)["text"]["text"]


@pytest.fixture
def org_app(tmp_path):
    path = tmp_path / "org.db"
    build_org(path, NOW.date())
    members = {CHANNELS["alpha"]: ["U3"], CHANNELS["bravo"]: ["U3", "U1"], CHANNELS["charlie"]: ["U3"]}
    with MockSlack(members=members) as slack:
        # Membership read afresh at every click: a user who left since App Home was drawn is refused.
        yield slack_app(path, slack, members=MemberCache(ttl=0)), slack, path


def test_everyone_sees_the_org_north_star_at_the_top(org_app):
    app, slack, _ = org_app
    view = home(app, slack, "U0")  # in no team's channel
    assert ids(view)[:3] == ["header", "org_north_star", "org_period"]
    line = text(view, "org_north_star")
    assert line.startswith(ORG_LINE) and line.endswith("⚠️ org target: off target (≥ 2.0/wk)")
    assert "not enough history" in line  # why there is no signal, never "within normal variation"
    period = view["blocks"][2]["elements"][0]["text"]
    assert (
        "All 3 teams pooled" in period and "last 28 days to 24 Nov (2026-10-28 – 2026-11-24), UTC" in period
    )
    assert "You are not in any team's channel yet" in text(view, "empty")


def test_one_team_shows_its_figures_in_full_as_before(org_app):
    app, slack, _ = org_app
    view = home(app, slack, "U1")  # only in bravo's channel
    assert text(view, "org_north_star").startswith(ORG_LINE)
    assert ids(view)[-2:] == ["team:1", "figures:1"]
    assert text(view, "team:1").startswith("*bravo* · <#C0BRAVO> · last 28 days to 24 Nov")
    assert text(view, "figures:1").split("\n")[0].startswith("Throughput: *0.5/wk* `")  # and its weeks
    assert view["blocks"][-2]["accessory"]["action_id"] == "adjust_metrics"
    assert "preview_team_digest" not in json.dumps(view)


def test_a_portfolio_puts_the_teams_that_need_attention_first_then_the_others_by_name(org_app):
    app, slack, _ = org_app
    view = home(app, slack, "U3")  # in all three channels
    assert ids(view)[5:] == [
        "attention",
        "divider",
        "team:1",
        "figures:1",
        "others",
        "divider",
        "team:2",
        "figures:2",
        "divider",
        "team:3",
        "figures:3",
    ]
    assert text(view, "team:1") == (
        "*bravo* · <#C0BRAVO> · last 28 days to 24 Nov (2026-10-28 – 2026-11-24)\n⚠️ off target: Throughput"
    )
    assert text(view, "figures:1").split("\n") == [
        "_North Star_",
        "Throughput: *0.5/wk* · ⚠️ off target (≥ 5.0/wk)",
        "_The team's metrics_",
        "Cycle time: *p50 2.0 d · p85 2.0 d*",
    ]
    assert text(view, "team:2").startswith("*alpha* · <#C0ALPHA> · ") and "⚠️" not in text(view, "team:2")
    assert "Throughput: *0.8/wk* · ✅ on target (≥ 0.5/wk)" in text(view, "figures:2")
    assert text(view, "team:3").startswith("*charlie* · <#C0CHARLIE> · ")
    buttons = {b["block_id"]: b["accessory"] for b in view["blocks"] if "accessory" in b}
    for i, name in enumerate(("bravo", "alpha", "charlie"), start=1):
        assert buttons[f"team:{i}"]["action_id"] == "preview_team_digest"
        assert buttons[f"team:{i}"]["value"] == name
        assert buttons[f"figures:{i}"]["action_id"] == "adjust_metrics"
        assert buttons[f"figures:{i}"]["value"] == CHANNELS[name]


def _weekly_deploys(db, repo: str, counts: list[int]) -> None:
    """``counts[k]`` deployments of ``repo`` in the k-th week from Mon 8 Jun 2026, one a day from
    Monday 09:00 (as test_signals' ``weekly_deploys``, for one repository of several)."""
    for k, n in enumerate(counts):
        week = date(2026, 6, 8) + timedelta(weeks=k)
        for i in range(n):
            at = datetime(week.year, week.month, week.day, 9 + i // 5, tzinfo=UTC) + timedelta(days=i % 5)
            deploy(db, f"{repo}-{week}-{i}", at.strftime("%Y-%m-%d %H:%M"), service=repo, repo=repo)


def test_a_worse_signal_needs_attention_and_a_better_one_does_not(tmp_path):
    """Two teams without targets, 20 baseline weeks of 10 and 12 deployments (limits 5.7 to 16.3),
    then, in the digest period (28 Oct – 24 Nov), zulu's weeks of 3 (worse) and echo's of 20
    (better): zulu needs attention and comes first, though last by name; echo's signal is shown,
    and is no reason for attention."""
    path = tmp_path / "signals.db"
    db = open_db(path)
    _weekly_deploys(db, "acme/zulu", [10, 12] * 10 + [3, 3, 3, 3, 1])
    _weekly_deploys(db, "acme/echo", [10, 12] * 10 + [20, 20, 20, 20, 1])
    teams = [
        team(
            name=n,
            channel=c,
            repos=[f"acme/{n}"],
            services=[],
            jira_projects=[],
            metrics=["deployment-frequency"],
        )
        for n, c in (("zulu", "C0ZULU"), ("echo", "C0ECHO"))
    ]
    seed_from_config(db, teams, {"north_star": []})
    db.conn.close()
    with MockSlack(members={"C0ZULU": ["U1"], "C0ECHO": ["U1"]}) as slack:
        view = home(slack_app(path, slack), slack, "U1")
    assert text(view, "team:1").endswith("\n⚠️ worse: Deployment frequency")
    assert text(view, "team:1").startswith("*zulu* ")
    assert "⚑ lower (worse) than its normal weekly range" in text(view, "figures:1")
    assert ids(view).index("others") < ids(view).index("team:2")
    assert text(view, "team:2") == "*echo* · <#C0ECHO> · last 28 days to 24 Nov (2026-10-28 – 2026-11-24)"
    assert "⚑ higher (better) than its normal weekly range" in text(view, "figures:2")


# -- Full digest ------------------------------------------------------------------------------------------------
def click(app, user: str, value: object):
    """ "Full digest" clicked in App Home: a view's click carries no channel and no response_url."""
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "trigger_id": f"trig-{user}",
        "container": {"type": "view", "view_id": "VHOME"},
        "view": {"id": "VHOME", "type": "home"},
        "actions": [
            {"action_id": "preview_team_digest", "block_id": "team:1", "type": "button", "value": value}
        ],
    }
    return interaction(app, payload)


def test_full_digest_opens_the_teams_digest_for_a_member(org_app):
    app, slack, _ = org_app
    assert click(app, "U3", "bravo").status == 200
    [opened] = slack.calls_to("views.open")
    assert opened.body["trigger_id"] == "trig-U3"
    assert opened.body["view"]["blocks"][0]["text"]["text"] == "Building *bravo*'s digest…"
    [update] = slack.calls_to("views.update")
    assert update.body["view_id"] and update.body["hash"]  # the view just opened, not another
    view = update.body["view"]
    assert_valid_view(view)
    assert view["title"]["text"] == "bravo digest"
    assert view["blocks"][0]["text"]["text"] == "📈 bravo · value-stream digest"
    figure = next(b for b in view["blocks"] if b.get("block_id") == "fig:throughput")
    assert "*Throughput*  0.5/wk" in figure["text"]["text"] and "accessory" not in figure
    assert not [b for b in view["blocks"] if b["type"] == "actions"]  # read-only: no dead buttons
    assert "`/vsm digest` in <#C0BRAVO>" in view["blocks"][-1]["elements"][0]["text"]
    assert not slack.calls_to("chat.postMessage") and not slack.calls_to("chat.postEphemeral")


def test_full_digest_is_refused_to_someone_not_in_the_teams_channel(org_app):
    app, slack, _ = org_app
    click(app, "U1", "alpha")  # U1 is in bravo's channel only: a forged or stale button
    slack.members[CHANNELS["bravo"]] = ["U3"]  # U1 has left bravo's channel since App Home was drawn
    click(app, "U1", "bravo")
    notices = [c.body["view"]["blocks"][0]["text"]["text"] for c in slack.calls_to("views.open")]
    assert notices == [
        "Only members of <#C0ALPHA> can see its digest.",
        "Only members of <#C0BRAVO> can see its digest.",
    ]
    assert not slack.calls_to("views.update")  # no digest was built or shown


@pytest.mark.parametrize("value", ["nobody", "", None, {"team": "bravo"}])
def test_full_digest_for_no_such_team_says_so(org_app, value):
    app, slack, _ = org_app
    assert click(app, "U3", value).status == 200
    [opened] = slack.calls_to("views.open")
    assert opened.body["view"]["blocks"][0]["text"]["text"] == "That team no longer exists."
    assert not slack.calls_to("views.update")


# -- a 1,000-team org -------------------------------------------------------------------------------------------
def test_app_home_for_someone_in_a_thousand_teams_fits_a_view(big_org_path):
    path, channels = big_org_path
    with MockSlack(members={c: ["U1"] for c in channels}) as slack:
        started = time.perf_counter()
        view = home(slack_app(path, slack), slack, "U1")  # checks 100 blocks and each block
        took = time.perf_counter() - started
    assert len(view["blocks"]) <= 100
    shown = [b for b in view["blocks"] if str(b.get("block_id", "")).startswith("team:")]
    assert len(shown) == MAX_TEAMS
    more = view["blocks"][-1]["elements"][0]["text"]
    assert more.startswith(f"…and {1000 - MAX_TEAMS} more of your teams: `/vsm teams` lists every team")
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in view["blocks"])
    print(f"App Home for a user in 1,000 teams: {took:.2f} s")  # measured, not asserted


@pytest.fixture(scope="module")
def big_org_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.db"
    return path, build_big_org(path)


# -- through a real `vsm serve --http` ----------------------------------------------------------------------
def test_vsm_serve_publishes_the_portfolio(tmp_path):
    """The real process, on its own clock, with the org built relative to today: the event is
    acknowledged, and App Home published with bravo first."""
    build_org(tmp_path / "s.db", datetime.now(UTC).date())
    members = {c: ["U3"] for c in CHANNELS.values()}
    with MockSlack(members=members) as slack, vsm_serve(tmp_path, slack.base_url) as served:
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": "T1",
                "api_app_id": "A1",
                "event_id": "EvServe",
                "event_time": 1,
                "event": {"type": "app_home_opened", "user": "U3", "tab": "home"},
            }
        )
        assert post(served.url, body, signed(body, content_type="application/json")).status_code == 200
        view = wait_for(lambda: slack.calls_to("views.publish"), why=served.log)[0].body["view"]
    assert_valid_view(view)
    assert text(view, "org_north_star").startswith(ORG_LINE)
    assert [text(view, f"team:{i}").split(" · ")[0] for i in (1, 2, 3)] == ["*bravo*", "*alpha*", "*charlie*"]


def test_a_team_whose_figures_fail_does_not_keep_app_home_from_the_others(org_app, caplog):
    """bravo's stored workflow lost its statuses (a hand edit, or a damaged row): its figures raise.
    App Home is still published, says so on bravo's block, and shows the other teams in full."""
    app, slack, path = org_app
    break_workflow(path)
    view = home(app, slack, "U3")
    assert text(view, "team:1").startswith("*bravo*")
    assert "figures could not be computed just now" in text(view, "team:1")
    assert [text(view, f"team:{i}").split(" · ")[0] for i in (2, 3)] == ["*alpha*", "*charlie*"]
    assert text(view, "figures:2").startswith("_North Star_") or "Throughput" in text(view, "figures:2")
    assert "bravo's data could not be loaded" in caplog.text
    single = home(app, slack, "U1")  # only in bravo's channel
    assert "could not be computed just now" in text(single, "figures:1")


def test_a_team_with_no_figures_at_all_needs_attention_saying_why(tmp_path):
    """A team whose Jira project and repository hold nothing (never synced for it), with a target:
    nothing is known of it, so it is not among the calm teams ("on target where they set one") but
    with the teams needing attention, its reason in a few words."""
    path = tmp_path / "org.db"
    build_org(path, NOW.date())
    db = open_db(path)
    newbie = team(
        name="newbie",
        channel="C0NEWBIE",
        jira_projects=["NEW"],
        repos=["acme/new-thing"],
        services=[],
        metrics=["cycle-time"],
        targets={"cycle-time": 72.0},
    )
    create_team(db, newbie, who="U0")
    db.conn.close()
    with MockSlack(members={CHANNELS["alpha"]: ["U3"], "C0NEWBIE": ["U3"]}) as slack:
        view = home(slack_app(path, slack), slack, "U3")
    assert ids(view)[5:8] == ["attention", "divider", "team:1"]
    heading = text(view, "team:1")
    assert heading.startswith("*newbie* · <#C0NEWBIE> · ")
    assert heading.split("\n")[1] == "⚠️ no figures yet: no Jira issues synced yet for this team's projects"
    assert ids(view).index("others") < ids(view).index("team:2")
    assert text(view, "team:2").startswith("*alpha* ") and "⚠️" not in text(view, "team:2")


def test_app_home_reads_every_teams_figures_at_once(org_app, monkeypatch):
    """Three teams on one digest window: one ``results.figures_of`` call for the portfolio (plus
    the org's North Star's own), not one store read and write per team."""
    app, slack, _ = org_app
    calls = []
    real = results.figures_of

    def counted(db, wanted, *args, **kw):
        calls.append({t.name: list(ids) for t, ids in wanted})
        return real(db, wanted, *args, **kw)

    monkeypatch.setattr(results, "figures_of", counted)
    view = home(app, slack, "U3")
    assert [text(view, f"team:{i}").split(" · ")[0] for i in (1, 2, 3)] == ["*bravo*", "*alpha*", "*charlie*"]
    # The teams' own metrics (cycle time) are read for the portfolio only: in one call, for all three.
    portfolio = [c for c in calls if any("cycle-time" in ids for ids in c.values())]
    assert portfolio == [{n: ["throughput", "cycle-time"] for n in ("alpha", "bravo", "charlie")}]
