"""An installable vsm-bot (issue 14): the real `vsm serve --http` process with SLACK_CLIENT_ID and
SLACK_CLIENT_SECRET and no bot token, against the loopback mock Slack.

Two workspaces install it side by side through `/slack/install` and `/slack/oauth_redirect` (a browser
played with ``requests``, as tests/test_oauth_flow.py does); each sets up a team of the same name from
Slack, and every Web API call made for a workspace carries that workspace's own token (the mock
records the ``Authorization`` of each call). Slack's ``app_uninstalled`` for one removes its tokens and
its scheduled jobs, its next request is told vsm-bot is not installed, the other carries on, and the
uninstalled one installing again finds its team as it left it.

The installation's life besides (issue 14 review): a restarted `vsm serve` sends each installed
workspace's due digest with that workspace's own token; a workspace whose token Slack calls dead (its
uninstall event was missed) is uninstalled as the event would have done; a redelivered or late
``app_uninstalled`` leaves a reinstall alone; an org-wide install's event that does not say so is
warned about; and in single-workspace mode an uninstall stops the jobs and deletes nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from builders import team
from fakes.slack import Call, MockSlack, Workspace
from slackkit import SECRET, command_body, initial_state, signed, wait_for
from test_oauth_flow import CLIENT_ID, CLIENT_SECRET, Served, token_of
from test_slack_serve import FORM, free_port, post, run_vsm, vsm_serve

from bot import ids, installs
from metrics.store import open_db
from metrics.teams import create_team

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


def serving(tmp_path, slack: MockSlack):
    """An installable `vsm serve --http` on ``tmp_path``'s database, against ``slack``."""
    return vsm_serve(tmp_path, slack.base_url, env=oauth_env(slack.base_url))


def browser_of(served, slack: MockSlack, tmp_path) -> Served:
    """The browser (and Slack's event sender) talking to ``served``."""
    return Served(f"http://{served.host}:{served.port}", slack, tmp_path / "s.db", None)


def mock_slack() -> MockSlack:
    """The Slack of these tests: each workspace's channel with its member; an app's credentials that
    oauth.v2.access checks."""
    slack = MockSlack(members={channel: [user] for _, channel, user in SPACES.values()})
    slack.app = (CLIENT_ID, CLIENT_SECRET)
    return slack


@pytest.fixture
def installable(tmp_path):
    """A running installable `vsm serve --http`, the browser and Slack that talk to it."""
    with mock_slack() as slack, serving(tmp_path, slack) as served:
        yield served, browser_of(served, slack, tmp_path), slack


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


def open_setup_form(browser: Served, slack: MockSlack, ws: str) -> Call:
    """`/vsm settings` in the workspace's channel, then Set up a team here: the ``views.open`` call."""
    _, channel, _ = SPACES[ws]
    ack = command(browser, ws, "settings")
    assert ack.status_code == 200, ack.text
    button = ack.json()["blocks"][0]["accessory"]
    assert button["action_id"] == ids.SETUP_TEAM
    before = len(slack.calls_to("views.open"))
    click = {
        "type": "block_actions",
        "channel": {"id": channel},
        "response_url": f"{slack.url}/response/setup-{ws}",
        "trigger_id": "t",
        "actions": [{**button, "block_id": "no_team", "type": "button"}],
    }
    assert interact(browser, ws, click).status_code == 200
    return opened_since(slack, before)


def set_up_team(browser: Served, slack: MockSlack, ws: str, name: str) -> None:
    """`/vsm settings` in the workspace's channel, Set up a team here, the form submitted as ``name``;
    the form is opened, and the team announced, with the workspace's own token."""
    _, channel, _ = SPACES[ws]
    token = f"Bearer {token_of(slack, ws)}"
    opened = open_setup_form(browser, slack, ws)
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


def digests(slack: MockSlack) -> list[tuple[str, str | None]]:
    """(channel, Authorization) of every scheduled digest posted (its metadata says so)."""
    return sorted(
        (c.body["channel"], c.auth)
        for c in slack.calls_to("chat.postMessage")
        if ((c.body.get("metadata") or {}).get("event_payload") or {}).get("kind") == "digest"
    )


@contextlib.contextmanager
def installed_then_restarted(
    tmp_path, slack: MockSlack, while_down: Callable[[], None] = lambda: None, *, rotating: bool = False
):
    """Each workspace of SPACES has a team ``payments`` whose weekly digest was due two minutes ago
    (by the real clock, which `vsm serve` runs on), installs vsm-bot through the browser, and `vsm
    serve` is stopped and started again: at start it catches up each installed workspace's due digest.
    Yields the restarted server and its browser."""
    due = datetime.now(UTC) - timedelta(minutes=2)
    digest = {"day": due.strftime("%a").lower(), "time": due.strftime("%H:%M"), "period_days": 28}
    db = open_db(tmp_path / "s.db")
    for ws, (_, channel, _) in SPACES.items():
        create_team(db, team(name="payments", channel=channel, digest=digest), who="U0", ws=ws)
    db.conn.close()
    with serving(tmp_path, slack) as first:
        browser = browser_of(first, slack, tmp_path)
        for ws, (name, _, _) in SPACES.items():
            assert browser.install(f"code-{ws}", Workspace(ws, name, rotating=rotating)).status_code == 200
            first.wait_for_log(f"workspace {ws} installed: digests and nudges planned for its 1 team(s)")
    assert digests(slack) == []  # installing plans the next digests; the one due was missed
    while_down()  # what happens while vsm serve is stopped
    with serving(tmp_path, slack) as served:
        yield served, browser_of(served, slack, tmp_path)


