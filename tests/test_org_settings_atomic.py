"""The organisation settings saved all or nothing (``set_org_many``), two admins saving at once, an org
channel the bot cannot post in refused before it is saved, and the org admins taken from the database.

The form is driven as Slack drives it (signed requests through Bolt, the Web API on the loopback mock,
whose ``conversations.info`` answers as Slack does); the store is a real SQLite file written by several
connections at once.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlencode

import pytest
from fakes.server import Reply
from fakes.slack import BOT_USER, MockSlack
from slackkit import ack_json, slack_app
from test_org_settings import BOARD, LEADERS, AdminSlack, _open, _posts, _set, _state, _submit

from bot.authz import CHANNEL_UNKNOWN, NOT_ADMIN, NOT_IN_CHANNEL, PRE_ACK_S
from metrics.config import load_config
from metrics.errors import VsmError
from metrics.store import open_db
from metrics.teams import (
    ORG_LOG,
    OrgConflict,
    Team,
    create_team,
    get_org,
    org_version,
    seed_from_config,
    set_org,
    set_org_many,
    settings_log,
)

NOT_IN, SECRET = "C0NOTINIT01", "G0SECRET01"


@pytest.fixture
def db(tmp_path):
    db = open_db(tmp_path / "org.db")
    set_org(db, "north_star", ["lead-time-for-changes"], who="vsm.toml")
    set_org(db, "channel", LEADERS, who="vsm.toml")
    return db


def _state_of(db) -> tuple[dict, list]:
    return get_org(db), settings_log(db, ORG_LOG)


def test_a_bad_value_on_a_later_key_saves_none_of_the_others(db):
    before = _state_of(db)
    with pytest.raises(VsmError, match="org digest: time '25:00' must be HH:MM"):
        set_org_many(
            db,
            {"north_star": ["deployment-frequency"], "timezone": "Europe/Paris", "digest": {"time": "25:00"}},
            who="UANA1",
        )
    assert _state_of(db) == before


def test_a_failure_while_writing_rolls_back_the_keys_already_written(db):
    """The third key's log words fail after two keys and their log rows were written: the
    transaction puts all of it back."""
    before = _state_of(db)
    written = []

    def what(change: dict) -> str:
        written.append(next(iter(change)))
        if len(written) == 3:
            raise RuntimeError("the words could not be made")
        return "changed"

    values = {"north_star": ["deployment-frequency"], "timezone": "Europe/Paris", "channel": BOARD}
    with pytest.raises(RuntimeError):
        set_org_many(db, values, who="UANA1", what=what)
    assert written == ["north_star", "timezone", "channel"]
    assert _state_of(db) == before
    # The same save, once it can be worded, writes every key and one log row each.
    assert set(set_org_many(db, values, who="UANA1")) == set(values)
    org, log = _state_of(db)
    assert {k: org[k] for k in values} == values
    assert [r["what"] for r in log[len(before[1]) :]] == ["changed org " + k for k in values]


def test_a_channel_a_team_took_since_the_form_was_read_is_refused_with_nothing_saved(db):
    create_team(db, Team(name="board", channel=BOARD), who="U2")
    before = _state_of(db)
    with pytest.raises(OrgConflict) as refused:
        set_org_many(db, {"timezone": "Europe/Paris", "channel": BOARD}, who="UANA1")
    assert refused.value.key == "channel"
    assert _state_of(db) == before


def test_of_admins_saving_forms_opened_on_the_same_settings_at_once_one_wins(tmp_path, db):
    """Eight admins, each on their own connection, save at the same moment forms opened on the same
    version: the version is compared under the write lock, so exactly one save is written and the
    others are refused, never one silently putting back another's change."""
    seen = org_version(db)
    zones = [f"Etc/GMT+{n}" for n in range(1, 9)]
    start = threading.Barrier(len(zones))
    outcome: dict[str, str] = {}

    def save(zone: str) -> None:
        mine = open_db(tmp_path / "org.db", create=False)
        start.wait()
        try:
            set_org_many(mine, {"timezone": zone}, who=f"U{zone[-1]}ADMIN", seen=seen)
            outcome[zone] = "saved"
        except OrgConflict as exc:
            outcome[zone] = exc.key

    threads = [threading.Thread(target=save, args=(z,)) for z in zones]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcome.values()) == ["saved"] + ["version"] * 7
    [winner] = [z for z, o in outcome.items() if o == "saved"]
    org, log = _state_of(open_db(tmp_path / "org.db", create=False))
    assert org["timezone"] == winner
    assert [json.loads(r["change"]) for r in log if "timezone" in r["change"]] == [
        {"timezone": [None, winner]}
    ]


# --- the org channel: one the bot can post in --------------------------------------------------------


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    db = open_db(db_path, create=False)
    db.execute("delete from org")
    set_org(db, "north_star", ["lead-time-for-changes", "deployment-frequency"], who="vsm.toml")
    set_org(db, "channel", LEADERS, who="vsm.toml")
    members = {LEADERS: [BOT_USER], BOARD: [BOT_USER], NOT_IN: ["UANA1"], SECRET: ["UANA1"]}
    with SlowInfo({"UANA1"}, members=members) as slack:
        slack.private.add(SECRET)
        saved: list[int] = []
        yield slack_app(db_path, slack, on_org_saved=lambda ws: saved.append(1)), slack, db_path, saved


class SlowInfo(AdminSlack):
    """``conversations.info`` answered ``info_delay`` seconds late (a slow Slack), else at once."""

    info_delay = 0.0

    def _api(self, req) -> Reply:
        reply = super()._api(req)
        if req.path == "/conversations.info" and self.info_delay:
            reply.delay = self.info_delay
        return reply


