"""Who may change an org-wide Enterprise Grid install's org settings (issue 14 §2): they are the whole
Grid's, so an admin of the Grid org may, and an admin of one of its workspaces may not (Slack's
``users.info`` says which in ``enterprise_user``). A workspace installed on its own keeps its rule."""

import json
from urllib.parse import urlencode

import pytest
from fakes.slack import MockSlack
from slack_bolt import BoltRequest
from slackkit import signed, slack_app

from bot.authz import NOT_ADMIN

GRID = "E0GRID1"


class GridSlack(MockSlack):
    """``users.info`` as on a Grid: ``UWSADMIN…`` administer their workspace only, ``UORGADMIN…`` the
    Grid org (and so no workspace of their own here)."""

    def _canned(self, method: str, body: dict) -> dict:
        reply = super()._canned(method, body)
        if method == "users.info":
            user = body.get("user", "")
            reply["user"]["is_admin"] = user.startswith("UWSADMIN")
            reply["user"]["enterprise_user"] = {
                "id": user,
                "enterprise_id": GRID,
                "is_admin": user.startswith("UORGADMIN"),
            }
        return reply


def open_org_form(app, slack, user: str, *, org_wide: bool) -> bool:
    """The North Star form's Change button pressed in a Grid workspace; whether the form opened."""
    before = len(slack.calls_to("views.open"))
    payload = {
        "type": "block_actions",
        "team": {"id": "T0GRIDWS1", "enterprise_id": GRID},
        "enterprise": {"id": GRID},
        "is_enterprise_install": org_wide,
        "user": {"id": user, "team_id": "T0GRIDWS1"},
        "trigger_id": "t",
        "response_url": f"{slack.url}/response/5",
        "actions": [{"action_id": "set_north_star", "block_id": "b", "value": "x", "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    app.dispatch(
        BoltRequest(body=body, headers=signed(body, content_type="application/x-www-form-urlencoded"))
    )
    return len(slack.calls_to("views.open")) > before


@pytest.mark.parametrize(
    ("org_wide", "user", "opens"),
    [
        (True, "UORGADMIN1", True),  # the Grid org's admin: the org-wide install's settings
        (True, "UWSADMIN1", False),  # one workspace's admin: not the whole Grid's settings
        (False, "UWSADMIN1", True),  # a workspace installed on its own: its own admin decides
        (False, "UMEMBER1", False),
    ],
)
def test_an_org_wide_installs_settings_are_for_the_grids_admins(sample_db, tmp_path, org_wide, user, opens):
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    with GridSlack() as slack:
        app = slack_app(db_path, slack, per_workspace=True)
        assert open_org_form(app, slack, user, org_wide=org_wide) is opens
        if not opens:
            assert slack.responses()[-1]["text"] == NOT_ADMIN