def test_a_restarted_vsm_serve_sends_each_installed_workspaces_due_digest_with_its_own_token(tmp_path):
    with mock_slack() as slack, installed_then_restarted(tmp_path, slack) as (served, browser):
        sent = wait_for(lambda: len(digests(slack)) == 2 and digests(slack), 30, served.log)
        assert sent == [
            ("C0ONE0001", f"Bearer {token_of(slack, 'T1')}"),
            ("C0TWO0002", f"Bearer {token_of(slack, 'T2')}"),
        ]
        db = open_db(browser.db_path, create=False)
        try:
            ledger = sorted((r["key"].split("/")[0], r["state"]) for r in db["deliveries"].rows)
        finally:
            db.conn.close()
        assert ledger == [("T1:payments", "sent"), ("T2:payments", "sent")]
        for secret in [CLIENT_SECRET, *slack.tokens]:
            assert secret not in served.log()


def test_a_token_slack_calls_dead_is_the_missed_uninstall_its_installation_and_jobs_go(tmp_path):
    """vsm serve was down when T1 uninstalled: no event came. Its digest fails with ``token_revoked``,
    Slack's ``auth.test`` confirms the token dead, and T1 is uninstalled as the event would have
    done, once; T2 is served."""
    revoked = installed_then_restarted  # T1 uninstalls while vsm serve is down: its tokens revoked
    with mock_slack() as slack, revoked(tmp_path, slack, lambda: slack.revoke("T1")) as (served, browser):
        log = served.wait_for_log("workspace T1: 2 jobs removed", 30)
        assert "Slack refused the bot token of workspace T1 (token_revoked)" in log
        assert "workspace T1: its bot token is dead: taken as an uninstall" in log
        assert "workspace T1: tokens removed (1 installation)" in log
        assert [r["team_id"] for r in browser.rows()] == ["T2"]
        tried = wait_for(lambda: len(digests(slack)) == 2 and digests(slack), 10, served.log)
        assert tried == [
            ("C0ONE0001", f"Bearer {token_of(slack, 'T1')}"),  # refused: token_revoked
            ("C0TWO0002", f"Bearer {token_of(slack, 'T2')}"),
        ]
        assert "C0ONE0001" not in slack.posted and len(slack.posted["C0TWO0002"]) == 1
        # T1's next request is told vsm-bot is not installed; its team and history stay.
        assert (browser.command("T1").status_code, browser.command("T1").text) == (
            200,
            installs.NOT_INSTALLED,
        )
        assert teams(browser.db_path)[0] == ("T1", "payments", "C0ONE0001")
        db = open_db(browser.db_path, create=False)
        try:
            failed = [(r["key"], r["error"]) for r in db["deliveries"].rows if r["state"] == "failed"]
        finally:
            db.conn.close()
        assert len(failed) == 1 and failed[0][1] == "token_revoked"  # one, not one per run
        assert served.log().count("Slack refused the bot token") == 1
        for secret in [CLIENT_SECRET, *slack.tokens]:
            assert secret not in served.log()


def test_with_rotation_a_missed_uninstall_shows_as_a_refused_renewal_and_uninstalls(tmp_path):
    """Token rotation on: T1 uninstalled while vsm serve was down and its token expired. The due digest
    asks for a renewal, Slack refuses it for good (invalid_refresh_token), and that is the missed
    uninstall: T1's installation and jobs go, nothing is posted with a dead token, T2 is served."""

    def uninstalled_and_expired() -> None:
        slack.revoke("T1")
        db = open_db(tmp_path / "s.db", create=False)
        with db.conn:
            db.execute(
                "update installations set bot_token_expires_at = ? where team_id = 'T1'", [int(time.time())]
            )
        db.conn.close()

    with (
        mock_slack() as slack,
        installed_then_restarted(tmp_path, slack, uninstalled_and_expired, rotating=True) as (
            served,
            browser,
        ),
    ):
        log = served.wait_for_log("workspace T1: 2 jobs removed", 30)
        assert (
            "workspace T1: Slack refuses to renew its token (invalid_refresh_token): taken as an uninstall"
            in log
        )
        assert [r["team_id"] for r in browser.rows()] == ["T2"]
        sent = wait_for(lambda: digests(slack), 10, served.log)
        assert [channel for channel, _ in sent] == ["C0TWO0002"]  # nothing tried with T1's dead token
        assert teams(browser.db_path)[0] == ("T1", "payments", "C0ONE0001")  # its team stays


