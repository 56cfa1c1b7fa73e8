"""A workspace with no usable installation, answered in the shape Slack takes for each kind of request
(installs.NotInstalledAnswers): the real installable `vsm serve --http` (tests/test_oauth_serve.py's
fixture), signed requests, the loopback mock Slack.

Bolt answers such a request with its message as a 200 ``text/plain`` body, or at the request's
response URL when it has one. A modal's submission cannot take a text body (Slack wants an empty or
JSON one, and showed the user a generic error), an options request wants options, a closed modal
nothing: a user whose workspace uninstalled with a form open, or whose token renewal Slack refused,
is told on the form, under its first field.
"""

from __future__ import annotations

import json

from fakes.slack import Workspace
from slackkit import assert_valid_view, initial_state, wait_for
from test_oauth_flow import expire, renewals
from test_oauth_serve import (  # noqa: F401 - installable is a fixture
    SPACES,
    Served,
    command,
    installable,
    interact,
    open_setup_form,
    opened_since,
    set_up_team,
    teams,
)

from bot import ids, installs

NOT_INSTALLED_ON_FORM = {"response_action": "errors", "errors": {"name": installs.NOT_INSTALLED_SHORT}}


def submission(view: dict, name: str) -> dict:
    state = initial_state(view)
    state["values"]["name"]["v"]["value"] = name
    return {"type": "view_submission", "view": {**view, "id": "V1", "state": state}}


def test_a_form_submitted_after_its_workspace_uninstalled_is_told_on_the_form(installable):  # noqa: F811
    served, browser, slack = installable
    for ws, (name, _, _) in SPACES.items():
        assert browser.install(f"code-{ws}", Workspace(ws, name)).status_code == 200
    view = open_setup_form(browser, slack, "T1").body["view"]
    assert view["callback_id"] == ids.TEAM_SETTINGS
    assert view["blocks"][0]["type"] == "input" and view["blocks"][0]["block_id"] == "name"

    # T1 uninstalls while its form is open.
    slack.revoke("T1")
    assert browser.event("T1", {"type": "app_uninstalled"}, "Ev-gone").status_code == 200
    wait_for(lambda: [r["team_id"] for r in browser.rows()] == ["T2"], 10, browser.rows)
    calls = len(slack.calls)

    # Submitted: the message under the form's first field, as JSON; the form stays open.
    r = interact(browser, "T1", submission(view, "payments"))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == NOT_INSTALLED_ON_FORM
    assert len(installs.NOT_INSTALLED_SHORT) <= 150  # what Slack shows under a field

    # A form with no field to put it under: the form becomes the message.
    bare = {**view, "id": "V2", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}
    r = interact(browser, "T1", {"type": "view_submission", "view": {**bare, "state": {"values": {}}}})
    assert r.status_code == 200 and r.json()["response_action"] == "update"
    shown = r.json()["view"]
    assert_valid_view(shown)
    assert shown["blocks"][0]["text"]["text"] == installs.NOT_INSTALLED and "submit" not in shown

    # Closed: nothing to say, an empty 200.
    r = interact(browser, "T1", {"type": "view_closed", "view": {**view, "id": "V1"}, "is_cleared": False})
    assert (r.status_code, r.text) == (200, "")

    # An external select asking for options (the settings form's Jira projects): none.
    options = {
        "type": "block_suggestion",
        "action_id": ids.SCOPE_PROJECTS,
        "block_id": "projects",
        "value": "PAY",
        "view": {**view, "id": "V1"},
    }
    r = interact(browser, "T1", options)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"options": []}

    # A click in a message keeps Bolt's answer: the message at its response URL, an empty ack.
    click = {
        "type": "block_actions",
        "channel": {"id": SPACES["T1"][1]},
        "response_url": f"{slack.url}/response/click-T1",
        "trigger_id": "t",
        "actions": [{"action_id": ids.SETUP_TEAM, "block_id": "no_team", "type": "button", "value": "x"}],
    }
    r = interact(browser, "T1", click)
    assert (r.status_code, r.text) == (200, "")
    [told] = wait_for(lambda: slack.requests_to("/response/click-T1"), 10)
    assert json.loads(told.body)["text"] == installs.NOT_INSTALLED

    # Nothing ran for T1: no call to Slack but the response URL's, no team.
    assert [c.method for c in slack.calls[calls:] if not c.method.startswith("response/")] == []
    assert teams(browser.db_path) == []

    # T2, installed, submits the same form: its listener answers (the team is set up), not rewritten.
    set_up_team(browser, slack, "T2", "payments")
    assert teams(browser.db_path) == [("T2", "payments", SPACES["T2"][1])]
    assert "Although the app should be installed" in served.log()  # Bolt's line, no token in it
    for token in slack.tokens:
        assert token not in served.log()


def test_a_form_submitted_when_slack_refuses_to_renew_the_token_is_told_on_the_form(installable):  # noqa: F811
    served, browser, slack = installable
    assert browser.install("code-T1", Workspace("T1", "One", rotating=True)).status_code == 200
    view = open_setup_form(browser, slack, "T1").body["view"]
    # Twelve hours on, and Slack refuses the refresh token (revoked meanwhile).
    expire(browser)
    slack.revoke("T1")
    r = interact(browser, "T1", submission(view, "payments"))
    assert r.status_code == 200, r.text
    assert r.json() == NOT_INSTALLED_ON_FORM
    assert teams(browser.db_path) == []
    assert len(renewals(slack)) == 1  # asked, and refused (invalid_refresh_token)
    assert len(browser.rows()) == 1  # the installation stays: the next renewal may work
