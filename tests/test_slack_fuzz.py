"""Thousands of random and hostile `/vsm` texts: a short ephemeral answer each, nothing raised or written."""

import hashlib
import json
import logging
import random
import sqlite3

import pytest
from fakes.slack import MockSlack
from slackkit import ack_json, click, command, event, interaction, slack_app

from bot.listeners.commands.parse import parse
from metrics.sample import sample_teams

HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<@U123>",
    "<#C123|general>",
    "<https://evil.example|click>",
    "&amp;&lt;&gt;",
    "'; drop table teams; --",
    "\x00\x01\x1b[31m",
    "%s%n%x",
    "{{ 7*7 }}",
    "{% raw %}",
    "../../etc/passwd",
    "*bold* _it_ ~s~ `code` ```block```",
    "ﷺ 𝕏 🤖 \u202e\u200b",
    "cycle-time 90d; rm -rf /",
    "forecast -1",
    "forecast 99999999999999999999",
    "forecast 1e3",
    "cycle-time 2026Q9",
    "cycle-time 0d",
    "metrics metrics",
    "help me please",
    # issue 10 item 8: each was a 500 ("dispatch_failed")
    "forecast ²",  # "²".isdigit() is True, int("²") raises
    "forecast ٣",
    "forecast " + "9" * 5000,  # int() refuses more than 4,300 digits
    "cycle-time 9999Q4",  # the quarter's end is year 10000
    "throughput 0000q1",
    "cycle-time 0001q1",
    "cycle-time ٣٠d",
]
WORDS = [
    "cycle-time",
    "throughput",
    "forecast",
    "digest",
    "settings",
    "northstar",
    "help",
    "metrics",
    "90d",
    "chart",
]


def texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = list(HOSTILE)
    alphabet = [chr(c) for c in range(32, 127)] + [
        "é",
        "ß",
        "字",
        "🙂",
        "\n",
        "\t",
        "<",
        ">",
        "&",
        "|",
        "!",
        "@",
    ]
    while len(out) < n:
        kind = rng.random()
        if kind < 0.4:
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))))
        elif kind < 0.7:
            out.append(" ".join(rng.choice(WORDS + HOSTILE) for _ in range(rng.randint(2, 4))))
        elif kind < 0.8:
            out.append(rng.choice(WORDS) + " " + "x" * rng.randint(100, 5000))
        else:
            out.append(rng.choice(HOSTILE) + rng.choice(WORDS))
    return out


def content(path) -> str:
    """The database's logical content, less the flows a computation stores (metrics.store.flows: a
    cache derived from the other tables, which a metric command may fill)."""
    conn = sqlite3.connect(path)
    try:
        lines = (line for line in conn.iterdump() if not line.startswith('INSERT INTO "flows"'))
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()
    finally:
        conn.close()


def test_parse_never_raises_and_always_explains():
    for text in texts(5000):
        cmd = parse(text)
        assert cmd.name in (
            "help",
            "metrics",
            "digest",
            "settings",
            "northstar",
            "forecast",
            "metric",
            "error",
        )
        if cmd.name == "error":
            assert cmd.error and len(cmd.error) < 200


def test_fuzzed_commands_get_short_ephemeral_replies_and_write_nothing(sample_db, tmp_path):
    db_path = tmp_path / "fuzz.db"
    db_path.write_bytes(sample_db.read_bytes())
    channel = sample_teams()[0].channel
    before = content(db_path)
    with MockSlack(members={channel: ["U1"]}) as slack:
        app = slack_app(db_path, slack)
        for text in texts(2000):
            resp = command(app, text, channel=channel, response_url=f"{slack.url}/response/f")
            assert resp.status == 200, text
            body = ack_json(resp)
            if body:
                assert body.get("response_type") == "ephemeral", text
                assert 0 < len(body["text"]) < 4000
                dumped = json.dumps(body)
                for raw in ("<!channel>", "<!here", "<@U123>", "<#C123"):
                    assert raw not in dumped, (text, raw)
        for reply in slack.responses():
            assert reply.get("response_type", "ephemeral") == "ephemeral"
            assert "text" in reply and len(reply["text"]) < 4000
        assert not [c for c in slack.calls if c.method == "chat.postMessage"]  # nothing posted to channels
    assert content(db_path) == before


# Issue 10 item 8: forged clicks and modal submissions, signed as Slack signs them but shaped as Slack
# never sends them. The user is a channel member: even a member's forgery changes nothing.
PERIOD_1 = {"since": "0001-01-01T00:00:00Z", "until": "0001-02-01T00:00:00Z"}
PERIOD_9999 = {"since": "9999-01-01T00:00:00Z", "until": "9999-12-31T00:00:00Z"}


