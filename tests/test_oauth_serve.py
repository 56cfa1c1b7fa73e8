"""An installable vsm-bot (issue 14): the real `vsm serve --http` process with SLACK_CLIENT_ID and
SLACK_CLIENT_SECRET and no bot token, against the loopback mock Slack.

Two workspaces install it side by side through `/slack/install` and `/slack/oauth_redirect` (a browser
played with ``requests``, as tests/test_oauth_flow.py does); each sets up a team of the same name from
Slack, and every Web API call made for a workspace carries that workspace's own token (the mock
records the ``Authorization`` of each call). Slack's ``app_uninstalled`` for one removes its tokens and
its scheduled jobs, its next request is told vsm-bot is not installed, the other carries on, and the
uninstalled one installing again finds its team as it left it.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlencode

import pytest
import test_slack_serve
from fakes.slack import MockSlack, Workspace
from slackkit import SECRET, command_body, initial_state, wait_for
from test_oauth_flow import CLIENT_ID, CLIENT_SECRET, Served, token_of
from test_slack_serve import FORM, free_port, run_vsm, vsm_serve

from bot import installs
from metrics.store import open_db

# Each workspace: its team id and name, the channel its team lives in, a member of that channel.
SPACES = {"T1": ("One", "C0ONE0001", "U1"), "T2": ("Two", "C0TWO0002", "U2")}


def oauth_env(slack_url: str) -> dict[str, str]:
    """The process's environment with no Slack settings of its own, plus an installable app's: the
    client id and secret, the signing secret, the Web API at ``slack_url``; no bot token."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
        "SLACK_CLIENT_ID": CLIENT_ID,
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack_url,
    }


@pytest.fixture
def installable(tmp_path, monkeypatch):
    """A running installable `vsm serve --http`, the browser and Slack that talk to it."""
    members = {channel: [user] for _, channel, user in SPACES.values()}
    monkeypatch.setattr(test_slack_serve, "serve_env", oauth_env)  # vsm_serve's environment
    with MockSlack(members=members) as slack, vsm_serve(tmp_path, slack.base_url) as served:
        slack.app = (CLIENT_ID, CLIENT_SECRET)  # oauth.v2.access checks the app's credentials
        browser = Served(f"http://{served.host}:{served.port}", slack, tmp_path / "s.db", None)
        yield served, browser, slack


def command(browser: Served, ws: str, text: str, *, response_url: str = ""):
    _, channel, user = SPACES[ws]
    body = command_body(text, channel=channel, user=user, response_url=response_url, team=ws)
    return browser.post(body, FORM)


def interact(browser: Served, ws: str, payload: dict):
    _, _, user = SPACES[ws]
    body = urlencode({"payload": json.dumps({**payload, "team": {"id": ws}, "user": {"id": user}})})
    return browser.post(body, FORM)


def opened_since(slack: MockSlack, before: int):
    """The one ``views.open`` made after the first ``before``."""
    [call] = wait_for(lambda: slack.calls_to("views.open")[before:], 10, lambda: slack.calls)
    return call


def set_up_team(browser: Served, slack: MockSlack, ws: str, name: str) -> None:
    """`/vsm settings` in the workspace's channel, Set up a team here, the form submitted as ``name``;
    the form is opened, and the team announced, with the workspace's own token."""
    _, channel, _ = SPACES[ws]
    token = f"Bearer {token_of(slack, ws)}"
    ack = command(browser, ws, "settings")
    assert ack.status_code == 200, ack.text
    button = ack.json()["blocks"][0]["accessory"]
    assert button["action_id"] == "setup_team"
    before = len(slack.calls_to("views.open"))
    click = {
        "type": "block_actions",
        "channel": {"id": channel},
        "response_url": f"{slack.url}/response/setup-{ws}",
        "trigger_id": "t",
        "actions": [{**button, "block_id": "no_team", "type": "button"}],
    }
    assert interact(browser, ws, click).status_code == 200
    opened = opened_since(slack, before)
    assert opened.auth == token
    view = opened.body["view"]
    state = initial_state(view)
    state["values"]["name"]["v"]["value"] = name
    submitted = interact(
        browser, ws, {"type": "view_submission", "view": {**view, "id": "V1", "state": state}}
    )
    assert (submitted.status_code, submitted.text) == (200, "")
    said = wait_for(
        lambda: [c for c in slack.calls_to("chat.postMessage") if c.body["channel"] == channel], 10
    )
    assert [c.auth for c in said] == [token]
    assert f"set up the team {name}" in said[0].body["text"]


def teams(db_path) -> list[tuple[str, str, str]]:
    db = open_db(db_path, create=False)
    try:
        return [
            tuple(r.values()) for r in db.query("select workspace, name, channel from teams order by 1, 2")
        ]
    finally:
        db.conn.close()