def _choose(app, slack, channel: str) -> tuple[dict, dict]:
    view = _open(app, slack)
    state = _state(view)
    state["values"]["channel"]["v"]["selected_conversation"] = channel
    _set(state, "timezone", "Europe/Paris")
    return view, state


@pytest.mark.parametrize("channel", [NOT_IN, SECRET], ids=["public, bot not in it", "private, hidden"])
def test_an_org_channel_the_bot_is_not_in_is_refused_on_its_field(env, channel):
    """The save used to succeed, then the announcement and every org digest failed there with
    not_in_channel. A private channel the bot is not in is channel_not_found to it: the same answer."""
    app, slack, db_path, saved = env
    before = _state_of(open_db(db_path, create=False))
    view, state = _choose(app, slack, channel)
    body = ack_json(_submit(app, view, state))
    assert body == {"response_action": "errors", "errors": {"channel": NOT_IN_CHANNEL}}
    assert [c.body["channel"] for c in slack.calls_to("conversations.info")] == [channel]
    assert _state_of(open_db(db_path, create=False)) == before
    assert saved == [] and _posts(slack) == []
    # Invited, the same form saves.
    slack.members[channel].append(BOT_USER)
    assert _submit(app, view, state).body == ""
    assert get_org(open_db(db_path, create=False))["channel"] == channel and saved == [1]


def test_an_unchanged_or_cleared_org_channel_asks_slack_nothing(env):
    app, slack, db_path, _ = env
    for channel in (LEADERS, None):
        view, state = _choose(app, slack, channel)
        assert _submit(app, view, state).body == ""
    assert slack.calls_to("conversations.info") == []
    assert get_org(open_db(db_path, create=False))["channel"] == ""


def test_slack_not_saying_in_time_whether_the_bot_is_in_the_channel_is_a_refusal(env):
    app, slack, db_path, saved = env
    before = _state_of(open_db(db_path, create=False))
    view, state = _choose(app, slack, BOARD)
    slack.info_delay = PRE_ACK_S + 1
    started = time.monotonic()
    body = ack_json(_submit(app, view, state))
    took = time.monotonic() - started
    assert body == {"response_action": "errors", "errors": {"channel": CHANNEL_UNKNOWN}}
    assert took < 3.0, f"acknowledged after {took:.2f} s: Slack allows 3"
    assert _state_of(open_db(db_path, create=False)) == before and saved == []


# --- the org admins: the database's -----------------------------------------------------------------


def test_the_org_admins_are_the_databases_not_a_changed_vsm_toml(tmp_path):
    """``vsm serve`` after vsm.toml's admins were changed: the admin the database holds (seeded on first
    start) may open the form; the one only the changed file names may not; the log says so."""
    from slackkit import signed
    from test_slack_serve import FORM, post, vsm_serve

    first = '[org]\nnorth_star = ["deployment-frequency"]\nadmins = ["U0DBADMIN1"]\n'
    (tmp_path / "vsm.toml").write_text(first)
    cfg = load_config(str(tmp_path / "vsm.toml"))
    assert seed_from_config(open_db(tmp_path / "s.db"), cfg.teams, cfg.org) == []  # the first start
    (tmp_path / "vsm.toml").write_text(first.replace("U0DBADMIN1", "U0NEWADMIN1"))
    with MockSlack() as slack, vsm_serve(tmp_path, slack.base_url) as served:

        def click(user: str, n: int):
            action = {"action_id": "set_north_star", "block_id": "b", "value": "x", "type": "button"}
            payload = {
                "type": "block_actions",
                "user": {"id": user},
                "trigger_id": "t",
                "response_url": f"{slack.url}/response/{n}",
                "actions": [action],
            }
            body = urlencode({"payload": json.dumps(payload)})
            assert post(served.url, body, signed(body, content_type=FORM)).status_code == 200

        def until(found, what: str):
            deadline = time.monotonic() + 30
            while not found():
                assert time.monotonic() < deadline, f"no {what}: {served.log()}"
                threading.Event().wait(0.02)  # polling the mock, with a deadline
            return found()

        click("U0NEWADMIN1", 1)
        [refused] = until(slack.responses, "refusal")
        assert refused["text"] == NOT_ADMIN and slack.calls_to("views.open") == []
        click("U0DBADMIN1", 2)
        until(lambda: slack.calls_to("views.open"), "views.open")
        assert (
            "org admins: vsm.toml differs from the database; the database wins: the org admins are "
            "U0DBADMIN1 (besides workspace admins), not the file's"
        ) in served.log()
    assert get_org(open_db(tmp_path / "s.db", create=False))["admins"] == ["U0DBADMIN1"]


def test_an_admin_listed_only_in_the_database_may_set_the_org_settings(env):
    """No ``admins`` passed to the app: the database's ``[org] admins`` open and save the form, with no
    ``users.info`` asked for them."""
    app, slack, db_path, _ = env
    set_org(open_db(db_path, create=False), "admins", ["U0DBADMIN1"], who="vsm.toml")
    view = _open(app, slack, "U0DBADMIN1")
    state = _state(view)
    _set(state, "timezone", "Europe/Paris")
    assert _submit(app, view, state, "U0DBADMIN1").body == ""
    assert get_org(open_db(db_path, create=False))["timezone"] == "Europe/Paris"
    assert all(c.body.get("user") != "U0DBADMIN1" for c in slack.calls_to("users.info"))
    # Taken off the database's list, they are refused at the next submit.
    set_org(open_db(db_path, create=False), "admins", [], who="U0OPS")
    body = ack_json(_submit(app, view, state, "U0DBADMIN1"))
    assert body == {"response_action": "errors", "errors": {"metrics": NOT_ADMIN}}