def _explain(**spec) -> dict:
    return {"action_id": "explain", "type": "button", "value": json.dumps({"metric": "cycle-time", **spec})}


def _chart(value: str) -> dict:
    return {"action_id": "chart", "type": "static_select", "selected_option": {"value": value}}


def _snooze(option) -> dict:
    action = {"action_id": "snooze_nudges", "type": "overflow"}
    return action if option is None else {**action, "selected_option": {"value": option}}


CLICKS = {
    "explain, empty actions": [],
    "explain, actions not a list": "explain",
    "explain, action not an object": ["explain"],
    "explain, value not JSON": [{"action_id": "explain", "type": "button", "value": "{nope"}],
    "explain, value a list": [{"action_id": "explain", "type": "button", "value": "[1, 2]"}],
    "explain, no value": [{"action_id": "explain", "type": "button"}],
    "explain, window in year 1": [_explain(team="payments", **PERIOD_1)],
    "explain, window in year 9999": [_explain(team="payments", **PERIOD_9999)],
    "explain, no until": [_explain(team="payments", since="2026-01-01T00:00:00Z")],
    "explain, times not strings": [_explain(team="payments", since=5, until=[1])],
    "explain, garbage time": [_explain(team="payments", since="2026-99-01", until="x")],
    "chart, year 1": [_chart("cycle-time|0001-01-01|0001-02-01")],
    "chart, year 9999": [_chart("cycle-time|9999-01-01|9999-12-31")],
    "chart, ten thousand years": [_chart("cycle-time|1970-01-01|2199-12-31")],
    "chart, no separators": [_chart("cycle-time")],
    "chart, no option": [{"action_id": "chart", "type": "static_select"}],
    "chart, unknown metric": [_chart("lines-of-code|2026-01-01|2026-02-01")],
    "snooze, no option": [_snooze(None)],
    "snooze, superscript two": [_snooze("²")],
    "snooze, a year": [_snooze("365")],
    "snooze, option not an object": [{"action_id": "snooze_nudges", "selected_option": "7"}],
}


def _settings_view(meta, state=None, **extra) -> dict:
    view = {"type": "modal", "callback_id": "team_settings", "private_metadata": meta, **extra}
    if state is not None:
        view["state"] = state
    return view


def _meta(**kw) -> str:
    return json.dumps(
        {"channel": sample_teams()[0].channel, "team": sample_teams()[0].name, "by": "U1", **kw}
    )


SUBMISSIONS = {
    "settings, metadata not JSON": _settings_view("{nope", {"values": {}}),
    "settings, metadata a list": _settings_view("[1]", {"values": {}}),
    "settings, metadata a number": _settings_view(5),
    "settings, channel not a string": _settings_view(json.dumps({"channel": ["C"], "by": "U1"})),
    "settings, no state": _settings_view(_meta()),
    "settings, values a list": _settings_view(_meta(), {"values": ["x"]}),
    "settings, state a string": _settings_view(_meta(), "x"),
    "settings, options not a list": _settings_view(
        _meta(), {"values": {"metrics": {"v": {"type": "multi_static_select", "selected_options": "wip"}}}}
    ),
    "settings, options not objects": _settings_view(
        _meta(), {"values": {"metrics": {"v": {"type": "multi_static_select", "selected_options": [1]}}}}
    ),
    "settings, numbers for text": _settings_view(
        _meta(),
        {
            "values": {
                "name": {"v": {"type": "plain_text_input", "value": 5}},
                "targets": {"v": {"type": "plain_text_input", "value": ["cycle-time = 3"]}},
                "repos": {"v": {"type": "plain_text_input", "value": {"a": 1}}},
                "day": {"v": {"type": "multi_static_select", "selected_options": [{"value": "mon"}]}},
                "time": {"v": {"type": "timepicker", "selected_time": "٠٩:٠٠"}},
            }
        },
    ),
    "settings, no type": {"callback_id": "team_settings", "private_metadata": _meta()},
    "north star, metadata not JSON": {"type": "modal", "callback_id": "north_star", "private_metadata": "{"},
    "north star, no state": {
        "type": "modal",
        "callback_id": "north_star",
        "private_metadata": '{"by": "U1"}',
    },
    "north star, options a string": {
        "type": "modal",
        "callback_id": "north_star",
        "private_metadata": '{"by": "U1"}',
        "state": {"values": {"metrics": {"v": {"selected_options": "throughput"}}}},
    },
}


