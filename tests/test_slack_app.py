"""The Slack app driven as Slack drives it: signed requests through Bolt, the Web API on a loopback mock."""

import json

import pytest
from fakes.slack import MockSlack
from slackkit import (
    ack_json,
    assert_valid_message,
    assert_valid_view,
    click,
    command,
    initial_state,
    interaction,
    slack_app,
)

from metrics.sample import sample_teams
from metrics.store import open_db
from metrics.teams import get_team, settings_log
from metrics.timeutil import iso


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    payments = next(t for t in sample_teams() if t.name == "payments")
    with MockSlack(members={payments.channel: ["U1", "U2"]}) as slack:
        app = slack_app(db_path, slack)
        yield app, slack, payments, db_path


def _block_action(app, slack, team, action: dict, user: str = "U1"):
    return click(app, [action], channel=team.channel, user=user, response_url=f"{slack.url}/response/2")


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
    _block_action(
        app,
        slack,
        team,
        {"action_id": "explain", "block_id": "metric_actions", "value": value, "type": "button"},
    )
    explain = slack.responses()[-1]
    assert "items behind the figure" in explain["text"]
    assert "<https://" in explain["blocks"][1]["text"]["text"]  # keys link to the source
    explain.pop("replace_original")
    assert_valid_message(explain)


def test_explain_shows_only_the_team_of_the_channel_it_is_clicked_in(env):
    """A forged Explain naming another team, clicked in payments' channel, shows none of its items."""
    app, slack, team, _ = env
    command(app, "cycle-time 90d", channel=team.channel, response_url=f"{slack.url}/response/1")
    spec = json.loads(slack.responses()[0]["blocks"][-1]["elements"][0]["value"])
    forged = json.dumps(spec | {"team": "mobile"})
    _block_action(app, slack, team, {"action_id": "explain", "value": forged, "type": "button"})
    reply = slack.responses()[-1]
    assert "items behind the figure" not in reply["text"]
    assert "belongs to another channel's team" in json.dumps(reply)
    assert "MOB-" not in json.dumps(reply)


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
    state = initial_state(view)
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
    assert announce.body["text"] == "<@U1> changed the team settings: metrics: added Work in progress"

    state["values"]["timezone"]["v"]["value"] = "Mars/Base"
    state["values"]["targets"]["v"]["value"] = "cycle-time = soon"
    resp = interaction(app, {**submit, "view": {**view, "id": "V1", "state": state}})
    errors = ack_json(resp)
    assert errors["response_action"] == "errors"
    assert set(errors["errors"]) == {"timezone", "targets"}


def test_app_home_lists_the_users_teams_once_per_event(env):
    from slackkit import event

    app, slack, team, _ = env
    resp = event(app, {"type": "app_home_opened", "user": "U1", "tab": "home"}, event_id="Ev42")
    assert resp.status == 200
    [published] = slack.calls_to("views.publish")
    view = published.body["view"]
    assert_valid_view(view)
    text = json.dumps(view)
    assert "payments" in text and "mobile" not in text  # U1 is only in the payments channel
    assert (
        next(b for b in view["blocks"] if b.get("block_id") == "team:1")["accessory"]["action_id"]
        == "adjust_metrics"
    )
    # Slack retries an event it thinks we missed: acknowledged, acted on once.
    assert (
        event(app, {"type": "app_home_opened", "user": "U1", "tab": "home"}, event_id="Ev42", retry=1).status
        == 200
    )
    assert len(slack.calls_to("views.publish")) == 1


