"""Issue 14 §2–§5 through Slack: an app serving several workspaces (``create_app(per_workspace=True)``)
answers each signed request from its own workspace's teams, org settings and experiments only.

Two workspaces, T1 and T2, each with a team named ``payments`` (in its own channel: Slack's channel ids
are global, and two workspaces have different channels), on the sample database whose single-mode
teams and org are a third set neither sees. Requests carry the workspace as Slack sends it: a command's
``team_id``, an interaction's ``team.id``, an event's ``team_id``.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from fakes.slack import BOT_USER, MockSlack
from slackkit import (
    NOW,
    ack_json,
    assert_valid_view,
    click,
    command,
    command_reply,
    event,
    initial_state,
    interaction,
    slack_app,
)

from bot import ids
from bot.authz import MemberCache
from metrics import experiments as ex
from metrics.sample import sample_teams
from metrics.store import open_db
from metrics.teams import ORG_LOG, create_team, get_org, get_team, list_teams, set_org, settings_log

T1, T2 = "T1", "T2"
PAY1, LEDGER1, ORG1 = "C1PAY", "C1LEDGER", "C1ORG"  # T1's channels
PAY2, MOB2, NEW2, OTHER2 = "C2PAY", "C2MOB", "C2NEW", "C2OTHER"  # T2's
BOTH = "UBOTH"  # a user the mock puts in channels of both (as on a Grid): only the asking workspace counts


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "ws.db"
    db_path.write_bytes(sample_db.read_bytes())
    db = open_db(db_path, create=False)
    sample = {t.name: t for t in sample_teams()}
    pay = sample["payments"]
    create_team(db, replace(pay, channel=PAY1), who="U1", ws=T1)
    create_team(db, replace(sample["platform"], name="ledger", channel=LEDGER1), who="U1", ws=T1)
    create_team(db, replace(pay, channel=PAY2, metrics=["throughput", "cycle-time"]), who="U2", ws=T2)
    create_team(db, replace(sample["mobile"], channel=MOB2), who="U2", ws=T2)
    set_org(db, "north_star", ["lead-time-for-changes"], who="vsm.toml", ws=T1)
    set_org(db, "channel", ORG1, who="vsm.toml", ws=T1)
    set_org(db, "north_star", ["deployment-frequency", "throughput"], who="vsm.toml", ws=T2)
    db.conn.close()
    members = {
        PAY1: ["U1", BOTH],
        LEDGER1: ["U1"],
        ORG1: ["U1", BOT_USER],
        PAY2: ["U2", BOTH],
        MOB2: ["U2", BOTH],
        NEW2: ["U2", BOT_USER],
        OTHER2: ["U2"],
    }
    uninstalled: list[str] = []
    with MockSlack(members=members) as slack:
        app = slack_app(
            db_path,
            slack,
            per_workspace=True,
            members=MemberCache(ttl=0),
            on_uninstalled=uninstalled.append,
        )
        yield app, slack, db_path, uninstalled


def _db(db_path):
    return open_db(db_path, create=False)


def _press(app, slack, team: str, channel: str, user: str, action: dict, url: str = "1"):
    """A click in workspace ``team``'s ``channel``, as Slack posts it (``team.id`` says where)."""
    return click(
        app, [action], channel=channel, user=user, response_url=f"{slack.url}/response/{url}", team=team
    )


def _submission(app, team: str, user: str, view: dict, state: dict):
    """A modal submitted in workspace ``team``."""
    payload = {
        "type": "view_submission",
        "team": {"id": team, "domain": team.lower()},
        "user": {"id": user, "team_id": team},
        "view": {**view, "id": "V1", "state": state},
    }
    return interaction(app, payload)


def _opened(slack) -> dict:
    view = slack.calls_to("views.open")[-1].body["view"]
    assert_valid_view(view)
    return view


def _answer(slack) -> str:
    return json.dumps(slack.responses()[-1])


# -- commands -------------------------------------------------------------------------------------------------
def test_a_command_answers_with_the_team_of_its_own_workspace(env):
    app, slack, *_ = env
    # T2's payments watches two metrics; T1's, of the same name, the sample's five.
    two = command_reply(app, slack, "digest", channel=PAY2, team=T2)
    assert two["blocks"][0]["text"]["text"] == "📈 payments · value-stream digest"
    said = json.dumps(two)
    assert "Throughput" in said and "Cycle time" in said and "Sprint completion" not in said
    five = command_reply(app, slack, "digest", channel=PAY1, team=T1)
    assert "Sprint completion" in json.dumps(five)
    # T2's channel asked from T1 (a forged team_id, or a channel id T1 does not have): no team there.
    body = ack_json(command(app, "digest", channel=PAY2, team=T1))
    assert body["blocks"][0]["accessory"]["action_id"] == ids.SETUP_TEAM
    # Nor is the single-mode sample team's channel any workspace's.
    body = ack_json(command(app, "digest", channel=sample_teams()[0].channel, team=T1))
    assert body["blocks"][0]["accessory"]["action_id"] == ids.SETUP_TEAM