def test_two_workspaces_install_side_by_side_uninstall_and_install_again(installable):
    served, browser, slack = installable
    for ws, (name, _, _) in SPACES.items():
        page = browser.install(f"code-{ws}", Workspace(ws, name))
        assert page.status_code == 200 and "vsm-bot is installed" in page.text
        served.wait_for_log(f"workspace {ws} installed: digests and nudges planned for its 0 team(s)")
    assert [r["team_id"] for r in browser.rows()] == ["T1", "T2"]
    assert token_of(slack, "T1") != token_of(slack, "T2")

    # The same team name in both workspaces, each set up in its own, with its own token.
    for ws in SPACES:
        set_up_team(browser, slack, ws, "payments")
    assert teams(browser.db_path) == [("T1", "payments", "C0ONE0001"), ("T2", "payments", "C0TWO0002")]

    # /vsm teams lists the workspace's own teams only.
    for ws, other in (("T1", "T2"), ("T2", "T1")):
        url = f"{slack.url}/response/teams-{ws}"
        assert command(browser, ws, "teams", response_url=url).status_code == 200
        [reply] = wait_for(lambda url=url: slack.requests_to(url.removeprefix(slack.url)), 10)
        text = reply.body.decode()
        assert SPACES[ws][1] in text and SPACES[other][1] not in text

    # T1 uninstalls: Slack stops honouring its token, then sends the events.
    slack.revoke("T1")
    for i, event in enumerate(
        ({"type": "app_uninstalled"}, {"type": "tokens_revoked", "tokens": {"bot": ["UBOT"]}})
    ):
        assert browser.event("T1", event, f"Ev-gone-{i}").status_code == 200
    wait_for(lambda: [r["team_id"] for r in browser.rows()] == ["T2"], 10, browser.rows)
    log = served.wait_for_log("workspace T1: 2 jobs removed")  # its team's digest and nudges stop at once
    assert "workspace T1: tokens removed (1 installation)" in log
    assert "workspace T2: " not in log.split("workspace T1: tokens removed")[1]

    # T1's next request is told, as Slack shows it to the user (200, at the response URL); nothing runs.
    calls = len(slack.calls)
    refused = command(browser, "T1", "settings", response_url=f"{slack.url}/response/gone")
    assert (refused.status_code, refused.text) == (200, "")
    [told] = wait_for(lambda: slack.requests_to("/response/gone"), 10)
    assert json.loads(told.body)["text"] == installs.NOT_INSTALLED
    assert [c.method for c in slack.calls[calls:] if not c.method.startswith("response/")] == []
    assert teams(browser.db_path)[0] == ("T1", "payments", "C0ONE0001")  # its team and history stay

    # T2 carries on with its own token: its team's settings open.
    before = len(slack.calls_to("views.open"))
    assert command(browser, "T2", "settings").status_code == 200
    opened = opened_since(slack, before)
    assert opened.auth == f"Bearer {token_of(slack, 'T2')}"

    # T1 installs again: its team is back, scheduled, and served with the new token.
    assert browser.install("code-T1-again", Workspace("T1", "One")).status_code == 200
    served.wait_for_log("workspace T1 installed: digests and nudges planned for its 1 team(s)")
    before = len(slack.calls_to("views.open"))
    assert command(browser, "T1", "settings").status_code == 200
    opened = opened_since(slack, before)
    assert opened.auth == f"Bearer {token_of(slack, 'T1')}" and token_of(slack, "T1") in slack.tokens
    view = opened.body["view"]
    assert view["callback_id"] == "team_settings" and "payments" in json.dumps(view)
    assert "Set up" not in view["title"]["text"]

    text = served.log()
    for secret in [CLIENT_SECRET, *slack.tokens]:
        assert secret not in text


def test_a_workspace_that_never_installed_is_told_so(installable):
    served, browser, slack = installable
    assert browser.install("code-T1", Workspace("T1", "One")).status_code == 200
    url = f"{slack.url}/response/nine"
    body = command_body("settings", channel="C0NINE", user="U9", response_url=url, team="T9")
    r = browser.post(body, FORM)
    assert (r.status_code, r.text) == (200, "")
    [told] = wait_for(lambda: slack.requests_to("/response/nine"), 10)
    assert json.loads(told.body)["text"] == installs.NOT_INSTALLED
    # Without a response URL to answer at, the answer itself says so.
    assert (browser.command("T9").status_code, browser.command("T9").text) == (200, installs.NOT_INSTALLED)
    assert slack.calls_to("views.open") == [] and slack.calls_to("chat.postMessage") == []
    assert "Although the app should be installed" in served.log()  # Bolt's line, no token in it


@pytest.mark.parametrize(
    ("extra", "args", "said"),
    [
        (
            {"SLACK_BOT_TOKEN": "xoxb-1"},
            ["--http"],
            "both SLACK_BOT_TOKEN and SLACK_CLIENT_ID and SLACK_CLIENT_SECRET",
        ),
        ({}, [], "needs HTTP mode (`vsm serve --http`)"),
        ({"SLACK_APP_TOKEN": "xapp-1"}, [], "needs HTTP mode (`vsm serve --http`)"),
        ({"SLACK_CLIENT_SECRET": ""}, ["--http"], "SLACK_CLIENT_SECRET is not set"),
        ({"SLACK_CLIENT_ID": ""}, ["--http"], "SLACK_CLIENT_ID is not set"),
        ({"SLACK_SIGNING_SECRET": ""}, ["--http"], "SLACK_SIGNING_SECRET is not set"),
    ],
)
def test_settings_at_odds_are_one_line_and_change_nothing(tmp_path, extra, args, said):
    env = {**oauth_env("http://127.0.0.1:9/"), **extra}
    db = tmp_path / "x.db"
    proc = run_vsm("serve", *args, "--port", str(free_port()), "--db", str(db), env=env, cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and said in lines[0], err
    assert lines[0].startswith("vsm: ") and CLIENT_SECRET not in err
    assert not db.exists()