def test_a_dead_token_answer_slack_does_not_confirm_uninstalls_nothing(tmp_path):
    """``invalid_auth`` on a post is also Slack's answer to an IP allowlist, or for a while in an
    incident: while ``auth.test`` says the token works, T1 keeps its installation and jobs."""
    with mock_slack() as slack:
        slack.channel_errors["C0ONE0001"] = "invalid_auth"  # the post refused; the token itself alive
        with installed_then_restarted(tmp_path, slack) as (served, browser):
            log = served.wait_for_log("does not confirm its token dead: kept", 30)
            assert "Slack refused the bot token of workspace T1 (invalid_auth)" in log
            assert sorted(r["team_id"] for r in browser.rows()) == ["T1", "T2"]
            assert "tokens removed" not in served.log() and "jobs removed" not in served.log()
            assert slack.calls_to("auth.test")  # Slack was asked before anything was decided


def test_a_redelivered_or_late_uninstall_leaves_a_reinstall_alone(tmp_path):
    """Slack redelivers an event it thinks was missed (after 1 and 5 minutes): one already handled is
    skipped, and after a restart (which forgets what was seen) an old event removes only the
    installations made before it, so a workspace that installed again keeps its new token and jobs."""
    with mock_slack() as slack:
        with serving(tmp_path, slack) as served:
            browser = browser_of(served, slack, tmp_path)
            assert browser.install("code-T1", Workspace("T1", "One")).status_code == 200
            [first] = browser.rows()
            gone = {"type": "app_uninstalled"}
            assert browser.event("T1", gone, "Ev-old", at=first["installed_at"]).status_code == 200
            wait_for(lambda: browser.rows() == [], 10, browser.rows)
            served.wait_for_log("workspace T1: tokens removed (1 installation)")
            # Installed again, in a later second than the event's (Slack stamps whole seconds).
            wait_for(lambda: time.time() > math.ceil(first["installed_at"]), 5)
            assert browser.install("code-T1-again", Workspace("T1", "One")).status_code == 200
            served.wait_for_log("workspace T1 installed")
            [again] = browser.rows()
            assert again["bot_token"] != first["bot_token"]
            # Slack's retry of the event it thinks we missed: skipped.
            assert browser.event("T1", gone, "Ev-old", at=first["installed_at"]).status_code == 200
            served.wait_for_log("app_uninstalled of workspace T1 delivered again: already handled")
            assert browser.rows() == [again]
        with serving(tmp_path, slack) as served:  # restarted: the events seen are forgotten
            browser = browser_of(served, slack, tmp_path)
            assert browser.event("T1", gone, "Ev-old", at=first["installed_at"]).status_code == 200
            log = served.wait_for_log("workspace T1: no tokens removed: installed again since")
            assert browser.rows() == [again]
            assert "jobs removed" not in log
            helped = browser.command("T1")  # served with its new token: /vsm help answers
            assert helped.status_code == 200 and "vsm-bot" in helped.text
            assert slack.calls_to("auth.test")[-1].auth == f"Bearer {again['bot_token']}"


def test_an_org_wide_uninstall_whose_event_does_not_say_so_is_warned_about(installable):
    served, browser, slack = installable
    org = Workspace("TG", "Grid", enterprise_id="E1", enterprise_name="Big Co", enterprise_install=True)
    assert browser.install("code-org", org).status_code == 200
    # The event names one workspace of the org and its enterprise, without is_enterprise_install.
    assert browser.event("TX", {"type": "app_uninstalled"}, "Ev-grid", enterprise_id="E1").status_code == 200
    log = served.wait_for_log("had no installation of its own to remove")
    assert "workspace TX: no tokens removed: none stored" in log
    assert (
        "workspace TX of enterprise E1 had no installation of its own to remove; enterprise E1's org-wide "
        "installation stays"
    ) in log
    assert [(r["enterprise_id"], r["is_enterprise_install"]) for r in browser.rows()] == [("E1", 1)]


def test_single_workspace_mode_an_uninstall_stops_its_jobs_and_deletes_nothing(tmp_path):
    db = open_db(tmp_path / "s.db")
    create_team(db, team(name="payments", channel="C1"), who="U0")
    db.conn.close()
    with MockSlack() as slack, vsm_serve(tmp_path, slack.base_url) as served:
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": "T1",
                "api_app_id": "A1",
                "event_id": "Ev-gone",
                "event_time": int(time.time()),
                "event": {"type": "app_uninstalled"},
            }
        )
        assert post(served.url, body, signed(body, content_type="application/json")).status_code == 200
        log = served.wait_for_log("the single workspace: 2 jobs removed")
        assert (
            "the single workspace: its digests, nudges and verdicts stop until vsm serve is restarted" in log
        )
        db = open_db(tmp_path / "s.db", create=False)
        try:
            assert [t["name"] for t in db["teams"].rows] == ["payments"]
        finally:
            db.conn.close()