def test_vsm_teams_lists_only_the_workspace_teams(env):
    app, slack, *_ = env
    two = json.dumps(command_reply(app, slack, "teams", channel=NEW2, team=T2))
    assert f"<#{PAY2}>" in two and f"<#{MOB2}>" in two
    assert f"<#{PAY1}>" not in two and "ledger" not in two and "platform" not in two
    one = json.dumps(command_reply(app, slack, "teams", channel=NEW2, team=T1))
    assert f"<#{PAY1}>" in one and f"<#{LEDGER1}>" in one
    assert f"<#{PAY2}>" not in one and "mobile" not in one


def test_vsm_northstar_pools_only_the_workspace_teams_on_its_own_north_star(env):
    app, slack, *_ = env
    one = command_reply(app, slack, "northstar", channel=PAY1, team=T1)
    said = json.dumps(one)
    assert "Lead time for changes" in said and "Deployment frequency" not in said  # T1's North Star
    assert "ledger" in said and "mobile" not in said and "platform" not in said
    two = json.dumps(command_reply(app, slack, "northstar", channel=PAY2, team=T2))
    assert "Deployment frequency" in two and "Throughput" in two and "Lead time for changes" not in two
    assert "mobile" in two and "ledger" not in two


def test_the_org_digest_preview_is_only_in_its_own_workspace_org_channel(env):
    app, slack, *_ = env
    reply = command_reply(app, slack, "digest", channel=ORG1, team=T1)
    assert "organisation" in json.dumps(reply).lower()
    assert reply["blocks"][-1]["elements"][0]["action_id"] == ids.POST_ORG_DIGEST
    # T1's org channel is not T2's: no team and no org there, so it is offered a team.
    body = ack_json(command(app, "digest", channel=ORG1, team=T2))
    assert body["blocks"][0]["accessory"]["action_id"] == ids.SETUP_TEAM


# -- team settings -----------------------------------------------------------------------------------------
def test_a_team_name_taken_in_one_workspace_is_free_in_another_and_each_keeps_its_settings(env):
    app, slack, db_path, _ = env
    _press(app, slack, T2, NEW2, "U2", {"action_id": ids.SETUP_TEAM, "type": "button", "value": NEW2})
    view = _opened(slack)
    state = initial_state(view)
    state["values"]["name"]["v"]["value"] = "ledger"  # T1 has a ledger; T2 has none
    assert _submission(app, T2, "U2", view, state).body == ""
    db = _db(db_path)
    assert get_team(db, "ledger", ws=T2).channel == NEW2
    assert get_team(db, "ledger", ws=T1).channel == LEDGER1  # T1's, untouched
    # Within T2 the name is taken now: a second "ledger" there is refused on its field, nothing written.
    _press(app, slack, T2, OTHER2, "U2", {"action_id": ids.SETUP_TEAM, "type": "button", "value": OTHER2})
    view = _opened(slack)
    state = initial_state(view)
    state["values"]["name"]["v"]["value"] = "ledger"
    refused = ack_json(_submission(app, T2, "U2", view, state))
    assert refused["errors"]["name"] == "“ledger” is another team's name. Choose another one."
    assert [t.name for t in list_teams(db, ws=T2)] == ["ledger", "mobile", "payments"]


def test_settings_saved_in_one_workspace_leave_the_other_workspace_team_of_the_same_name(env):
    app, slack, db_path, _ = env
    before = get_team(_db(db_path), "payments", ws=T2)
    log_before = settings_log(_db(db_path), "payments", ws=T2)
    command(app, "settings", channel=PAY1, user="U1", team=T1, response_url=f"{slack.url}/response/9")
    view = _opened(slack)
    state = initial_state(view)
    state["values"]["metrics"]["v"]["selected_options"].append(
        {"text": {"type": "plain_text", "text": "Work in progress"}, "value": "wip"}
    )
    assert _submission(app, T1, "U1", view, state).body == ""
    db = _db(db_path)
    assert "wip" in get_team(db, "payments", ws=T1).metrics
    assert get_team(db, "payments", ws=T2) == before
    assert settings_log(db, "payments", ws=T2) == log_before
    assert "metrics: added Work in progress" in settings_log(db, "payments", ws=T1)[-1]["what"]


