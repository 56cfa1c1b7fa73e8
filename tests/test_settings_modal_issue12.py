"""Issue 12: the settings modal driven as Slack drives it (signed requests through Bolt, the Web API on
a loopback mock): targets in the team's units and checked, changes that confirm in words, scope checked
against what was synced, a new team in its creator's time zone, statuses offered once a scope is set."""

from __future__ import annotations

import json

import pytest
from fakes.slack import MockSlack
from slackkit import (
    ack_json,
    assert_valid_view,
    click,
    command,
    initial_state,
    interaction,
    slack_app,
)

from metrics.catalogue import CATALOGUE
from metrics.config import load_config
from metrics.errors import VsmError
from metrics.sample import sample_teams
from metrics.store import open_db
from metrics.targets import target_status
from metrics.teams import get_team, settings_log


class ZoneSlack(MockSlack):
    """The mock Web API, with a time zone in each user's profile (``users.info`` → ``user.tz``)."""

    def __init__(self, zones: dict[str, str], **kw) -> None:
        super().__init__(**kw)
        self.zones = zones

    def _canned(self, method: str, body: dict) -> dict:
        reply = super()._canned(method, body)
        if method == "users.info" and body.get("user") in self.zones:
            reply["user"]["tz"] = self.zones[body["user"]]
        return reply


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    payments = next(t for t in sample_teams() if t.name == "payments")
    members = {payments.channel: ["U1", "U2"], "CNEWCHAN1": ["U3", "U4"]}
    with ZoneSlack({"U3": "America/New_York"}, members=members) as slack:
        yield slack_app(db_path, slack), slack, payments, db_path


def _db(db_path):
    return open_db(db_path, create=False)


def _open(app, slack, channel: str, user: str) -> dict:
    before = len(slack.calls_to("views.open"))
    command(app, "settings", channel=channel, user=user, response_url=f"{slack.url}/response/9")
    opened = slack.calls_to("views.open")
    assert len(opened) == before + 1
    view = opened[-1].body["view"]
    assert_valid_view(view)
    return view


def _submit(app, view: dict, state: dict, user: str):
    payload = {"type": "view_submission", "user": {"id": user}, "view": {**view, "id": "V1", "state": state}}
    return interaction(app, payload)


def _block(view: dict, block_id: str) -> dict:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


def _set(state: dict, block_id: str, value: str) -> None:
    state["values"][block_id]["v"]["value"] = value


def _option(value: str) -> dict:
    return {"text": {"type": "plain_text", "text": value}, "value": value}


def _announcements(slack) -> list[str]:
    return [c.body["text"] for c in slack.calls_to("chat.postMessage")]


# -- §6: a save with nothing changed says nothing ----------------------------------------------------


def test_saving_an_unchanged_form_posts_and_logs_nothing(env):
    """The multi-select sends the catalogue's order; the team's own order is kept, so an untouched
    form is no change at all (it said "metrics: reordered" before)."""
    app, slack, team, db_path = env
    before = get_team(_db(db_path), team.name)
    log = settings_log(_db(db_path), team.name)
    view = _open(app, slack, team.channel, "U1")
    state = initial_state(view)
    chosen = state["values"]["metrics"]["v"]["selected_options"]
    catalogue_order = list(CATALOGUE)
    chosen.sort(key=lambda o: catalogue_order.index(o["value"]))  # as Slack sends them
    assert [o["value"] for o in chosen] != team.metrics
    assert _submit(app, view, state, "U1").body == ""
    assert _announcements(slack) == []
    assert settings_log(_db(db_path), team.name) == log
    assert get_team(_db(db_path), team.name) == before


def test_a_form_that_sends_the_teams_lists_in_its_own_order_is_no_change(env):
    """Checkboxes, status selects and scope come back in the form's order; a team whose nudges,
    statuses or scope were written in another order (vsm.toml) has changed nothing by saving."""
    app, slack, team, db_path = env
    db = _db(db_path)
    current = get_team(db, team.name)
    current.nudges = list(reversed(current.nudges))
    done = next(s for s in current.workflow if s["stage"] == "done")
    done["statuses"] = (
        ["Resolved", *done["statuses"]] if done["statuses"][0] != "Resolved" else done["statuses"]
    )
    done["statuses"] = list(reversed(done["statuses"]))
    current.repos = list(reversed(current.repos + ["acme/ledger"]))
    # Written as vsm.toml or an older build left it: save_team would see no change in an order alone.
    db.execute("update teams set settings = ? where name = ?", [current.to_json(), team.name])
    log = settings_log(_db(db_path), team.name)
    view = _open(app, slack, team.channel, "U1")
    state = initial_state(view)
    assert _submit(app, view, state, "U1").body == ""
    assert _announcements(slack) == []
    assert settings_log(_db(db_path), team.name) == log