def test_north_star_is_set_by_admins_only_and_logged(env):
    app, slack, team, db_path = env
    base = {"type": "block_actions", "trigger_id": "t", "response_url": f"{slack.url}/response/5"}
    action = [
        {
            "action_id": "set_north_star",
            "block_id": "north_star_actions",
            "value": "north_star",
            "type": "button",
        }
    ]
    interaction(app, {**base, "user": {"id": "U1"}, "actions": action})
    assert slack.calls_to("views.open") == []
    assert "Only workspace admins" in slack.responses()[-1]["text"]
    interaction(app, {**base, "user": {"id": "UADMIN1"}, "actions": action})
    [opened] = slack.calls_to("views.open")
    view = opened.body["view"]
    assert_valid_view(view)
    option = next(o for o in view["blocks"][0]["element"]["options"] if o["value"] == "throughput")
    state = {"values": {"metrics": {"v": {"type": "multi_static_select", "selected_options": [option]}}}}
    resp = interaction(
        app, {"type": "view_submission", "user": {"id": "UADMIN1"}, "view": {**view, "state": state}}
    )
    assert resp.status == 200 and not resp.body
    db = open_db(db_path, create=False)
    from metrics.teams import get_org

    assert get_org(db)["north_star"] == ["throughput"]
    assert settings_log(db, "*org*")[-1]["who"] == "UADMIN1"
    # A submission by anyone but the admin who opened the modal is refused, without a Web API call.
    calls = len(slack.calls)
    resp = interaction(
        app, {"type": "view_submission", "user": {"id": "U1"}, "view": {**view, "state": state}}
    )
    assert ack_json(resp)["response_action"] == "errors" and len(slack.calls) == calls
    # The form's opener is re-checked at submit: one who is no admin now (demoted since it opened,
    # here U1, whom users.info says is none) saves nothing.
    demoted = {**view, "state": state, "private_metadata": json.dumps({"by": "U1"})}
    logged, asked = len(settings_log(db, "*org*")), len(slack.calls_to("users.info"))
    resp = interaction(app, {"type": "view_submission", "user": {"id": "U1"}, "view": demoted})
    assert ack_json(resp)["response_action"] == "errors"
    assert len(slack.calls_to("users.info")) == asked + 1
    assert len(settings_log(db, "*org*")) == logged and get_org(db)["north_star"] == ["throughput"]