# -- App Home ------------------------------------------------------------------------------------------------
def test_app_home_lists_only_the_workspace_teams_and_its_north_star(env):
    app, slack, db_path, _ = env
    # BOTH is in PAY1 (T1) and in PAY2 and MOB2 (T2), as the mock lists them: App Home in T2 shows
    # T2's two teams as a portfolio and T2's North Star, nothing of T1's.
    event(app, {"type": "app_home_opened", "user": BOTH, "tab": "home"}, event_id="Ev-T2", team=T2)
    view = slack.calls_to("views.publish")[-1].body["view"]
    assert_valid_view(view)
    said = json.dumps(view)
    assert f"<#{PAY2}>" in said and f"<#{MOB2}>" in said and f"<#{PAY1}>" not in said
    assert "Deployment frequency" in said and "Lead time for changes" not in said
    assert "All 2 teams pooled" in said  # T2's payments and mobile, not the single mode's three
    # In T1: its one team in full.
    event(app, {"type": "app_home_opened", "user": BOTH, "tab": "home"}, event_id="Ev-T1", team=T1)
    view = slack.calls_to("views.publish")[-1].body["view"]
    said = json.dumps(view)
    assert f"<#{PAY1}>" in said and f"<#{PAY2}>" not in said and f"<#{MOB2}>" not in said
    assert [b.get("block_id") for b in view["blocks"]][-2:] == ["team:1", "figures:1"]
    # The figures App Home read were stored under the asking workspace, never the single mode's.
    stored = _db(db_path).execute("select workspace, scope from results").fetchall()
    assert {ws for ws, _ in stored} == {T1, T2}
    assert {scope for ws, scope in stored if ws == T1} == {"", "ledger", "payments"}


def test_full_digest_names_a_team_of_the_clicking_workspace_only(env):
    app, slack, *_ = env
    action = {"action_id": ids.PREVIEW_TEAM_DIGEST, "type": "button", "value": "ledger"}
    _press(app, slack, T2, "", "U1", action)  # T1's ledger, named from T2 (U1 is in its channel)
    [notice] = slack.calls_to("views.open")
    assert "no longer exists" in json.dumps(notice.body["view"])
    assert slack.calls_to("views.update") == []
    # The same name in both: the clicking workspace's payments, checked against its own channel.
    _press(app, slack, T2, "", "U1", action | {"value": "payments"})  # U1 is in T1's payments only
    assert "Only members of <#C2PAY>" in json.dumps(slack.calls_to("views.open")[-1].body["view"])
    _press(app, slack, T2, "", "U2", action | {"value": "payments"})
    shown = json.dumps(slack.calls_to("views.update")[-1].body["view"])
    assert "payments digest" in shown and "Sprint completion" not in shown  # T2's two metrics


# -- experiments ---------------------------------------------------------------------------------------------
def _experiment(db_path, ws: str) -> ex.Experiment:
    db = _db(db_path)
    team = get_team(db, "payments", ws=ws)
    return ex.start(db, team, "cycle-time", "smaller tickets", 6, "U1", NOW.timestamp() - 7 * 86400, ws=ws)


def test_stop_early_of_one_workspace_experiment_pressed_from_another_is_refused(env):
    app, slack, db_path, _ = env
    exp = _experiment(db_path, T1)
    log_before = settings_log(_db(db_path), "payments", ws=T1)
    action = {"action_id": ids.STOP_EXPERIMENT, "type": "button", "value": str(exp.id)}
    # From T2, by a member of T2's payments channel (a team of the same name): unknown there.
    _press(app, slack, T2, PAY2, BOTH, action, url="stop")
    assert "That experiment is not known here." in _answer(slack)
    db = _db(db_path)
    assert ex.get(db, exp.id, ws=T1).state == "running"
    assert settings_log(db, "payments", ws=T1) == log_before
    assert slack.calls_to("chat.postMessage") == []
    # From its own workspace, by a member of its channel, it stops.
    _press(app, slack, T1, PAY1, "U1", action, url="stop")
    assert ex.get(_db(db_path), exp.id, ws=exp.workspace).state == "stopped"
    assert [c.body["channel"] for c in slack.calls_to("chat.postMessage")] == [PAY1]