# -- §5: targets as entered, checked ----------------------------------------------------------------


def test_targets_come_back_as_written_and_are_judged_in_the_stated_direction(env):
    app, slack, team, db_path = env
    view = _open(app, slack, team.channel, "U1")
    # The sample's targets (plain hours) are written back in the team's units, not as hours.
    shown = _block(view, "targets")["element"]["initial_value"].splitlines()
    assert "cycle-time = 12.5d" in shown and "pr-pickup-time = 40h" in shown
    assert "sprint-completion = 80%" in shown
    state = initial_state(view)
    _set(state, "targets", "cycle-time = 10d\nwip <= 8\nchange-failure-rate = 15%\nthroughput >= 9")
    assert _submit(app, view, state, "U1").body == ""

    again = _open(app, slack, team.channel, "U1")
    assert sorted(_block(again, "targets")["element"]["initial_value"].splitlines()) == [
        "change-failure-rate = 15%",
        "cycle-time = 10d",
        "throughput ≥ 9",
        "wip ≤ 8",
    ]
    stored = get_team(_db(db_path), team.name).targets
    assert stored["cycle-time"] == 240 and stored["change-failure-rate"] == 15
    wip = CATALOGUE["wip"]
    assert target_status(wip, 9.0, stored["wip"]) == "missed"
    assert target_status(wip, 7.5, stored["wip"]) == "met"
    [said] = _announcements(slack)
    assert "target cycle time: ≤ 12.5 d → ≤ 10.0 d" in said
    assert "target work in progress: none → ≤ 8" in said
    assert "target sprint completion (say/do): ≥ 80.0% → none" in said
    assert "throughput" not in said  # 9 a week before and after: no change
    # The figure's reply shows the stated direction too.
    command(app, "wip", channel=team.channel, user="U1", response_url=f"{slack.url}/response/5")
    reply = json.dumps(slack.responses()[-1], ensure_ascii=False)
    assert "(≤ 8" in reply


def test_every_bad_target_line_is_reported_at_once_and_nothing_is_saved(env):
    app, slack, team, db_path = env
    before = get_team(_db(db_path), team.name)
    view = _open(app, slack, team.channel, "U1")
    state = initial_state(view)
    lines = [
        "cycle-time >= 10d",  # against the metric's direction
        "wip = 8",  # no better direction, none stated
        "change-failure-rate = 120",  # a rate above 100
        "throughput = 0",  # a count must be above 0
        "lead time = 2w",  # fine: a metric's name works too
        "flow-distribution = 5",  # not one number
        "cycletme = 3d",  # a typo
        "pr-size = 5d",  # a duration on a count of lines
    ]
    _set(state, "targets", "\n".join(lines))
    body = ack_json(_submit(app, view, state, "U1"))
    assert body["response_action"] == "errors" and set(body["errors"]) == {"targets"}
    error = body["errors"]["targets"]
    assert len(error) <= 1000
    for n in (1, 2, 3, 4, 6, 7, 8):
        assert f"Line {n}: " in error
    assert "Line 5" not in error
    assert "so its target is “≤”, not “≥”" in error
    assert "wip ≤ 8 (at most) or wip ≥ 8 (at least)" in error
    assert "percentage from 0 to 100, not 120" in error
    assert "did you mean cycle-time?" in error
    assert "not a duration" in error
    assert get_team(_db(db_path), team.name) == before
    assert _announcements(slack) == []


def test_the_config_file_takes_a_stated_direction_and_refuses_a_wrong_one(tmp_path):
    base = """
[[team]]
name = "payments"
channel = "C0123456789"
targets = { %s }
"""

    def load(targets: str):
        path = tmp_path / "vsm.toml"
        path.write_text(base % targets)
        return load_config(str(path)).teams[0]

    team = load('"cycle-time" = "5d", wip = "<= 8", "change-failure-rate" = 15')
    assert team.targets == {"cycle-time": 120.0, "wip": 8.0, "change-failure-rate": 15.0}
    assert team.targets["wip"].better == "lower"
    assert target_status(CATALOGUE["wip"], 9, team.targets["wip"]) == "missed"
    # `wip = 8` was valid before targets had directions: an existing vsm.toml still loads, the
    # target kept but never judged (vsm says how to state its direction).
    old = load("wip = 8")
    assert old.targets["wip"] == 8.0 and old.targets["wip"].better == ""
    assert target_status(CATALOGUE["wip"], 9, old.targets["wip"]) is None
    for bad, said in (
        ('"cycle-time" = ">= 5d"', "so its target is “≤”, not “≥”"),
        ('"flow-efficiency" = 120', "percentage from 0 to 100"),
    ):
        with pytest.raises(VsmError, match=said):
            load(bad)


