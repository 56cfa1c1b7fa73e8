"""Issue 13 §1: the organisation settings form (the North Star form) driven as Slack drives it: signed
requests through Bolt, the Web API on a loopback mock. Admins only, at open and at submit; every field
checked on its own block with nothing saved; each change logged in words, the org digest re-planned,
and announced old → new in the org channel; an unchanged save silent."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlencode

import pytest
from fakes.slack import BOT_USER, MockSlack
from slackkit import ack_json, assert_valid_view, initial_state, interaction, signed, slack_app

from bot.authz import ADMIN_UNKNOWN, NOT_ADMIN
from bot.listeners.views.north_star import SELF_REMOVAL
from metrics.sample import sample_teams
from metrics.store import open_db
from metrics.targets import Target
from metrics.teams import ORG_LOG, get_org, set_org, settings_log

LEADERS, BOARD = "C0LEADERS01", "C0BOARDROOM"


class AdminSlack(MockSlack):
    """The mock Web API, where ``users.info`` says a user is an admin while they are in ``admins``
    (a test demotes one by removing them)."""

    def __init__(self, admins: set[str], **kw) -> None:
        super().__init__(**kw)
        self.admins = admins

    def _canned(self, method: str, body: dict) -> dict:
        reply = super()._canned(method, body)
        if method == "users.info":
            reply["user"]["is_admin"] = body.get("user") in self.admins
        return reply


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    db = open_db(db_path, create=False)
    db.execute("delete from org")  # the sample's org settings: these tests set their own
    set_org(db, "north_star", ["lead-time-for-changes", "deployment-frequency"], who="vsm.toml")
    set_org(db, "channel", LEADERS, who="vsm.toml")
    saved: list[int] = []
    # The bot is in both org channels (a new org channel must be one it can post in).
    with AdminSlack({"UANA1", "UBEN1"}, members={LEADERS: [BOT_USER], BOARD: [BOT_USER]}) as slack:
        app = slack_app(db_path, slack, on_org_saved=lambda ws: saved.append(1), admins=["UCFG1"])
        yield app, slack, db_path, saved


def _db(db_path):
    return open_db(db_path, create=False)


def _open(app, slack, user: str = "UANA1") -> dict:
    before = len(slack.calls_to("views.open"))
    action = {"action_id": "set_north_star", "block_id": "north_star_actions", "value": "x", "type": "button"}
    interaction(
        app,
        {
            "type": "block_actions",
            "user": {"id": user},
            "trigger_id": "t",
            "response_url": f"{slack.url}/response/5",
            "actions": [action],
        },
    )
    opened = slack.calls_to("views.open")
    assert len(opened) == before + 1
    view = opened[-1].body["view"]
    assert_valid_view(view)
    return view


def _state(view: dict) -> dict:
    """What Slack sends for the untouched form."""
    return initial_state(view)


def _submit(app, view: dict, state: dict, user: str = "UANA1"):
    payload = {"type": "view_submission", "user": {"id": user}, "view": {**view, "id": "V1", "state": state}}
    return interaction(app, payload)


def _set(state: dict, block: str, value: str) -> None:
    state["values"][block]["v"]["value"] = value


def _option(value: str) -> dict:
    return {"text": {"type": "plain_text", "text": value}, "value": value}


def _posts(slack) -> list[tuple[str, str]]:
    return [(c.body["channel"], c.body["text"]) for c in slack.calls_to("chat.postMessage")]


def _block(view: dict, block_id: str) -> dict:
    return next(b for b in view["blocks"] if b["block_id"] == block_id)


def test_an_admin_opens_the_form_with_every_setting_in_effect(env):
    app, slack, db_path, _ = env
    db = _db(db_path)
    set_org(db, "targets", {"lead-time-for-changes": Target(48.0, "lower", "2d")}, who="vsm.toml")
    set_org(db, "timezone", "Europe/London", who="vsm.toml")
    set_org(db, "digest", {"day": "wed", "time": "10:15"}, who="vsm.toml")
    view = _open(app, slack)
    assert view["title"]["text"] == "Organisation settings"
    chosen = [o["value"] for o in _block(view, "metrics")["element"]["initial_options"]]
    assert chosen == ["deployment-frequency", "lead-time-for-changes"]  # the catalogue's order
    assert _block(view, "targets")["element"]["initial_value"] == "lead-time-for-changes = 2d"
    assert _block(view, "channel")["element"]["initial_conversation"] == LEADERS
    assert _block(view, "day")["element"]["initial_option"]["value"] == "wed"
    assert _block(view, "time")["element"]["initial_time"] == "10:15"
    assert _block(view, "period_days")["element"]["initial_value"] == "28"  # the default, filled in
    assert _block(view, "timezone")["element"]["initial_value"] == "Europe/London"
    # Admins named in [org] admins open it too, without asking Slack.
    asked = len(slack.calls_to("users.info"))
    _open(app, slack, "UCFG1")
    assert len(slack.calls_to("users.info")) == asked


def test_an_admin_saves_every_field_logged_in_words_replanned_and_announced(env):
    app, slack, db_path, saved = env
    view = _open(app, slack)
    state = _state(view)
    metrics = state["values"]["metrics"]["v"]["selected_options"]
    metrics.append(_option("change-failure-rate"))
    _set(state, "targets", "lead-time-for-changes = 2d\nchange failure rate <= 15%")
    state["values"]["channel"]["v"]["selected_conversation"] = BOARD
    state["values"]["day"]["v"]["selected_option"] = _option("wed")
    state["values"]["time"]["v"]["selected_time"] = "10:15"
    _set(state, "period_days", "14")
    _set(state, "timezone", "America/New_York")
    resp = _submit(app, view, state)
    assert resp.status == 200 and resp.body == ""
    org = get_org(_db(db_path))
    assert org["north_star"] == ["lead-time-for-changes", "deployment-frequency", "change-failure-rate"]
    assert org["targets"] == {"lead-time-for-changes": 48.0, "change-failure-rate": 15.0}
    assert org["targets"]["change-failure-rate"].text == "15%"
    assert org["channel"] == BOARD and org["timezone"] == "America/New_York"
    assert org["digest"] == {"day": "wed", "time": "10:15", "period_days": 14}
    assert saved == [1]  # the org digest re-planned once, after the whole save
    rows = settings_log(_db(db_path), ORG_LOG)[-5:]
    assert {r["who"] for r in rows} == {"UANA1"}
    assert [r["what"] for r in rows] == [
        "North Star: added Change failure rate",
        "target change failure rate: none → ≤ 15.0%; target lead time for changes: none → ≤ 2.0 d",
        f"org channel: {LEADERS} → {BOARD}",
        "time zone: UTC → America/New_York",
        "org digest: Mon 08:00 → Wed 10:15 America/New_York; org digest period: 28 → 14 days",
    ]
    assert json.loads(rows[2]["change"]) == {"channel": [LEADERS, BOARD]}
    said = (
        "<@UANA1> changed the organisation settings: North Star: added Change failure rate; "
        "target change failure rate: none → ≤ 15.0%; target lead time for changes: none → ≤ 2.0 d; "
        f"org channel: <#{LEADERS}> → <#{BOARD}>; time zone: UTC → America/New_York; "
        "org digest: Mon 08:00 → Wed 10:15 America/New_York; org digest period: 28 → 14 days"
    )
    assert _posts(slack) == [
        (BOARD, said),
        (
            LEADERS,
            f"<@UANA1> moved the organisation channel to <#{BOARD}>: the organisation digest goes there now.",
        ),
    ]


def test_an_admin_names_the_org_admins_in_the_form_and_they_may_then_change_the_settings(env):
    """The org admins are the database's (vsm.toml's only seed them), so the form is where they are
    changed: logged and announced with mentions; the new admin opens the form; an order is no change."""
    app, slack, db_path, saved = env
    view = _open(app, slack)
    assert _block(view, "admins")["element"]["type"] == "multi_users_select"
    state = _state(view)
    state["values"]["admins"]["v"]["selected_users"] = ["UZOE1", "UYAN1"]
    assert _submit(app, view, state).body == ""
    assert get_org(_db(db_path))["admins"] == ["UZOE1", "UYAN1"]
    assert settings_log(_db(db_path), ORG_LOG)[-1]["what"] == "org admins: added UZOE1, UYAN1"
    assert _posts(slack)[-1] == (
        LEADERS,
        "<@UANA1> changed the organisation settings: org admins: added <@UZOE1>, <@UYAN1>",
    )
    view = _open(app, slack, user="UZOE1")  # not a workspace admin: an org admin now
    state = _state(view)
    assert state["values"]["admins"]["v"]["selected_users"] == ["UZOE1", "UYAN1"]
    state["values"]["admins"]["v"]["selected_users"] = ["UYAN1", "UZOE1"]
    assert _submit(app, view, state, user="UZOE1").body == ""  # the same people: nothing to save
    assert get_org(_db(db_path))["admins"] == ["UZOE1", "UYAN1"] and len(_posts(slack)) == 1


@pytest.mark.parametrize(
    "forged",
    [
        ["UZOE1", "<!channel>"],
        "UZOE1",
        None,
        {"u": "UZOE1"},
        [{"a": 1}],
        ["UZOE1", 5],
        [f"U{n:010d}" for n in range(51)],
    ],
)
def test_a_forged_org_admins_field_is_refused_on_it_and_keeps_the_admins(env, forged):
    """Anything but a list of user ids is refused on the field (never read as "no admins", which
    would remove every org admin), and more than the picker holds is too."""
    app, slack, db_path, _ = env
    set_org(_db(db_path), "admins", ["UKEEP1"], who="vsm.toml")
    view = _open(app, slack)
    state = _state(view)
    state["values"]["admins"]["v"]["selected_users"] = forged
    resp = _submit(app, view, state)
    answer = json.loads(resp.body)
    assert answer["response_action"] == "errors" and set(answer["errors"]) == {"admins"}
    assert answer["errors"]["admins"].startswith("Choose ")
    assert get_org(_db(db_path))["admins"] == ["UKEEP1"]


def test_an_org_admin_may_not_take_themselves_off_the_org_admins(env):
    """An org admin who is not a workspace admin would lock themselves out of the form: refused on
    the field. A workspace admin may remove themselves (they keep the right as workspace admins)."""
    app, slack, db_path, _ = env
    set_org(_db(db_path), "admins", ["UZOE1", "UANA1"], who="vsm.toml")
    view = _open(app, slack, user="UZOE1")  # UZOE1: an org admin, not a workspace admin
    state = _state(view)
    state["values"]["admins"]["v"]["selected_users"] = ["UANA1"]
    answer = json.loads(_submit(app, view, state, user="UZOE1").body)
    assert answer["errors"] == {"admins": SELF_REMOVAL}
    assert get_org(_db(db_path))["admins"] == ["UZOE1", "UANA1"]
    slack.errors["users.info"] = "internal_error"  # Slack cannot say: refused, not called a lock-out
    answer = json.loads(_submit(app, view, state, user="UZOE1").body)
    assert answer["errors"] == {"admins": ADMIN_UNKNOWN}
    del slack.errors["users.info"]
    view = _open(app, slack, user="UANA1")  # a workspace admin too
    state = _state(view)
    state["values"]["admins"]["v"]["selected_users"] = ["UZOE1"]
    assert _submit(app, view, state, user="UANA1").body == ""
    assert get_org(_db(db_path))["admins"] == ["UZOE1"]


def test_an_unchanged_save_writes_and_says_nothing(env):
    """Settings never set (zone, digest, targets) are shown with their defaults; saving them as shown
    is no change, so no log row, no re-plan and no announcement."""
    app, slack, db_path, saved = env
    db = _db(db_path)
    set_org(db, "digest", {"time": "08:00"}, who="vsm.toml")  # set in part: the rest is its defaults
    log, org = settings_log(db, ORG_LOG), get_org(db)
    view = _open(app, slack)
    assert _submit(app, view, _state(view)).body == ""
    assert settings_log(_db(db_path), ORG_LOG) == log and get_org(_db(db_path)) == org
    assert saved == [] and _posts(slack) == []


def test_without_an_org_channel_a_change_is_logged_but_not_announced(env):
    app, slack, db_path, saved = env
    view = _open(app, slack)
    state = _state(view)
    state["values"]["channel"]["v"]["selected_conversation"] = None  # cleared
    _submit(app, view, state)
    assert get_org(_db(db_path))["channel"] == ""
    # The channel it left is told (it is where the org digest went until now).
    assert _posts(slack) == [
        (LEADERS, f"<@UANA1> changed the organisation settings: org channel: <#{LEADERS}> → none")
    ]
    view = _open(app, slack)
    state = _state(view)
    _set(state, "timezone", "Europe/Paris")
    _submit(app, view, state)
    assert get_org(_db(db_path))["timezone"] == "Europe/Paris"
    assert settings_log(_db(db_path), ORG_LOG)[-1]["what"] == "time zone: UTC → Europe/Paris"
    assert len(_posts(slack)) == 1 and saved == [1, 1]


def test_a_non_admin_is_refused_at_open_and_at_submit(env):
    app, slack, db_path, _ = env
    interaction(
        app,
        {
            "type": "block_actions",
            "user": {"id": "U1"},
            "trigger_id": "t",
            "response_url": f"{slack.url}/response/5",
            "actions": [{"action_id": "set_north_star", "block_id": "b", "value": "x", "type": "button"}],
        },
    )
    assert slack.calls_to("views.open") == []
    assert slack.responses()[-1]["text"] == NOT_ADMIN
    view = _open(app, slack)
    state = _state(view)
    _set(state, "timezone", "Europe/Paris")
    log = settings_log(_db(db_path), ORG_LOG)
    # Someone else submitting the admin's form, or their own forged one.
    for user, meta in (("U1", view["private_metadata"]), ("U1", json.dumps({"by": "U1", "seen": 2}))):
        body = ack_json(_submit(app, {**view, "private_metadata": meta}, state, user))
        assert body == {
            "response_action": "errors",
            "errors": {"metrics": NOT_ADMIN},
        }
    assert settings_log(_db(db_path), ORG_LOG) == log and _posts(slack) == []


def test_an_admin_demoted_between_open_and_submit_saves_nothing(env):
    app, slack, db_path, saved = env
    view = _open(app, slack, "UBEN1")
    state = _state(view)
    _set(state, "timezone", "Europe/Paris")
    slack.admins.discard("UBEN1")
    asked = len(slack.calls_to("users.info"))
    body = ack_json(_submit(app, view, state, "UBEN1"))
    assert body == {"response_action": "errors", "errors": {"metrics": NOT_ADMIN}}
    assert len(slack.calls_to("users.info")) == asked + 1  # asked again at the moment of the write
    assert "timezone" not in get_org(_db(db_path)) and saved == [] and _posts(slack) == []


def test_bad_fields_are_refused_each_on_its_own_block_and_nothing_is_saved(env):
    app, slack, db_path, saved = env
    payments = next(t for t in sample_teams() if t.name == "payments")
    log, org = settings_log(_db(db_path), ORG_LOG), get_org(_db(db_path))
    view = _open(app, slack)
    state = _state(view)
    _set(
        state,
        "targets",
        "lead-time-for-changes = 2d\ndeployment-frequency <= 5\nthroughput = 8\nlead time for changes = soon",
    )
    state["values"]["channel"]["v"]["selected_conversation"] = payments.channel
    state["values"]["time"]["v"]["selected_time"] = "02:30"
    _set(state, "period_days", "400")
    _set(state, "timezone", "Mars/Olympus")
    body = ack_json(_submit(app, view, state))
    assert body["response_action"] == "errors"
    errors = body["errors"]
    assert errors["targets"] == (
        "Line 2: deployment-frequency: higher is better for deployment frequency, so its target is “≥”, "
        "not “≤”. Line 4: lead-time-for-changes already has a target on line 1. Line 4: "
        "lead-time-for-changes: 'soon' is not a duration above 0 and up to 365d, such as 36h, 5d or 2w (a "
        "plain number is hours). throughput: not among the North Star metrics above, and the "
        "organisation's targets are shown only beside them. Choose the metric above, or remove its line."
    )
    assert errors["channel"] == (
        "That is the channel of the team payments. Choose a channel of the organisation's own."
    )
    assert errors["time"] == "Pick a time outside 01:00–03:00 (daylight-saving changes skip or repeat it)."
    assert errors["period_days"] == "A whole number of days from 7 to 182."
    assert errors["timezone"] == "An IANA time zone such as Europe/London."
    assert set(errors) == {"targets", "channel", "time", "period_days", "timezone"}
    assert settings_log(_db(db_path), ORG_LOG) == log and get_org(_db(db_path)) == org
    assert saved == [] and _posts(slack) == []


@pytest.mark.parametrize(
    "block,value,error",
    [
        ("period_days", "1e2", "A whole number of days from 7 to 182."),
        ("period_days", "２８", "A whole number of days from 7 to 182."),  # full-width digits
        ("period_days", "28.5", "A whole number of days from 7 to 182."),
        ("channel", "<!channel>", "Choose a public or private channel."),
        ("channel", "D0DIRECT01", "Choose a public or private channel."),
        ("day", "someday", "A day of the week."),
        ("time", "9am", "A time such as 09:00."),
        ("metrics", "lines-of-code", "Unknown metric “lines-of-code”."),
    ],
)
def test_forged_values_are_refused_on_their_field(env, block, value, error):
    app, slack, db_path, _ = env
    org = get_org(_db(db_path))
    view = _open(app, slack)
    state = _state(view)
    element = state["values"][block]["v"]
    key = {
        "channel": "selected_conversation",
        "day": "selected_option",
        "time": "selected_time",
        "metrics": "selected_options",
    }.get(block, "value")
    element[key] = {"day": _option(value), "metrics": [_option(value)]}.get(block, value)
    body = ack_json(_submit(app, view, state))
    assert body == {"response_action": "errors", "errors": {block: error}}
    assert get_org(_db(db_path)) == org


def test_a_form_saved_after_another_admin_changed_the_settings_is_refused(env):
    """Saving an older form would put back what the other admin changed: refused, nothing written."""
    app, slack, db_path, _ = env
    mine = _open(app, slack, "UANA1")
    theirs = _open(app, slack, "UBEN1")
    state = _state(theirs)
    _set(state, "timezone", "Europe/Paris")
    assert _submit(app, theirs, state, "UBEN1").body == ""
    log = settings_log(_db(db_path), ORG_LOG)
    state = _state(mine)
    _set(state, "period_days", "14")
    body = ack_json(_submit(app, mine, state, "UANA1"))
    assert body["errors"]["metrics"].startswith("Someone changed the organisation settings since you opened")
    assert settings_log(_db(db_path), ORG_LOG) == log
    assert get_org(_db(db_path))["timezone"] == "Europe/Paris" and "digest" not in get_org(_db(db_path))


def test_a_form_from_before_the_new_fields_changes_only_the_metrics(env):
    """A North Star form opened by an older vsm-bot sends only its metrics: the settings it did not
    show keep their values."""
    app, slack, db_path, _ = env
    view = {"type": "modal", "callback_id": "north_star", "private_metadata": json.dumps({"by": "UANA1"})}
    state = {
        "values": {
            "metrics": {"v": {"type": "multi_static_select", "selected_options": [_option("throughput")]}}
        }
    }
    assert _submit(app, view, state).body == ""
    org = get_org(_db(db_path))
    assert org["north_star"] == ["throughput"] and org["channel"] == LEADERS
    assert set(org) == {"north_star", "channel"}
    assert _posts(slack) == [
        (
            LEADERS,
            "<@UANA1> changed the organisation settings: North Star: added Throughput, removed Lead time "
            "for changes, Deployment frequency",
        )
    ]


def test_through_vsm_serve_http_an_admin_named_in_the_config_changes_the_settings(tmp_path):
    """The real `vsm serve --http` process, its [org] from vsm.toml: the form opened and saved by
    signed requests over HTTP, the change stored and announced in the org channel."""
    from test_slack_serve import FORM, post, vsm_serve

    (tmp_path / "vsm.toml").write_text(
        f'[org]\nnorth_star = ["deployment-frequency"]\nchannel = "{LEADERS}"\nadmins = ["UCFG1"]\n'
    )
    with MockSlack() as slack, vsm_serve(tmp_path, slack.base_url) as served:

        def send(payload: dict):
            body = urlencode({"payload": json.dumps(payload)})
            return post(served.url, body, signed(body, content_type=FORM))

        def until(found, what: str):
            deadline = time.monotonic() + 30
            while not found():
                assert time.monotonic() < deadline, f"no {what}: {served.log()}"
                threading.Event().wait(0.02)  # polling the mock for the call, with a deadline
            return found()

        action = {"action_id": "set_north_star", "block_id": "b", "value": "x", "type": "button"}
        click = {"type": "block_actions", "user": {"id": "UCFG1"}, "trigger_id": "t", "actions": [action]}
        assert send(click).status_code == 200
        view = until(lambda: slack.calls_to("views.open"), "views.open")[0].body["view"]
        assert_valid_view(view)
        state = _state(view)
        _set(state, "targets", "deployment-frequency = 5")
        submitted = {"type": "view_submission", "user": {"id": "UCFG1"}, "view": {**view, "state": state}}
        resp = send(submitted)
        assert resp.status_code == 200 and resp.text == ""
        [posted] = until(lambda: slack.calls_to("chat.postMessage"), "announcement")
        assert (posted.body["channel"], posted.body["text"]) == (
            LEADERS,
            "<@UCFG1> changed the organisation settings: target deployment frequency: none → ≥ 5.0/wk",
        )
    targets = get_org(open_db(tmp_path / "s.db", create=False))["targets"]
    assert targets == {"deployment-frequency": 5.0} and targets["deployment-frequency"].better == "higher"