def test_an_experiment_form_starts_in_its_own_workspace_and_names_no_team_of_another(env):
    app, slack, db_path, _ = env
    command(app, "experiment", channel=PAY2, user="U2", team=T2, response_url=f"{slack.url}/response/9")
    view = _opened(slack)
    state = initial_state(view)
    state["values"]["change"]["v"]["value"] = "fewer handovers"
    state["values"]["metric"]["v"]["selected_option"] = {
        "text": {"type": "plain_text", "text": "Cycle time"},
        "value": "cycle-time",
    }
    # T2's payments form, submitted as from T1 (whose payments is in another channel): refused.
    resp = _submission(app, T1, "U2", view, state)
    assert ack_json(resp)["response_action"] == "errors"
    assert _db(db_path).execute("select count(*) from experiments").fetchone()[0] == 0
    # From T2 it starts, T2's payments' experiment, announced in T2's channel.
    assert _submission(app, T2, "U2", view, state).body == ""
    db = _db(db_path)
    [started] = ex.experiments(db, "payments", ws=T2)
    assert (started.workspace, started.metric, started.change) == (T2, "cycle-time", "fewer handovers")
    assert ex.experiments(db, "payments", ws=T1) == []
    assert [c.body["channel"] for c in slack.calls_to("chat.postMessage")] == [PAY2]


# -- org settings --------------------------------------------------------------------------------------------
def test_the_org_settings_form_opens_and_saves_the_workspace_own_org(env):
    app, slack, db_path, _ = env
    action = {"action_id": ids.SET_NORTH_STAR, "type": "button", "value": "x"}
    _press(app, slack, T2, NEW2, "UADMIN2", action)
    view = _opened(slack)
    chosen = [
        o["value"]
        for o in next(b for b in view["blocks"] if b["block_id"] == "metrics")["element"]["initial_options"]
    ]
    assert sorted(chosen) == ["deployment-frequency", "throughput"]  # T2's
    state = initial_state(view)
    state["values"]["channel"]["v"]["selected_conversation"] = NEW2
    assert _submission(app, T2, "UADMIN2", view, state).body == ""
    db = _db(db_path)
    assert get_org(db, ws=T2)["channel"] == NEW2
    assert get_org(db, ws=T1)["channel"] == ORG1 and get_org(db, ws=T1)["north_star"] == [
        "lead-time-for-changes"
    ]
    assert settings_log(db, ORG_LOG, ws=T2)[-1]["who"] == "UADMIN2"
    assert all(r["who"] == "vsm.toml" for r in settings_log(db, ORG_LOG, ws=T1))
    # T2's own team channels are refused as its org channel, as in one workspace.
    state["values"]["channel"]["v"]["selected_conversation"] = PAY2
    refused = ack_json(_submission(app, T2, "UADMIN2", _opened_again(app, slack), state))
    assert refused["errors"]["channel"].startswith("That is the channel of the team payments")


def _opened_again(app, slack) -> dict:
    action = {"action_id": ids.SET_NORTH_STAR, "type": "button", "value": "x"}
    _press(app, slack, T2, NEW2, "UADMIN2", action)
    return _opened(slack)


# -- uninstall ------------------------------------------------------------------------------------------------
def test_app_uninstalled_stops_that_workspace_and_only_a_revoked_bot_token_does_too(env):
    app, _slack, _db_path, uninstalled = env
    assert event(app, {"type": "app_uninstalled"}, event_id="Ev-u2", team=T2).status == 200
    assert uninstalled == [T2]
    # A user's token revoked: vsm-bot uses none, nothing stops.
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": ["U7"], "bot": []}}
    assert event(app, revoked, event_id="Ev-r1", team=T1).status == 200
    assert uninstalled == [T2]
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": ["U7"], "bot": [BOT_USER]}}
    assert event(app, revoked, event_id="Ev-r2", team=T1).status == 200
    assert uninstalled == [T2, T1]


def test_a_redelivered_uninstall_event_is_handled_once(env):
    """Slack retries an event it thinks was missed (``X-Slack-Retry-Num``): the same event id again
    changes nothing; the other workspace's event with its own id is its own."""
    app, _slack, _db_path, uninstalled = env
    gone = {"type": "app_uninstalled"}
    assert event(app, gone, event_id="Ev-u1", team=T1).status == 200
    assert event(app, gone, event_id="Ev-u1", team=T1, retry=1).status == 200
    assert event(app, gone, event_id="Ev-u1", team=T1, retry=2).status == 200
    assert uninstalled == [T1]
    assert event(app, gone, event_id="Ev-u2", team=T2).status == 200
    assert uninstalled == [T1, T2]