@pytest.fixture(scope="module")
def forged_env(sample_db, tmp_path_factory):
    db_path = tmp_path_factory.mktemp("forged") / "forged.db"
    db_path.write_bytes(sample_db.read_bytes())
    channel = sample_teams()[0].channel
    with MockSlack(members={channel: ["U1"]}) as slack:
        app = slack_app(db_path, slack, admins=["U1"])
        yield app, slack, channel, db_path, content(db_path)


def _assert_nothing_happened(resp, slack, db_path, before, caplog) -> None:
    assert resp.status in (200, 400), resp.status  # an answer or a refusal, never a 500
    assert content(db_path) == before
    assert not slack.calls_to("chat.postMessage") and not slack.calls_to("views.open")
    for record in caplog.records:
        assert record.exc_info is None and "\n" not in record.getMessage(), record.getMessage()
    assert [r for r in caplog.records if r.name == "vsm.bot"], "the refusal is logged"


@pytest.mark.parametrize("name", list(CLICKS))
def test_forged_clicks_are_acknowledged_and_change_nothing(forged_env, name, caplog):
    app, slack, channel, db_path, before = forged_env
    caplog.set_level(logging.INFO)
    answered = len(slack.responses())
    resp = click(app, CLICKS[name], channel=channel, response_url=f"{slack.url}/response/forged")
    _assert_nothing_happened(resp, slack, db_path, before, caplog)
    # refused by the listener itself, not caught by the last-resort handler as a crash
    assert not [r.getMessage() for r in caplog.records if " failed: " in r.getMessage()]
    for reply in slack.responses()[answered:]:  # whatever is said is said to the clicker alone
        assert reply.get("response_type", "ephemeral") == "ephemeral" and reply["text"]


def test_a_forged_click_without_a_response_url_or_user_is_refused(forged_env, caplog):
    app, slack, channel, db_path, before = forged_env
    caplog.set_level(logging.INFO)
    for action in (_snooze("7"), {"action_id": "post_digest", "type": "button"}, _explain(team="x")):
        resp = interaction(app, {"type": "block_actions", "channel": {"id": channel}, "actions": [action]})
        _assert_nothing_happened(resp, slack, db_path, before, caplog)


@pytest.mark.parametrize("name", list(SUBMISSIONS))
def test_forged_submissions_get_a_form_error_and_change_nothing(forged_env, name, caplog):
    app, slack, channel, db_path, before = forged_env
    caplog.set_level(logging.INFO)
    resp = interaction(app, {"type": "view_submission", "user": {"id": "U1"}, "view": SUBMISSIONS[name]})
    _assert_nothing_happened(resp, slack, db_path, before, caplog)
    if SUBMISSIONS[name].get("type") == "modal":
        body = ack_json(resp)
        assert body["response_action"] == "errors" and all(body["errors"].values())


def test_a_forged_home_event_without_a_user_is_ignored(forged_env):
    app, slack, *_ = forged_env
    assert event(app, {"type": "app_home_opened", "tab": "home"}, event_id="EvNoUser").status == 200
    assert event(app, {"tab": "home"}, event_id="EvNoType").status == 200
    assert not slack.calls_to("views.publish")


def test_the_last_resort_answers_a_listener_bug_in_one_line(forged_env, caplog, monkeypatch):
    """A bug no listener caught: the command gets a short ephemeral answer, the log one line with the
    file and line, and no traceback."""
    from bot.listeners.commands import vsm as commands

    app, slack, channel, db_path, before = forged_env

    def broken(text):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(commands, "parse", broken)
    caplog.set_level(logging.INFO)
    resp = command(app, "help", channel=channel)
    assert resp.status == 200
    assert ack_json(resp) == {
        "response_type": "ephemeral",
        "text": "Sorry, that failed on our side; it has been logged.",
    }
    [line] = [r for r in caplog.records if r.name == "vsm.bot"]
    assert line.exc_info is None
    assert (
        line.getMessage()
        == "command failed: RuntimeError: boom second line (test_slack_fuzz.py:"
        + str(broken.__code__.co_firstlineno + 1)
        + ")"
    )
    # A request that fails the signature check still gets 401 when an error is raised on the way.
    assert command(app, "help", channel=channel, secret="wrong").status == 401


def test_the_last_resort_tells_the_clicker_when_a_click_fails(forged_env, caplog, monkeypatch):
    """A click is acknowledged before its work: when that work fails unforeseen, the clicker hears
    so where they clicked, not silence."""
    from bot.listeners.actions import digest as actions

    app, slack, channel, *_ = forged_env

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(actions, "team_for_channel", broken)
    caplog.set_level(logging.INFO)
    answered = len(slack.responses())
    post = {"action_id": "post_digest", "type": "button", "value": "{}"}
    assert click(app, [post], channel=channel, response_url=f"{slack.url}/response/click").status == 200
    [reply] = slack.responses()[answered:]
    assert reply["text"] == "Sorry, that failed on our side; it has been logged."
    assert any(" failed: RuntimeError: boom" in r.getMessage() for r in caplog.records)