# -- §6: changes in words ---------------------------------------------------------------------------


def test_a_change_is_announced_old_to_new_in_words_and_logged_so(env):
    app, slack, team, db_path = env
    view = _open(app, slack, team.channel, "U1")
    state = initial_state(view)
    state["values"]["day"]["v"]["selected_option"] = _option("wed")
    state["values"]["time"]["v"]["selected_time"] = "10:15"
    _set(state, "timezone", "America/New_York")
    metrics = state["values"]["metrics"]["v"]["selected_options"]
    metrics[:] = [o for o in metrics if o["value"] != "throughput"] + [_option("wip")]
    review = state["values"]["stage:review"]["v"]["selected_options"]
    progress = state["values"]["stage:in_progress"]["v"]["selected_options"]
    progress.extend(review)
    review.clear()
    assert _submit(app, view, state, "U1").body == ""
    [said] = _announcements(slack)
    assert said == (
        "<@U1> changed the team settings: metrics: added Work in progress, removed Throughput; "
        "digest: Mon 09:30 Europe/London → Wed 10:15 America/New_York; "
        "workflow: In Review moved from Review to In progress"
    )
    assert settings_log(_db(db_path), team.name)[-1]["what"] == said.split(": ", 1)[1]
    assert get_team(_db(db_path), team.name).metrics[-1] == "wip"


def _setup_form(app, slack, user: str = "U3") -> dict:
    button = ack_json(command(app, "settings", channel="CNEWCHAN1", user=user))["blocks"][0]["accessory"]
    click(
        app, [{**button, "type": "button"}], channel="CNEWCHAN1", user=user, response_url=f"{slack.url}/r/1"
    )
    view = slack.calls_to("views.open")[-1].body["view"]
    assert_valid_view(view)
    return view


def test_a_new_team_starts_in_its_creators_zone_and_is_announced_in_one_sentence(env):
    app, slack, _, db_path = env
    view = _setup_form(app, slack)
    assert _block(view, "timezone")["element"]["initial_value"] == "America/New_York"
    state = initial_state(view)
    _set(state, "name", "checkout")
    _set(state, "jira_projects", "PAY")
    _set(state, "repos", "acme/payments")
    chosen = ["cycle-time", "throughput", "deployment-frequency"]
    state["values"]["metrics"]["v"]["selected_options"] = [_option(m) for m in chosen]
    assert _submit(app, view, state, "U3").body == ""
    [said] = _announcements(slack)
    assert said == (
        "<@U3> set up the team checkout: 3 metrics, digest Mondays 09:00 America/New_York, "
        "scope PAY, acme/payments"
    )
    team = get_team(_db(db_path), "checkout")
    assert team.timezone == "America/New_York" and team.metrics == chosen


def test_a_creator_whose_zone_slack_cannot_give_starts_in_utc(env):
    app, slack, *_ = env
    slack.errors["users.info"] = "user_not_found"
    view = _setup_form(app, slack, user="U4")
    assert _block(view, "timezone")["element"]["initial_value"] == "UTC"


# -- §7: scope checked, GitLab field ------------------------------------------------------------------


def test_scope_is_checked_against_what_was_synced(env):
    app, slack, team, db_path = env
    before = get_team(_db(db_path), team.name)
    view = _open(app, slack, team.channel, "U1")
    gitlab = _block(view, "gitlab_projects")
    assert gitlab["label"]["text"] == "GitLab projects"
    assert gitlab["hint"]["text"] == "Nothing synced from GitLab yet, so these cannot be checked."
    # How many names were synced, never which: anyone in any channel can open this form.
    assert _block(view, "jira_projects")["hint"]["text"].endswith(
        "synced; what you enter is checked against them."
    )
    hints = " ".join(b.get("hint", {}).get("text", "") for b in view["blocks"])
    assert "PAY" not in hints and "acme/payments" not in hints
    state = initial_state(view)
    _set(state, "jira_projects", "PAY, payy")
    _set(state, "repos", "acme/payments, acme/ledger, acme/paymentz")
    _set(state, "services", "P1PAY7Q, <!channel>")
    body = ack_json(_submit(app, view, state, "U1"))
    assert body["response_action"] == "errors"
    assert body["errors"] == {
        "jira_projects": "Not found in the synced data: “payy” (did you mean PAY?).",
        "repos": "Not found in the synced data: “acme/paymentz” (did you mean acme/payments?).",
        "services": "Not found in the synced data: “<!channel>”.",
    }
    assert get_team(_db(db_path), team.name) == before

    # Nothing synced from GitLab: its projects cannot be checked, so they are taken as typed.
    state = initial_state(view)
    _set(state, "gitlab_projects", "acme/mobile, acme/mobile")
    assert _submit(app, view, state, "U1").body == ""
    assert get_team(_db(db_path), team.name).gitlab_projects == ["acme/mobile"]
    [said] = _announcements(slack)
    assert said == "<@U1> changed the team settings: GitLab projects: added acme/mobile"


