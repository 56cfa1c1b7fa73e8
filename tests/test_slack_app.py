"""The Slack app driven as Slack drives it: signed requests through Bolt, the Web API on a loopback mock."""

import json

import pytest
from fakes.slack import MockSlack
from slackkit import NOW, SECRET, ack_json, assert_valid_message, assert_valid_view, command, interaction

from bot.app import create_app, web_client
from bot.store import Store
from metrics.sample import SAMPLE_ORG, build_sample, sample_teams
from metrics.store import open_db
from metrics.teams import get_team, seed_from_config, settings_log


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("slack") / "sample.db"
    db = open_db(path)
    build_sample(db, end=NOW.date())
    seed_from_config(db, sample_teams(), SAMPLE_ORG)
    db.conn.close()
    return path


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    payments = next(t for t in sample_teams() if t.name == "payments")
    with MockSlack(members={payments.channel: ["U1", "U2"]}) as slack:
        app = create_app(
            Store(db_path),
            web_client("xoxb-test", slack.base_url),
            signing_secret=SECRET,
            process_before_response=True,
            clock=lambda: NOW,
        )
        yield app, slack, payments, db_path


def test_help_and_unknown_input_get_an_ephemeral_help(env):
    app, slack, team, _ = env
    resp = command(app, "", channel=team.channel)
    assert resp.status == 200
    body = ack_json(resp)
    assert body["response_type"] == "ephemeral" and "/vsm cycle-time 90d" in json.dumps(body)
    assert_valid_message(body)
    body = ack_json(command(app, "frobnicate <!channel>", channel=team.channel))
    assert "I don't know `frobnicate`" in body["blocks"][0]["text"]["text"]
    body = ack_json(command(app, "cycle-time 30x", channel=team.channel))
    assert "understood `cycle-time`, but not the period `30x`" in body["blocks"][0]["text"]["text"]


def test_bad_signature_and_stale_timestamp_are_refused(env):
    app, *_ = env
    assert command(app, "help", secret="wrong").status == 401
    assert command(app, "help", ts=1_000_000_000).status == 401


def test_metric_command_acks_then_answers_through_the_response_url(env):
    app, slack, team, _ = env
    resp = command(app, "cycle-time 90d", channel=team.channel, response_url=f"{slack.url}/response/1")
    assert ack_json(resp)["text"] == "Working on it…"
    [reply] = slack.responses()
    assert reply["replace_original"] is True
    assert reply["text"].startswith("Cycle time for payments")
    assert "p50" in reply["blocks"][0]["text"]["text"]
    reply.pop("replace_original")
    assert_valid_message(reply)
    button = reply["blocks"][-1]["elements"][0]
    assert button["action_id"] == "explain"
    assert json.loads(button["value"])["metric"] == "cycle-time"


def test_explain_lists_the_items_behind_the_figure(env):
    app, slack, team, _ = env
    command(app, "cycle-time 90d", channel=team.channel, response_url=f"{slack.url}/response/1")
    value = slack.responses()[0]["blocks"][-1]["elements"][0]["value"]
    interaction(
        app,
        {
            "type": "block_actions",
            "user": {"id": "U1"},
            "channel": {"id": team.channel},
            "response_url": f"{slack.url}/response/2",
            "trigger_id": "t",
            "actions": [
                {"action_id": "explain", "block_id": "metric_actions", "value": value, "type": "button"}
            ],
        },
    )
    explain = slack.responses()[-1]
    assert "items behind the figure" in explain["text"]
    assert "<https://" in explain["blocks"][1]["text"]["text"]  # keys link to the source
    explain.pop("replace_original")
    assert_valid_message(explain)


def test_channel_without_a_team_is_offered_a_setup(env):
    app, *_ = env
    body = ack_json(command(app, "cycle-time", channel="CNOTEAM"))
    assert body["blocks"][0]["accessory"]["action_id"] == "setup_team"


def test_settings_modal_opens_for_members_only_and_saves_with_a_log(env):
    app, slack, team, db_path = env
    command(app, "settings", channel=team.channel, user="UOUT", response_url=f"{slack.url}/response/9")
    assert slack.calls_to("views.open") == []
    assert "Only members" in slack.responses()[-1]["text"]

    command(app, "settings", channel=team.channel, user="U1", response_url=f"{slack.url}/response/9")
    [opened] = slack.calls_to("views.open")
    view = opened.body["view"]
    assert_valid_view(view)
    state = {"values": {}}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        el = block["element"]
        if el["type"] == "multi_static_select":
            v = {"type": el["type"], "selected_options": el.get("initial_options", [])}
        elif el["type"] == "static_select":
            v = {"type": el["type"], "selected_option": el.get("initial_option")}
        elif el["type"] == "timepicker":
            v = {"type": el["type"], "selected_time": el.get("initial_time")}
        else:
            v = {"type": el["type"], "value": el.get("initial_value")}
        state["values"][block["block_id"]] = {"v": v}
    metrics = state["values"]["metrics"]["v"]["selected_options"]
    metrics.append({"text": {"type": "plain_text", "text": "Work in progress"}, "value": "wip"})
    submit = {
        "type": "view_submission",
        "user": {"id": "U1"},
        "view": {**view, "id": "V1", "state": state},
    }
    resp = interaction(app, submit)
    assert resp.status == 200 and not resp.body
    db = open_db(db_path, create=False)
    assert "wip" in get_team(db, team.name).metrics
    last = settings_log(db, team.name)[-1]
    assert last["who"] == "U1" and "metrics" in last["what"]
    [announce] = slack.calls_to("chat.postMessage")
    assert announce.body["text"] == "<@U1> changed the team settings: metrics: +wip"

    state["values"]["timezone"]["v"]["value"] = "Mars/Base"
    state["values"]["targets"]["v"]["value"] = "cycle-time = soon"
    resp = interaction(app, {**submit, "view": {**view, "id": "V1", "state": state}})
    errors = ack_json(resp)
    assert errors["response_action"] == "errors"
    assert set(errors["errors"]) == {"timezone", "targets"}