def test_a_failure_after_the_ack_is_one_line_and_a_short_answer(forged_env, caplog, monkeypatch):
    from bot.listeners.commands import vsm as commands

    app, slack, channel, *_ = forged_env

    def broken(*args, **kwargs):
        raise OSError("database disk image is malformed")

    monkeypatch.setattr(commands, "answer", broken)
    caplog.set_level(logging.INFO)
    answered = len(slack.responses())
    command(app, "cycle-time 30d", channel=channel, response_url=f"{slack.url}/response/late")
    [reply] = slack.responses()[answered:]
    assert reply["text"] == "Sorry, that failed on our side; it has been logged."
    [line] = [r for r in caplog.records if r.name == "vsm.bot"]
    assert line.exc_info is None
    assert line.getMessage().startswith("/vsm metric failed: OSError: database disk image is malformed (")


def test_an_error_inside_bolt_itself_is_a_400_and_one_line(forged_env, caplog, monkeypatch):
    from slack_bolt import App

    app, _, channel, *_ = forged_env

    def broken(self, req):
        raise KeyError("view")

    monkeypatch.setattr(App, "dispatch", broken)
    caplog.set_level(logging.INFO)
    assert command(app, "help", channel=channel).status == 400
    [line] = caplog.records
    assert line.exc_info is None and line.getMessage().startswith("request failed in Bolt: KeyError")


SCOPE_VIEWS = {
    "no view": None,
    "view a list": [1],
    "another form": {"callback_id": "north_star", "private_metadata": _meta()},
    "metadata not JSON": {"callback_id": "team_settings", "private_metadata": "{"},
    "options null": {
        "callback_id": "team_settings",
        "private_metadata": _meta(),
        "state": {"values": {"nudges": {"v": {"type": "checkboxes", "selected_options": None}}}},
    },
    "state a string": {"callback_id": "team_settings", "private_metadata": _meta(), "state": "x"},
    "values a list": {"callback_id": "team_settings", "private_metadata": _meta(), "state": {"values": [1]}},
    "options of nulls and numbers": {
        "callback_id": "team_settings",
        "private_metadata": _meta(),
        "state": {
            "values": {
                "stage:done": {
                    "v": {"type": "multi_static_select", "selected_options": [None, 5, {"value": 7}]}
                },
                "metrics": {"v": {"type": "multi_static_select", "selected_options": {"value": "wip"}}},
            }
        },
    },
    "selected option a string": {
        "callback_id": "team_settings",
        "private_metadata": _meta(),
        "state": {"values": {"day": {"v": {"type": "static_select", "selected_option": "mon"}}}},
    },
    "typed values not strings": {
        "callback_id": "team_settings",
        "private_metadata": _meta(),
        "state": {
            "values": {
                "jira_projects": {"scope_projects": {"type": "plain_text_input", "value": ["PAY"]}},
                "targets": {"v": {"type": "plain_text_input", "value": 8}},
                "time": {"v": {"type": "timepicker", "selected_time": None}},
            }
        },
    },
    "metadata of another opener": {"callback_id": "team_settings", "private_metadata": _meta(by="U2")},
    "metadata with no channel": {"callback_id": "team_settings", "private_metadata": _meta(channel=None)},
    "metadata naming no team": {
        "callback_id": "team_settings",
        "private_metadata": _meta(team=["x"], new="yes"),
        "state": {"values": {"targets": {"v": {"type": "plain_text_input", "value": "wip = 8\nnope"}}}},
    },
}


@pytest.mark.parametrize("name", list(SCOPE_VIEWS))
def test_a_forged_scope_redraw_writes_nothing_and_never_crashes(forged_env, name, caplog):
    """Enter in the form's Jira projects redraws the open form; whatever shape the payload has, it
    writes nothing and is refused or answered by the listener itself, not the last resort."""
    app, slack, channel, db_path, before = forged_env
    caplog.set_level(logging.INFO)
    action = {"action_id": "scope_projects", "type": "plain_text_input", "value": "PAY"}
    body = {"type": "block_actions", "user": {"id": "U1"}, "actions": [action], "view": SCOPE_VIEWS[name]}
    resp = interaction(app, body)
    assert resp.status == 200
    assert content(db_path) == before
    assert not [r.getMessage() for r in caplog.records if " failed: " in r.getMessage()]