# -- §7: statuses offered as soon as the scope is set -------------------------------------------------


def _enter_projects(app, view: dict, projects: str, user: str, state: dict | None = None):
    state = state or initial_state(view)
    state["values"]["jira_projects"] = {"scope_projects": {"type": "plain_text_input", "value": projects}}
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "container": {"type": "view", "view_id": "V77"},
        "trigger_id": "t",
        "view": {**view, "id": "V77", "hash": "1700000000.abc", "state": state},
        "actions": [
            {
                "type": "plain_text_input",
                "block_id": "jira_projects",
                "action_id": "scope_projects",
                "value": projects,
            }
        ],
    }
    return interaction(app, payload)


def _options(view: dict, block_id: str) -> list[str]:
    return [o["value"] for o in _block(view, block_id)["element"]["options"]]


def test_entering_jira_projects_offers_their_statuses_in_the_open_form(env):
    app, slack, _, _ = env
    view = _setup_form(app, slack)
    jira = _block(view, "jira_projects")
    assert jira["dispatch_action"] is True
    assert jira["element"]["dispatch_action_config"] == {"trigger_actions_on": ["on_enter_pressed"]}
    assert "Ready for Dev" not in _options(view, "stage:in_progress")
    state = initial_state(view)
    _set(state, "name", "mobile-two")
    _set(state, "targets", "cycle-time = 4d\nwip = 8")  # typed, not yet checked
    state["values"]["stage:done"]["v"]["selected_options"] = [_option("Done")]
    slack.views["V77"] = "1700000000.abc"  # the form as Slack holds it open
    resp = _enter_projects(app, view, "MOB", "U3", state)
    assert resp.status == 200
    [update] = slack.calls_to("views.update")
    assert update.body["view_id"] == "V77" and update.body["hash"] == "1700000000.abc"
    redrawn = update.body["view"]
    assert_valid_view(redrawn)
    for stage in ("stage:committed", "stage:in_progress", "stage:done"):
        assert {"Ready for Dev", "In Development", "Code Review", "Released"} <= set(_options(redrawn, stage))
    # Same inputs, same ids: Slack keeps what was typed; the form's owner and purpose are unchanged.
    ids = [
        (b.get("block_id"), b.get("element", {}).get("action_id"))
        for b in view["blocks"]
        if b["type"] == "input"
    ]
    assert ids == [
        (b.get("block_id"), b.get("element", {}).get("action_id"))
        for b in redrawn["blocks"]
        if b["type"] == "input"
    ]
    assert redrawn["private_metadata"] == view["private_metadata"]
    assert _block(redrawn, "targets")["element"]["initial_value"] == "cycle-time = 4d\nwip = 8"
    assert _block(redrawn, "jira_projects")["element"]["initial_value"] == "MOB"
    assert _block(redrawn, "stage:done")["element"]["initial_options"] == [_option("Done")]


def test_a_redraw_that_lost_a_race_is_dropped_by_slack_and_answered_by_nothing(env, caplog):
    """Two quick Enters: the second redraw carries the hash the first replaced, and Slack refuses it
    (``hash_conflict``); the app logs it and neither raises nor writes anything."""
    app, slack, _, db_path = env
    view = _setup_form(app, slack)
    slack.views["V77"] = "1700000000.abc"
    assert _enter_projects(app, view, "MOB", "U3").status == 200  # redrawn: the form has a new hash
    caplog.set_level("INFO")
    assert _enter_projects(app, view, "MOB", "U3").status == 200  # the old hash again
    assert len(slack.calls_to("views.update")) == 2
    assert any("not redrawn" in r.getMessage() and "hash_conflict" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if " failed: " in r.getMessage()]


def test_only_the_forms_opener_still_in_the_channel_can_redraw_it(env):
    app, slack, _, db_path = env
    view = _setup_form(app, slack)
    _enter_projects(app, view, "MOB", "U4")  # a member, but not the form's opener
    _enter_projects(app, {**view, "callback_id": "north_star"}, "MOB", "U3")  # not this form
    assert slack.calls_to("views.update") == []
    slack.members["CNEWCHAN1"] = ["U4"]  # the opener left the channel
    fresh = slack_app(db_path, slack)  # a new process: no membership remembered
    _enter_projects(fresh, view, "MOB", "U3")
    assert slack.calls_to("views.update") == []
    slack.members["CNEWCHAN1"] = ["U3", "U4"]
    _enter_projects(slack_app(db_path, slack), view, "MOB", "U3")
    assert len(slack.calls_to("views.update")) == 1
