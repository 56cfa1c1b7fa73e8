"""Installing vsm-bot in any workspace (issue 14, bot/installs.py): Slack's OAuth v2 over HTTP, end to end.

A Bolt app with the OAuth settings of ``bot.installs`` is served by the production server
(``bot.serve.http_server``: waitress, the signature front), against the loopback mock Slack. A browser
is played with ``requests``: the install page, Slack's redirect back with a code, the pages it ends on.
The app is a minimal one (one ``/vsm`` listener that posts a message with the request's client, and
Bolt's token revocation listeners) rather than ``create_app``: ``create_app`` builds a one-workspace
app on a bot token, and what is tested here is which token Bolt puts in each request's context,
which no vsm listener changes (tests/test_oauth_serve.py runs the real `vsm serve`). ``serve.http_server``
serves the install pages beside the events (``installs.with_install_pages``) as ``vsm serve`` does:
waitress, its limits and the signature front are the production ones.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from fakes.server import Fault
from fakes.slack import TOKEN_SECONDS, MockSlack, Workspace
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slackkit import SECRET, signed, wait_for

from bot import installs, serve
from bot.store import Store
from metrics.store import open_db
from metrics.workspace import workspace_of
from metrics.workspace_rows import INSTALLED_AS, installed

CLIENT_ID = "111.222"
CLIENT_SECRET = "client-secret-never-logged"
COOKIE = "slack-app-oauth-state"


class Served:
    """The app behind the production HTTP server: its base URL, the mock Slack, the database."""

    def __init__(self, url: str, slack: MockSlack, db_path, app: App) -> None:
        self.url, self.slack, self.db_path, self.app = url, slack, db_path, app

    def install_page(self) -> tuple[str, dict[str, list[str]], str]:
        """GET /slack/install: the page, the query of its Add to Slack link, and the state cookie. No
        cache may keep it: its link carries a one-time state."""
        r = requests.get(self.url + installs.INSTALL_PATH, timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["Cache-Control"] == "no-store"
        link = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', r.text)
        assert link, r.text
        cookie = re.match(rf"{COOKIE}=([^;]+);", r.headers["Set-Cookie"])
        assert cookie, r.headers["Set-Cookie"]
        return r.text, parse_qs(urlsplit(unescape(link.group(1))).query), cookie.group(1)

    def redirect(self, query: dict, cookie: str | None = None) -> requests.Response:
        """Slack sends the browser back to /slack/oauth_redirect with ``query``."""
        headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
        return requests.get(
            self.url + installs.REDIRECT_PATH + "?" + urlencode(query), headers=headers, timeout=10
        )

    def install(self, code: str, workspace: Workspace) -> requests.Response:
        """A user opens the install page, approves in ``workspace``, and comes back with ``code``."""
        _, query, cookie = self.install_page()
        self.slack.grant(code, workspace)
        return self.redirect({"code": code, "state": query["state"][0]}, cookie)

    def rows(self) -> list[dict]:
        db = open_db(self.db_path)
        try:
            return list(db.query("select * from installations order by team_id"))
        finally:
            db.conn.close()

    def states(self) -> list[str]:
        db = open_db(self.db_path)
        try:
            return [r["state"] for r in db.query("select state from oauth_states")]
        finally:
            db.conn.close()

    def post(self, body: str, content_type: str) -> requests.Response:
        headers = {k: v[0] for k, v in signed(body, content_type=content_type).items()}
        return requests.post(self.url + serve.EVENTS_PATH, data=body.encode(), headers=headers, timeout=10)

    def command(self, team_id: str, enterprise_id: str | None = None) -> requests.Response:
        form = {"command": "/vsm", "text": "help", "team_id": team_id, "user_id": "U1", "channel_id": "C1"}
        if enterprise_id:
            form["enterprise_id"] = enterprise_id
        return self.post(urlencode(form), "application/x-www-form-urlencoded")

    def event(
        self, team_id: str, event: dict, event_id: str, at: float | None = None, **envelope: object
    ) -> requests.Response:
        """The event as Slack sends it, stamped ``at`` (Slack's ``event_time``, whole seconds, rounded
        down as Slack stamps it; now by default: an uninstall within the second of an install is one
        the event may be about, ``Installations.forget``'s allowance). ``envelope``: more fields (``enterprise_id``...)."""
        body = {
            "type": "event_callback",
            "team_id": team_id,
            "api_app_id": "A1",
            "event_id": event_id,
            "event_time": int(
                time.time() if at is None else at
            ),  # whole seconds, rounded down, as Slack stamps it
            "event": event,
            **envelope,
        }
        return self.post(json.dumps(body), "application/json")


@pytest.fixture
def served(tmp_path):
    slack = MockSlack()
    slack.app = (CLIENT_ID, CLIENT_SECRET)
    db_path = tmp_path / "vsm.db"
    settings = installs.oauth_settings(
        db_path, CLIENT_ID, CLIENT_SECRET, installs.manifest_scopes(), api_url=slack.base_url
    )
    app = App(
        signing_secret=SECRET,
        client=WebClient(base_url=slack.base_url),
        oauth_flow=installs.oauth_flow(settings, slack.base_url),
        process_before_response=True,
        user_facing_authorize_error_message=installs.NOT_INSTALLED,
    )

    @app.command("/vsm")
    def vsm(ack, client, context):
        ack()
        client.chat_postMessage(channel="C1", text=f"hello {context.team_id}")

    app.enable_token_revocation_listeners()
    server = serve.http_server(app, SECRET, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.effective_port}", slack, db_path, app)
    finally:
        server.close()
        slack.close()


def server_log(caplog) -> str:
    """Every line the server side logged at any level (the test's own HTTP client left out)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("urllib3"))


def token_of(slack: MockSlack, team_id: str) -> str:
    """The last bot token the mock issued for ``team_id``."""
    return [t for t, w in slack.tokens.items() if w.team_id == team_id][-1]


def test_the_install_page_links_to_slack_with_the_client_id_the_manifest_scopes_and_a_one_time_state(served):
    page, query, cookie = served.install_page()
    assert "Add to Slack" in page
    assert "<title>vsm-bot: Install vsm-bot</title>" in page and "Slack App Installation" not in page
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"][0].split(",") == installs.manifest_scopes()
    assert "channels:read" in installs.manifest_scopes()  # the manifest's list, read as it is
    assert "user_scope" not in query or query["user_scope"] == [""]  # vsm-bot asks no user scopes
    assert query["state"] == [cookie]  # bound to this browser by its cookie
    assert served.states() == [cookie]
    _, again, _ = served.install_page()
    assert again["state"] != query["state"]  # each page its own state
    assert sorted(served.states()) == sorted([cookie, again["state"][0]])


def test_a_good_code_is_exchanged_stored_and_its_state_consumed_once(served, caplog):
    caplog.set_level(logging.DEBUG)
    _, query, cookie = served.install_page()
    state = query["state"][0]
    served.slack.grant("code-acme", Workspace("TA", "Acme <Corp>", scope="commands,chat:write"))
    r = served.redirect({"code": "code-acme", "state": state}, cookie)
    assert r.status_code == 200, r.text
    assert "vsm-bot is installed" in r.text and "Acme &lt;Corp&gt;" in r.text  # the name escaped
    assert r.headers["Cache-Control"] == "no-store"
    assert f"{COOKIE}=deleted" in r.headers["Set-Cookie"]
    [exchange] = served.slack.calls_to("oauth.v2.access")
    assert exchange.body["code"] == "code-acme"
    [row] = served.rows()
    assert (row["client_id"], row["enterprise_id"], row["team_id"], row["team_name"]) == (
        CLIENT_ID,
        "",
        "TA",
        "Acme <Corp>",
    )
    assert row["bot_token"] == token_of(served.slack, "TA")
    assert (row["bot_id"], row["bot_user_id"], row["user_id"]) == ("BTA", "UBOT", "UINSTALLER")
    assert row["bot_scopes"] == "commands,chat:write"
    assert row["bot_refresh_token"] is None and row["bot_token_expires_at"] is None
    assert served.states() == []  # consumed

    # The same state again, even with a fresh code and its cookie: refused, nothing changes.
    served.slack.grant("code-acme-2", Workspace("TA", "Acme"))
    again = served.redirect({"code": "code-acme-2", "state": state}, cookie)
    assert again.status_code == 401
    assert "already used, or is more than ten minutes old" in again.text
    assert served.rows() == [row]
    assert len(served.slack.calls_to("oauth.v2.access")) == 1  # the code was never sent to Slack
    text = server_log(caplog)
    assert "install failed ('invalid_state')" in text
    for secret in (CLIENT_SECRET, row["bot_token"], state, "code-acme"):
        assert secret not in text


def test_an_enterprise_grid_workspace_is_stored_with_its_enterprise_id(served):
    r = served.install(
        "code-grid", Workspace("TG", "Grid team", enterprise_id="E1", enterprise_name="Big Co")
    )
    assert r.status_code == 200, r.text
    [row] = served.rows()
    assert (row["enterprise_id"], row["team_id"], row["enterprise_name"]) == ("E1", "TG", "Big Co")
    assert row["is_enterprise_install"] == 0


@pytest.mark.parametrize(
    ("case", "status", "words", "logged"),
    [
        ("no state", 400, "did not start in this browser", "invalid_browser"),
        ("no cookie", 400, "did not start in this browser", "invalid_browser"),
        ("unknown state", 401, "already used, or is more than ten minutes old", "invalid_state"),
        ("denied", 200, "You cancelled the installation", "access_denied"),
        ("bad code", 401, "it was already used, or it is more than ten minutes old", "invalid_code"),
        ("no code", 401, "without an authorisation code", "missing_code"),
        ("odd error", 200, "Slack answered <code>&lt;b&gt;x&lt;/b&gt;</code>", "'<b>x</b>'"),
    ],
)
def test_a_refused_redirect_gets_a_clear_page_a_line_without_secrets_and_nothing_stored(
    served, caplog, case, status, words, logged
):
    caplog.set_level(logging.DEBUG)
    _, query, cookie = served.install_page()
    state = query["state"][0]
    served.slack.grant("code-good", Workspace("TA", "Acme"))  # a code that would work, for the state cases
    asked = {
        "no state": ({"code": "code-good"}, cookie),
        "no cookie": ({"code": "code-good", "state": state}, None),
        "unknown state": ({"code": "code-good", "state": "forged"}, "forged"),
        "denied": ({"error": "access_denied", "state": state}, cookie),
        "bad code": ({"code": "code-not-granted", "state": state}, cookie),
        "no code": ({"state": state}, cookie),
        "odd error": ({"error": "<b>x</b>", "state": state}, cookie),
    }[case]
    r = served.redirect(*asked)
    assert r.status_code == status, r.text
    assert words in r.text
    assert f'href="{installs.INSTALL_PATH}"' in r.text  # the way to start again
    assert r.headers["Cache-Control"] == "no-store"
    assert served.rows() == []
    exchanged = [c.body.get("code") for c in served.slack.calls_to("oauth.v2.access")]
    assert exchanged == (["code-not-granted"] if case == "bad code" else [])
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("vsm.installs")]
    assert any(logged in line for line in lines), lines
    if case == "bad code":
        assert "oauth.v2.access failed: invalid_code" in lines
    for secret in (CLIENT_SECRET, state, "code-good", "code-not-granted", "forged"):
        assert secret not in server_log(caplog)


def test_two_workspaces_side_by_side_each_request_gets_its_own_workspace_token(served):
    assert served.install("code-a", Workspace("TA", "Acme")).status_code == 200
    assert served.install("code-b", Workspace("TB", "Beta", enterprise_id="E1")).status_code == 200
    assert [(r["enterprise_id"], r["team_id"]) for r in served.rows()] == [("", "TA"), ("E1", "TB")]
    tokens = {team: token_of(served.slack, team) for team in ("TA", "TB")}
    assert tokens["TA"] != tokens["TB"]
    for team, enterprise in (("TA", None), ("TB", "E1"), ("TA", None)):
        before = len(served.slack.calls_to("chat.postMessage"))
        r = served.command(team, enterprise)
        assert r.status_code == 200, r.text
        posted = served.slack.calls_to("chat.postMessage")[before:]
        assert [(c.auth, c.body["text"]) for c in posted] == [(f"Bearer {tokens[team]}", f"hello {team}")]
    # auth.test was asked once per token (at install, then on the first request), not on every request
    checked = [c.auth for c in served.slack.calls_to("auth.test")]
    assert sorted(checked) == sorted(f"Bearer {t}" for t in tokens.values() for _ in range(2))


def test_a_request_from_a_workspace_with_no_installation_is_told_so_and_nothing_runs(served):
    assert served.install("code-a", Workspace("TA", "Acme")).status_code == 200
    r = served.command("TZ")
    # Slack shows a slash command's 200 body to the user; a 401 would be "dispatch_failed".
    assert (r.status_code, r.text) == (200, installs.NOT_INSTALLED)
    assert served.slack.calls_to("chat.postMessage") == []
    # the same team id under another enterprise is another workspace
    assert served.command("TA", "E9").text == installs.NOT_INSTALLED
    assert served.slack.calls_to("chat.postMessage") == []
    # a request for an installed workspace but not signed by Slack never reaches Bolt
    body = urlencode(
        {"command": "/vsm", "text": "help", "team_id": "TA", "user_id": "U1", "channel_id": "C1"}
    )
    headers = {
        k: v[0]
        for k, v in signed(body, secret="wrong", content_type="application/x-www-form-urlencoded").items()
    }
    forged = requests.post(served.url + serve.EVENTS_PATH, data=body, headers=headers, timeout=10)
    assert forged.status_code == 401
    assert served.slack.calls_to("chat.postMessage") == []


def test_an_expired_rotating_token_is_renewed_through_slack_api_url_and_the_new_one_stored(served):
    assert served.install("code-r", Workspace("TR", "Rotor", rotating=True)).status_code == 200
    [row] = served.rows()
    first = row["bot_token"]
    assert first.startswith("xoxe.xoxb-") and row["bot_refresh_token"].startswith("xoxe-1-")
    assert abs(row["bot_token_expires_at"] - (time.time() + TOKEN_SECONDS)) < 60
    # Twelve hours on: the token has expired.
    db = open_db(served.db_path)
    with db.conn:
        db.execute("update installations set bot_token_expires_at = ?", [int(time.time()) - 60])
    db.conn.close()
    r = served.command("TR")
    assert r.status_code == 200, r.text
    refresh = [c for c in served.slack.calls_to("oauth.v2.access") if c.body.get("grant_type")]
    assert [(c.body["grant_type"], c.body["refresh_token"]) for c in refresh] == [
        ("refresh_token", row["bot_refresh_token"])
    ]
    [renewed] = served.rows()
    second = token_of(served.slack, "TR")
    assert second != first
    assert renewed["bot_token"] == second  # stored, in place of the old one
    assert renewed["bot_refresh_token"] not in (None, row["bot_refresh_token"])
    assert renewed["bot_token_expires_at"] > time.time() + TOKEN_SECONDS - 60
    [post] = served.slack.calls_to("chat.postMessage")
    assert post.auth == f"Bearer {second}"  # the request itself ran on the new token
    # The next request finds a fresh token: no renewal.
    assert served.command("TR").status_code == 200
    assert len([c for c in served.slack.calls_to("oauth.v2.access") if c.body.get("grant_type")]) == 1


def test_uninstall_removes_that_workspace_installation_only(served):
    assert served.install("code-a", Workspace("TA", "Acme")).status_code == 200
    assert served.install("code-b", Workspace("TB", "Beta")).status_code == 200
    r = served.event("TA", {"type": "app_uninstalled"}, "Ev-uninstall")
    assert r.status_code == 200
    wait_for(lambda: [row["team_id"] for row in served.rows()] == ["TB"], 10, served.rows)
    assert served.command("TA").text == installs.NOT_INSTALLED
    assert served.command("TB").status_code == 200
    # installing again brings it back
    assert served.install("code-a2", Workspace("TA", "Acme")).status_code == 200
    assert [row["team_id"] for row in served.rows()] == ["TA", "TB"]


def test_a_state_is_consumed_once_by_redirects_racing_with_it(tmp_path):
    states = installs.OAuthStates(Store(tmp_path / "vsm.db"))
    for _ in range(5):
        state = states.issue()
        start = threading.Barrier(8)
        won: list[bool] = []

        def consume(state=state, start=start, won=won):
            start.wait()
            won.append(states.consume(state))

        threads = [threading.Thread(target=consume) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won) == [False] * 7 + [True]


def test_an_expired_state_is_refused_and_cleared(tmp_path):
    states = installs.OAuthStates(Store(tmp_path / "vsm.db"), expiration_seconds=-1)
    old = states.issue()
    assert states.consume(old) is False
    fresh = installs.OAuthStates(states.store)
    new = fresh.issue()
    assert [r["state"] for r in states.store.db.query("select state from oauth_states")] == [new]


def test_the_installations_live_in_the_project_database_private_and_in_wal(served):
    assert served.install("code-a", Workspace("TA", "Acme")).status_code == 200
    assert os.stat(served.db_path).st_mode & 0o777 == 0o600
    db = open_db(served.db_path, readonly=True)  # what read commands open: it reads them untouched
    try:
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert [r["team_id"] for r in db.query("select team_id from installations")] == ["TA"]
    finally:
        db.conn.close()


def test_manifest_scopes_reads_the_bot_list_only(tmp_path):
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(
        "oauth_config:\n  redirect_urls:\n    - https://x/slack/oauth_redirect\n  scopes:\n"
        "    user:\n      - search:read\n    bot:\n      - commands   # why\n\n      - chat:write\n"
        "settings:\n  event_subscriptions:\n    bot_events:\n      - app_home_opened\n"
    )
    assert installs.manifest_scopes(manifest) == ["commands", "chat:write"]
    manifest.write_text("oauth_config:\n  scopes:\n    user:\n      - search:read\n")
    with pytest.raises(installs.VsmError, match="no bot scopes"):
        installs.manifest_scopes(manifest)


def expire(served: Served, at: float | None = None) -> None:
    """The stored token expires at ``at`` (a minute ago by default): twelve hours have passed."""
    db = open_db(served.db_path)
    with db.conn:
        db.execute("update installations set bot_token_expires_at = ?", [int(at or time.time() - 60)])
    db.conn.close()


def renewals(slack: MockSlack) -> list[str]:
    """The refresh tokens sent to oauth.v2.access, in order."""
    return [c.body["refresh_token"] for c in slack.calls_to("oauth.v2.access") if c.body.get("grant_type")]


def test_requests_at_once_on_an_expired_token_renew_it_once_and_all_run_on_the_new_token(served, caplog):
    caplog.set_level(logging.DEBUG, logger="vsm.installs")
    assert served.install("code-r", Workspace("TR", "Rotor", rotating=True)).status_code == 200
    [row] = served.rows()
    expire(served)
    gate = threading.Event()
    served.slack.refresh_gate = gate  # Slack holds the renewal until the other requests are waiting
    answers: list[requests.Response] = []

    def command():
        answers.append(served.command("TR"))

    threads = [threading.Thread(target=command) for _ in range(3)]
    threads[0].start()
    wait_for(lambda: renewals(served.slack), 10, lambda: served.slack.calls)  # the first is renewing
    for t in threads[1:]:
        t.start()
    waiting = "token renewal in flight for team TR: waiting for it"
    wait_for(lambda: server_log(caplog).count(waiting) == 2, 10, lambda: server_log(caplog))
    gate.set()
    for t in threads:
        t.join(10)
    assert [(r.status_code, r.text) for r in answers] == [(200, "")] * 3  # none told "not installed"
    assert renewals(served.slack) == [row["bot_refresh_token"]]  # once: Slack revokes it when used
    new = token_of(served.slack, "TR")
    [stored] = served.rows()
    assert stored["bot_token"] == new
    posts = served.slack.calls_to("chat.postMessage")
    assert [p.auth for p in posts] == [f"Bearer {new}"] * 3  # the waiters used the token the first stored
    # Twelve hours on again: the stored refresh token is the live one (the old one was revoked on use).
    expire(served)
    assert served.command("TR").text == ""
    assert renewals(served.slack) == [row["bot_refresh_token"], stored["bot_refresh_token"]]
    assert served.slack.calls_to("chat.postMessage")[-1].auth == f"Bearer {token_of(served.slack, 'TR')}"


def test_renewed_tokens_that_cannot_be_saved_are_used_kept_and_saved_on_the_next_request(served, caplog):
    caplog.set_level(logging.DEBUG)
    assert served.install("code-r", Workspace("TR", "Rotor", rotating=True)).status_code == 200
    expire(served)
    [row] = served.rows()
    db = open_db(served.db_path)
    with db.conn:  # the database refuses the write (a full disk, say)
        db.execute(
            "create trigger no_save before update on installations begin select raise(abort, 'disk full'); end"
        )
    r = served.command("TR")
    assert (r.status_code, r.text) == (200, "")
    new = token_of(served.slack, "TR")
    assert served.slack.calls_to("chat.postMessage")[-1].auth == f"Bearer {new}"  # this request ran
    assert served.rows() == [row]  # not saved
    text = server_log(caplog)
    assert "token renewed by Slack for team TR but not saved (IntegrityError): kept in memory" in text
    with db.conn:
        db.execute("drop trigger no_save")
    db.conn.close()
    # The next request saves the kept tokens: no second renewal (Slack revoked the old refresh token).
    assert served.command("TR").text == ""
    assert renewals(served.slack) == [row["bot_refresh_token"]]
    [saved] = served.rows()
    assert saved["bot_token"] == new and saved["bot_refresh_token"] != row["bot_refresh_token"]
    assert served.slack.calls_to("chat.postMessage")[-1].auth == f"Bearer {new}"
    expire(served)  # and it renews from them
    assert served.command("TR").text == ""
    assert renewals(served.slack) == [row["bot_refresh_token"], saved["bot_refresh_token"]]
    text = server_log(caplog)
    for secret in (
        row["bot_token"],
        row["bot_refresh_token"],
        new,
        saved["bot_refresh_token"],
        CLIENT_SECRET,
    ):
        assert secret not in text


def test_a_renewal_that_cannot_reach_slack_goes_on_with_the_still_valid_token(served, caplog):
    caplog.set_level(logging.DEBUG)
    assert served.install("code-r", Workspace("TR", "Rotor", rotating=True)).status_code == 200
    expire(served, time.time() + 1800)  # half an hour left: renewal is due, the token still works
    [row] = served.rows()
    served.slack.fail("/oauth.v2.access", Fault(drop=True))  # the line drops mid-answer
    r = served.command("TR")
    assert (r.status_code, r.text) == (200, "")
    assert served.slack.calls_to("chat.postMessage")[-1].auth == f"Bearer {row['bot_token']}"
    assert served.rows() == [row]
    assert "token renewal for team TR: Slack not reached" in server_log(caplog)
    assert served.command("TR").text == ""  # Slack back: renewed now
    [renewed] = served.rows()
    assert renewed["bot_token"] == token_of(served.slack, "TR") != row["bot_token"]


def test_slack_unreachable_during_the_code_exchange_ends_on_a_page_and_nothing_is_stored(served, caplog):
    caplog.set_level(logging.DEBUG)
    _, query, cookie = served.install_page()
    served.slack.grant("code-x", Workspace("TA", "Acme"))
    served.slack.close()
    r = served.redirect({"code": "code-x", "state": query["state"][0]}, cookie)
    assert r.status_code == 502, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    assert "Slack could not be reached" in r.text and f'href="{installs.INSTALL_PATH}"' in r.text
    assert f"{COOKIE}=deleted" in r.headers["Set-Cookie"]
    assert served.rows() == [] and served.states() == []  # the state was used: the user starts again
    lines = [
        (rec.name, rec.getMessage())
        for rec in caplog.records
        if rec.levelno >= logging.WARNING and not rec.name.startswith("urllib3")
    ]
    assert lines == [("vsm.installs", "install failed ('slack_unreachable': _SlackUnreachable): HTTP 502")], (
        lines
    )
    assert "code-x" not in server_log(caplog) and query["state"][0] not in server_log(caplog)


TRY_AGAIN = "Slack could not complete the install just now: try again in a minute"


@pytest.mark.parametrize(
    ("case", "status", "logged"),
    [
        ("exchange HTTP 500", 502, "oauth.v2.access failed: HTTP 500"),
        ("exchange HTTP 429", 503, "oauth.v2.access failed: HTTP 429"),
        ("exchange ratelimited", 503, "oauth.v2.access failed: ratelimited"),
        ("exchange internal_error", 502, "oauth.v2.access failed: internal_error"),
        ("exchange service_unavailable", 503, "oauth.v2.access failed: service_unavailable"),
        ("exchange request_timeout", 502, "oauth.v2.access failed: request_timeout"),
        ("auth.test fatal_error", 502, "auth.test failed: fatal_error"),
        ("auth.test HTTP 503", 503, "auth.test failed: HTTP 503"),
    ],
)
def test_slacks_own_trouble_during_the_exchange_asks_to_try_again_and_blames_no_credentials(
    served, caplog, case, status, logged
):
    """Slack failing (a 5xx, a rate limit, its own error codes), on the code exchange or on the
    ``auth.test`` of the new token after it: a page saying to try again in a minute with Retry-After,
    one line naming Slack's status or code, nothing stored, nothing of the code or a token logged."""
    caplog.set_level(logging.DEBUG)
    _, query, cookie = served.install_page()
    state = query["state"][0]
    served.slack.grant("code-t", Workspace("TA", "Acme"))
    method, _, what = case.partition(" ")
    method = "oauth.v2.access" if method == "exchange" else method
    if what.startswith("HTTP "):
        retry = {"Retry-After": "7"} if what == "HTTP 429" else {}
        served.slack.fail(f"/{method}", Fault(int(what.removeprefix("HTTP ")), retry))
    else:
        served.slack.errors[method] = what
    r = served.redirect({"code": "code-t", "state": state}, cookie)
    assert r.status_code == status, r.text
    assert TRY_AGAIN in r.text and "credentials" not in r.text
    assert "<title>vsm-bot: Slack could not complete the install just now</title>" in r.text
    assert f'href="{installs.INSTALL_PATH}"' in r.text
    assert r.headers["Retry-After"] == ("7" if what == "HTTP 429" else "60")
    assert r.headers["Cache-Control"] == "no-store" and f"{COOKIE}=deleted" in r.headers["Set-Cookie"]
    assert served.rows() == [] and served.states() == []
    # once each, no retry (a fault is answered before the mock records a call: its request log)
    assert len(served.slack.requests_to("/oauth.v2.access")) == 1
    assert len(served.slack.requests_to("/auth.test")) == (1 if method == "auth.test" else 0)
    lines = [
        (rec.name, rec.levelname, rec.getMessage())
        for rec in caplog.records
        if rec.name.startswith("vsm.installs") and rec.levelno >= logging.WARNING
    ]
    assert lines == [
        ("vsm.installs", "WARNING", logged),
        ("vsm.installs", "WARNING", f"install failed ('slack_trouble': _SlackSaid): HTTP {status}"),
    ], lines
    issued = list(served.slack.tokens)  # the token the exchange gave, when auth.test failed after it
    assert len(issued) == (1 if method == "auth.test" else 0)
    for secret in ("code-t", state, CLIENT_SECRET, *issued):
        assert secret not in server_log(caplog)


@pytest.mark.parametrize(
    ("case", "status", "title", "words", "logged"),
    [
        (
            "used code",
            401,
            "This authorisation has expired",
            "it was already used, or it is more than ten minutes old",
            "oauth.v2.access failed: invalid_code",
        ),
        (
            "wrong secret",
            401,
            "vsm-bot is not set up to be installed",
            "Tell whoever runs vsm-bot",
            "oauth.v2.access failed: bad_client_secret: SLACK_CLIENT_ID or SLACK_CLIENT_SECRET",
        ),
        (
            "wrong client id",
            401,
            "vsm-bot is not set up to be installed",
            "its client id or secret, or its redirect URL, do not match its Slack app",
            "oauth.v2.access failed: invalid_client_id: SLACK_CLIENT_ID or SLACK_CLIENT_SECRET",
        ),
        (
            "bad_redirect_uri",
            401,
            "vsm-bot is not set up to be installed",
            "trying again will not help",
            "oauth.v2.access failed: bad_redirect_uri: SLACK_CLIENT_ID or SLACK_CLIENT_SECRET",
        ),
        (
            "oauth_authorization_url_mismatch",
            401,
            "vsm-bot is not set up to be installed",
            "trying again will not help",
            "oauth.v2.access failed: oauth_authorization_url_mismatch: SLACK_CLIENT_ID",
        ),
        (
            "team_added_to_org",
            401,
            "Slack stopped the installation",
            "Slack answered <code>team_added_to_org</code>",
            "oauth.v2.access failed: team_added_to_org",
        ),
    ],
)
def test_slack_refusing_the_exchange_says_what_was_refused(
    served, caplog, case, status, title, words, logged
):
    """A code Slack will not take is the installer's to retry; vsm-bot's own settings refused are its
    operator's to fix (an ERROR line saying which settings); another refusal shows Slack's code."""
    caplog.set_level(logging.DEBUG)
    _, query, cookie = served.install_page()
    state = query["state"][0]
    served.slack.grant("code-r", Workspace("TA", "Acme"))
    code = "code-r"
    if case == "used code":
        code = "code-never-granted"
    elif case == "wrong secret":
        served.slack.app = (CLIENT_ID, "another-secret")
    elif case == "wrong client id":
        served.slack.app = ("999.999", CLIENT_SECRET)
    else:
        served.slack.errors["oauth.v2.access"] = case
    r = served.redirect({"code": code, "state": state}, cookie)
    assert r.status_code == status, r.text
    assert f"<title>vsm-bot: {title}</title>" in r.text and words in r.text
    assert TRY_AGAIN not in r.text
    assert (f'href="{installs.INSTALL_PATH}"' in r.text) is (title != "vsm-bot is not set up to be installed")
    assert r.headers["Cache-Control"] == "no-store" and "Retry-After" not in r.headers
    assert served.rows() == [] and served.states() == []
    assert served.slack.calls_to("auth.test") == []
    said = [
        (rec.levelname, rec.getMessage())
        for rec in caplog.records
        if rec.name == "vsm.installs" and "failed:" in rec.getMessage()
    ]
    assert len(said) == 1 and said[0][1].startswith(logged), said
    assert said[0][0] == ("ERROR" if title == "vsm-bot is not set up to be installed" else "WARNING")
    for secret in (code, state, CLIENT_SECRET, "another-secret"):
        assert secret not in server_log(caplog)


def test_the_install_page_waits_briefly_for_a_busy_database_then_says_so(served):
    import sqlite3

    served.install_page()  # the database exists, the page works
    holder = sqlite3.connect(served.db_path, isolation_level=None)
    holder.execute("begin immediate")  # a long write elsewhere (a sync, a migration)
    try:
        started = time.monotonic()
        r = requests.get(served.url + installs.INSTALL_PATH, timeout=30)
        took = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert "vsm-bot is busy" in r.text and "Try again in a minute" in r.text
        assert r.headers["Retry-After"] == "60" and "Set-Cookie" not in r.headers
        assert r.headers["Cache-Control"] == "no-store"
        assert installs.STATE_BUSY_MS / 1000 <= took < 10  # not the store's 30 s
        assert len(served.states()) == 1  # the first page's only
    finally:
        holder.execute("rollback")
        holder.close()
    _, query, _ = served.install_page()  # free again: a state as before
    assert query["state"][0] in served.states()


@pytest.mark.parametrize(
    ("event", "gone"),
    [
        ({"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}}, True),
        ({"type": "app_uninstalled"}, True),
        ({"type": "tokens_revoked", "tokens": {"oauth": ["U1"], "bot": []}}, False),  # a user's: none stored
    ],
)
def test_a_workspace_revoking_its_tokens_loses_its_installation_only(served, event, gone):
    assert served.install("code-a", Workspace("TA", "Acme")).status_code == 200
    assert served.install("code-b", Workspace("TB", "Beta")).status_code == 200
    token_a = token_of(served.slack, "TA")
    if gone:
        served.slack.revoke("TA")  # Slack stops honouring TA's token, then tells the app
        with pytest.raises(SlackApiError, match="token_revoked"):
            WebClient(base_url=served.slack.base_url, token=token_a).auth_test()
    assert served.event("TA", event, f"Ev-{event['type']}").status_code == 200
    expected = ["TB"] if gone else ["TA", "TB"]
    wait_for(lambda: [row["team_id"] for row in served.rows()] == expected, 10, served.rows)
    assert (served.command("TA").text == installs.NOT_INSTALLED) is gone
    assert served.command("TB").text == ""


def test_an_org_wide_grid_install_serves_every_workspace_of_its_enterprise(served):
    org = Workspace("TG", "Grid", enterprise_id="E1", enterprise_name="Big Co", enterprise_install=True)
    assert served.install("code-org", org).status_code == 200
    [row] = served.rows()
    assert (row["enterprise_id"], row["team_id"], row["is_enterprise_install"]) == ("E1", "", 1)
    token = token_of(served.slack, "TG")
    form = {
        "command": "/vsm",
        "text": "help",
        "team_id": "TX",
        "enterprise_id": "E1",
        "user_id": "U1",
        "channel_id": "C1",
        "is_enterprise_install": "true",
    }
    assert served.post(urlencode(form), "application/x-www-form-urlencoded").text == ""
    assert served.slack.calls_to("chat.postMessage")[-1].auth == f"Bearer {token}"
    # a one-workspace request of the same enterprise is not the org-wide installation
    assert served.command("TX", "E1").text == installs.NOT_INSTALLED


def test_installed_workspaces_are_found_by_their_key_and_forgotten_one_at_a_time(served):
    """What the scheduler and an uninstall ask by workspace (metrics.workspace): a workspace installed
    on its own is its team id, even on a Grid; an org-wide installation is its enterprise id."""
    assert served.install("code-a", Workspace("TA", "Acme")).status_code == 200
    assert served.install("code-b", Workspace("TB", "Beta", enterprise_id="E1")).status_code == 200
    org = Workspace("TG", "Grid", enterprise_id="E2", enterprise_name="Big Co", enterprise_install=True)
    assert served.install("code-org", org).status_code == 200
    store = served.app.oauth_flow.settings.installation_store
    assert store.workspaces() == ["E2", "TA", "TB"]
    grid = store.find_workspace("TB")
    assert (grid.enterprise_id, grid.team_id, grid.bot_token) == ("E1", "TB", token_of(served.slack, "TB"))
    whole = store.find_workspace("E2")
    assert (whole.enterprise_id, whole.team_id, whole.is_enterprise_install) == ("E2", None, True)
    assert store.find_workspace("E1") is None  # TB's enterprise, not installed org-wide
    assert store.find_workspace("TG") is None  # a workspace of E2, served by the org-wide row only
    assert store.forget("E1") == 0 and store.forget("TG") == 0
    assert len(served.rows()) == 3
    assert store.forget("E2") == 1
    assert store.workspaces() == ["TA", "TB"]
    assert store.forget("TB") == 1
    assert [r["team_id"] for r in served.rows()] == ["TA"]


def test_the_scheduler_token_of_a_workspace_is_renewed_as_a_request_would_renew_it(served, caplog):
    """A digest at 9:00 is no request: its workspace's token comes from ``Authorize.bot_token``, which
    renews an expiring one once, stores it, and hands the next caller the stored one."""
    caplog.set_level(logging.DEBUG)
    authorize = served.app.oauth_flow.settings.authorize
    assert authorize.bot_token("TR") is None  # not installed
    assert served.install("code-r", Workspace("TR", "Rotor", rotating=True)).status_code == 200
    [row] = served.rows()
    assert authorize.bot_token("TR") == row["bot_token"]  # fresh: no renewal
    assert renewals(served.slack) == []
    expire(served)
    renewed = authorize.bot_token("TR")
    assert renewed == token_of(served.slack, "TR") != row["bot_token"]
    assert renewals(served.slack) == [row["bot_refresh_token"]]
    assert served.rows()[0]["bot_token"] == renewed
    assert authorize.bot_token("TR") == renewed and len(renewals(served.slack)) == 1
    # Slack refuses the refresh token (revoked): for good, said with the expired token to remove;
    # one line with Slack's error only.
    served.slack.revoke("TR")
    expire(served)
    with pytest.raises(installs.TokenRefused) as refused:
        authorize.bot_token("TR")
    assert (refused.value.ws, refused.value.token, refused.value.said) == (
        "TR",
        renewed,
        "invalid_refresh_token",
    )
    assert "workspace TR: token not renewed (invalid_refresh_token)" in server_log(caplog)
    for secret in (row["bot_token"], row["bot_refresh_token"], renewed, CLIENT_SECRET):
        assert secret not in server_log(caplog)


def test_token_dead_asks_slack_whether_a_stored_token_still_works(served):
    """What `vsm forget-workspace` asks when the uninstall event was missed: True only when Slack
    says the token is dead, False when it works, None when Slack could not say."""
    assert served.install("code-a", Workspace("TA", "Acme")).status_code == 200
    assert served.install("code-b", Workspace("TB", "Beta")).status_code == 200
    org = Workspace("TG", "Grid", enterprise_id="E2", enterprise_install=True)
    assert served.install("code-org", org).status_code == 200
    url, store = served.slack.base_url, Store(served.db_path)
    served.slack.revoke("TA")
    served.slack.revoke("TG")
    assert installs.token_dead(store, "TA", url) is True
    assert installs.token_dead(store.db, "E2", url) is True  # the org-wide row, by its enterprise
    assert installs.token_dead(store, "TB", url) is False
    assert installs.token_dead(store, "T9", url) is None  # nothing stored: nothing to ask
    asked = [c.auth for c in served.slack.calls_to("auth.test")][-3:]
    assert asked == [f"Bearer {token_of(served.slack, t)}" for t in ("TA", "TG", "TB")]
    served.slack.errors["auth.test"] = "ratelimited"
    assert installs.token_dead(store, "TA", url) is None
    served.slack.errors["auth.test"] = "account_inactive"
    assert installs.token_dead(store, "TB", url) is True
    served.slack.close()
    assert installs.token_dead(store, "TA", url) is None  # Slack not reached


def test_an_installation_rows_workspace_is_drawn_one_way(served):
    """``workspace_of`` (the scheduler's list), ``INSTALLED_AS`` (vsm workspaces, forget-workspace)
    and the rows an uninstall removes all name the same workspace for every kind of installation."""
    assert served.install("code-a", Workspace("TA", "Acme")).status_code == 200
    assert served.install("code-b", Workspace("TB", "Beta", enterprise_id="E1")).status_code == 200
    org = Workspace("TG", "Grid", enterprise_id="E2", enterprise_install=True)
    assert served.install("code-org", org).status_code == 200
    store = served.app.oauth_flow.settings.installation_store
    db = open_db(served.db_path)
    try:
        drawn = {
            r["ws"]: workspace_of(
                r["enterprise_id"] or None, r["team_id"] or None, r["is_enterprise_install"]
            )
            for r in db.query(f"select {INSTALLED_AS} as ws, * from installations")
        }
        assert drawn == {"TA": "TA", "TB": "TB", "E2": "E2"}
        assert store.workspaces() == sorted(drawn)
        assert all(installed(db, ws) for ws in drawn)
        assert not installed(db, "E1") and not installed(db, "TG")
    finally:
        db.conn.close()
    for ws in drawn:
        assert store.find_workspace(ws) is not None
        assert store.forget(ws) == 1
    assert served.rows() == []


def test_bolts_revocation_listeners_find_an_org_wide_installation(served):
    """``delete_bot``/``delete_installation`` (slack_sdk's interface, here through Bolt's listeners,
    which name a workspace of the org and its enterprise, not whether the install was org-wide)
    remove the org-wide installation that served the workspace; a Grid workspace's own row first."""
    org = Workspace("TG", "Grid", enterprise_id="E1", enterprise_install=True)
    assert served.install("code-org", org).status_code == 200
    own = Workspace("TB", "Beta", enterprise_id="E1")
    assert served.install("code-b", own).status_code == 200
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}}
    assert served.event("TB", revoked, "Ev-own", enterprise_id="E1").status_code == 200
    wait_for(lambda: [(r["team_id"], r["enterprise_id"]) for r in served.rows()] == [("", "E1")], 10)
    assert served.event("TX", {"type": "app_uninstalled"}, "Ev-org", enterprise_id="E1").status_code == 200
    wait_for(lambda: served.rows() == [], 10, served.rows)