def test_hostile_tool_text_pings_nobody(env):
    """A PR titled `<!channel> & <@U1> fix` (in the sample) reaches Slack escaped."""
    app, slack, team, db_path = env
    db = open_db(db_path, create=False)
    merged = db.execute("select merged from pull_requests where title like '<!channel>%'").fetchone()[0]
    day = int(merged // 86400 * 86400)
    value = json.dumps({"metric": "pr-size", "team": team.name, "since": iso(day), "until": iso(day + 86400)})
    _block_action(
        app,
        slack,
        team,
        {"action_id": "explain", "block_id": "metric_actions", "value": value, "type": "button"},
    )
    text = json.dumps(slack.responses()[-1])
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt; fix" in text
    assert "<!channel>" not in text


def test_digest_preview_and_post(env):
    app, slack, team, _ = env
    command(app, "digest", channel=team.channel, response_url=f"{slack.url}/response/1")
    preview = slack.responses()[0]
    assert preview["blocks"][-1]["elements"][0]["action_id"] == "post_digest"
    preview.pop("replace_original")
    preview.pop("response_type")
    assert_valid_message(preview)
    _block_action(
        app,
        slack,
        team,
        {
            "action_id": "post_digest",
            "block_id": "preview_actions",
            "value": team.name,
            "type": "button",
        },
    )
    [posted] = slack.calls_to("chat.postMessage")
    assert posted.body["channel"] == team.channel
    assert "value-stream digest" in posted.body["text"]


def _uploaded(slack, team) -> bytes:
    [url] = slack.calls_to("files.getUploadURLExternal")
    [png] = slack.uploads
    [done] = slack.calls_to("files.completeUploadExternal")
    assert int(url.body["length"]) == len(png) and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert done.body["channel_id"] == team.channel
    return png


def test_metric_chart_is_uploaded_as_a_png_to_the_channel(env):
    app, slack, team, _ = env
    command(app, "cycle-time 90d chart", channel=team.channel, response_url=f"{slack.url}/response/1")
    [reply] = slack.responses()
    assert reply["text"].endswith("(chart posted to the channel)")
    assert len(_uploaded(slack, team)) > 5000


def test_the_digest_chart_menu_uploads_the_chosen_metric(env):
    app, slack, team, _ = env
    command(app, "digest", channel=team.channel, response_url=f"{slack.url}/response/1")
    actions = next(b for b in slack.responses()[0]["blocks"] if b.get("block_id") == "digest_actions")
    select = next(e for e in actions["elements"] if e["action_id"] == "chart")
    option = select["options"][0]
    metric, since, until = option["value"].split("|")
    assert since < until
    _block_action(
        app,
        slack,
        team,
        {
            "action_id": "chart",
            "block_id": "digest_actions",
            "type": "static_select",
            "selected_option": option,
        },
    )
    _uploaded(slack, team)


def test_snoozing_nudges_is_for_members_logged_and_announced(env):
    app, slack, team, db_path = env
    option = {"text": {"type": "plain_text", "text": "Snooze nudges for a week"}, "value": "7"}
    action = {
        "action_id": "snooze_nudges",
        "block_id": "nudge_actions",
        "type": "overflow",
        "selected_option": option,
    }
    _block_action(app, slack, team, action, user="UOUT")
    assert "Only members" in slack.responses()[-1]["text"]
    assert get_team(open_db(db_path, create=False), team.name).snooze_until == ""
    _block_action(app, slack, team, action)
    db = open_db(db_path, create=False)
    assert get_team(db, team.name).snooze_until == "2026-12-02T15:00:00Z"  # NOW + 7 days
    last = settings_log(db, team.name)[-1]
    assert (last["who"], last["what"]) == ("U1", "snoozed nudges")
    [announce] = slack.calls_to("chat.postMessage")
    assert announce.body["text"] == "<@U1> snoozed nudges until Wed 02 Dec 15:00 GMT."


def test_a_chart_the_bot_cannot_post_gets_a_hint_not_an_error(env):
    app, slack, team, _ = env
    slack.errors["files.completeUploadExternal"] = "not_in_channel"
    command(app, "throughput chart", channel=team.channel, response_url=f"{slack.url}/response/1")
    [reply] = slack.responses()
    assert reply["text"].endswith(
        "(the chart could not be posted: not_in_channel (invite the bot to the channel))"
    )
    assert "Throughput" in reply["text"]


def _open_settings(app, slack, channel: str, user: str) -> dict:
    """``/vsm settings`` in ``channel``: the modal Slack was asked to open."""
    before = len(slack.calls_to("views.open"))
    command(app, "settings", channel=channel, user=user, response_url=f"{slack.url}/response/9")
    opened = slack.calls_to("views.open")
    assert len(opened) == before + 1
    return opened[-1].body["view"]


def _submit(app, view: dict, state: dict, user: str):
    return interaction(
        app, {"type": "view_submission", "user": {"id": user}, "view": {**view, "id": "V1", "state": state}}
    )


def _team_row(db_path, name: str) -> dict | None:
    return next(open_db(db_path, create=False).query("select * from teams where name = ?", [name]), None)


def test_setting_up_a_team_cannot_take_over_another_team(env):
    """Issue 10.1: "Set up a team here" in a new channel, named like an existing team, is refused on the
    name field; the existing team's row and change log stay exactly as they were."""
    app, slack, team, db_path = env
    slack.members["CNEWCHAN1"] = ["U3"]
    row = _team_row(db_path, team.name)
    log = settings_log(open_db(db_path, create=False), team.name)
    # `/vsm settings` in a channel no team uses offers "Set up a team here"; the button opens the form.
    button = ack_json(command(app, "settings", channel="CNEWCHAN1", user="U3"))["blocks"][0]["accessory"]
    assert button["action_id"] == "setup_team"
    setup = {**button, "block_id": "no_team", "type": "button"}
    click(app, [setup], channel="CNEWCHAN1", user="U3", response_url=f"{slack.url}/response/2")
    [opened] = slack.calls_to("views.open")
    view = opened.body["view"]
    assert_valid_view(view)
    state = initial_state(view)
    for name in (team.name, team.name.upper()):  # any case of a taken name
        state["values"]["name"]["v"]["value"] = name
        body = ack_json(_submit(app, view, state, "U3"))
        assert body["response_action"] == "errors" and set(body["errors"]) == {"name"}
        assert "another team's name" in body["errors"]["name"]
    assert _team_row(db_path, team.name) == row
    assert settings_log(open_db(db_path, create=False), team.name) == log
    assert slack.calls_to("chat.postMessage") == []

    # A free name sets the team up in that channel, logged as created.
    state["values"]["name"]["v"]["value"] = "checkout"
    assert _submit(app, view, state, "U3").body == ""
    db = open_db(db_path, create=False)
    assert get_team(db, "checkout").channel == "CNEWCHAN1"
    said = "set up the team checkout: 0 metrics, digest Mondays 09:00 UTC, no data scope yet"
    assert [r["what"] for r in settings_log(db, "checkout")] == [said]
    [announce] = slack.calls_to("chat.postMessage")
    assert announce.body["text"] == f"<@U3> {said}"
    # The same set-up form again, now that the channel has a team: refused, nothing replaced.
    state["values"]["name"]["v"]["value"] = "checkout2"
    body = ack_json(_submit(app, view, state, "U3"))
    assert body["response_action"] == "errors" and "team changed" in body["errors"]["name"]
    assert get_team(db, "checkout").channel == "CNEWCHAN1"
    assert _team_row(db_path, "checkout2") is None


def test_editing_a_team_keeps_its_name_and_channel(env):
    app, slack, team, db_path = env
    view = _open_settings(app, slack, team.channel, "U1")
    state = initial_state(view)
    state["values"]["name"]["v"]["value"] = "mobile"  # another team's name
    state["values"]["timezone"]["v"]["value"] = "Europe/Paris"
    assert _submit(app, view, state, "U1").body == ""
    db = open_db(db_path, create=False)
    assert get_team(db, team.name).timezone == "Europe/Paris"
    assert get_team(db, team.name).channel == team.channel
    mobile = next(t for t in sample_teams() if t.name == "mobile")
    assert (
        get_team(db, "mobile").channel == mobile.channel
        and get_team(db, "mobile").timezone == mobile.timezone
    )


@pytest.mark.parametrize(
    "targets,expected",
    [
        ("cycle-time = inf", "not inf"),
        ("throughput = nan", "not nan"),
        ("throughput = -3", "not -3"),
        ("change-failure-rate = 250", "percentage from 0 to 100"),
        ("cycle-time = 1e999", "not inf"),
    ],
)
def test_non_finite_or_out_of_range_targets_get_a_field_error(env, targets, expected):
    app, slack, team, db_path = env
    log = settings_log(open_db(db_path, create=False), team.name)
    view = _open_settings(app, slack, team.channel, "U1")
    state = initial_state(view)
    state["values"]["targets"]["v"]["value"] = targets
    body = ack_json(_submit(app, view, state, "U1"))
    assert body["response_action"] == "errors" and set(body["errors"]) == {"targets"}
    assert expected in body["errors"]["targets"] and body["errors"]["targets"].startswith("Line 1: ")
    assert settings_log(open_db(db_path, create=False), team.name) == log


def test_a_forged_submission_with_an_unknown_metric_is_refused(env):
    app, slack, team, db_path = env
    before = get_team(open_db(db_path, create=False), team.name)
    view = _open_settings(app, slack, team.channel, "U1")
    state = initial_state(view)
    forged = {"text": {"type": "plain_text", "text": "Lines of code"}, "value": "lines-of-code"}
    state["values"]["metrics"]["v"]["selected_options"].append(forged)
    state["values"]["day"]["v"]["selected_option"] = {
        "text": {"type": "plain_text", "text": "x"},
        "value": "someday",
    }
    state["values"]["time"]["v"]["selected_time"] = "9am"
    body = ack_json(_submit(app, view, state, "U1"))
    assert body["response_action"] == "errors"
    assert body["errors"] == {
        "metrics": "Unknown metric “lines-of-code”.",
        "day": "A day of the week.",
        "time": "A time such as 09:00.",
    }
    assert get_team(open_db(db_path, create=False), team.name) == before


def test_a_forged_north_star_submission_with_an_unknown_metric_is_refused(env):
    app, slack, team, db_path = env
    from metrics.teams import get_org

    before = get_org(open_db(db_path, create=False))
    view = {"type": "modal", "callback_id": "north_star", "private_metadata": json.dumps({"by": "UADMIN1"})}
    options = [
        {"text": {"type": "plain_text", "text": m}, "value": m} for m in ("throughput", "lines-of-code")
    ]
    state = {"values": {"metrics": {"v": {"type": "multi_static_select", "selected_options": options}}}}
    body = ack_json(_submit(app, view, state, "UADMIN1"))
    assert body == {"response_action": "errors", "errors": {"metrics": "Unknown metric “lines-of-code”."}}
    assert get_org(open_db(db_path, create=False)) == before
