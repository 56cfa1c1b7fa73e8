"""App Home's portfolio: a team's "Full digest" button shows the team's digest to whoever clicked.

Where it is shown: a modal (``views.open`` with the click's ``trigger_id``). A click in App Home has
no ``response_url``, so there is no ephemeral reply to give; an ephemeral message in the team's
channel (``chat.postEphemeral``) would land where the reader is not looking and vanish on reload,
and a direct message would leave a copy of the team's figures in a conversation that outlives the
reader's membership of the channel. A modal opens over App Home, where the click was, and shows the
digest to the clicker only, as it stands now. Its buttons act on a message's channel, which a modal
has not, so the modal is read-only and says where they are (`/vsm digest` in the team's channel,
which previews the same digest with "Post to channel"): ``bot.render.home.digest_modal``.

Who: the clicker must be a member of the team's channel now, not only when App Home was drawn, and
the button's value (the team's name) is the clicker's to forge: the channel's membership decides
(``bot.authz.allowed``), and a refusal is told in a modal, the only answer App Home can show.

When: the ``trigger_id`` lives 3 seconds and the digest takes longer for a large team, so the check
is bounded (``PRE_ACK_S``), a modal saying the digest is being built opens at once, and the digest
replaces it (``views.update`` with the opened view's ``hash``).
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.authz import PRE_ACK_S, allowed
from bot.logline import slack_error
from bot.payload import first_action, obj, text, user_id
from bot.render.home import digest_modal, notice_modal
from bot.render.templates import escape_mrkdwn
from metrics.digest import build_digest
from metrics.errors import VsmError, error_line
from metrics.teams import get_team

log = logging.getLogger("vsm.bot")

TITLE = "Full digest"
FAILED = "Sorry, building the digest failed on our side; it has been logged."


class _Notice:
    """``respond`` for a click without a ``response_url``: what ``bot.authz.allowed`` tells the
    clicker (a refusal) opens as a modal with the click's ``trigger_id``."""

    def __init__(self, client, trigger_id: str) -> None:
        self.client, self.trigger_id = client, trigger_id

    def __call__(self, text: str = "", **_payload) -> None:
        self.client.views_open(trigger_id=self.trigger_id, view=notice_modal(TITLE, text))


def preview_team_digest(ack, body, client, context) -> None:
    ack()
    deps = context["deps"]
    user, trigger = user_id(body), text(body.get("trigger_id"))
    say = _Notice(client, trigger)
    name = text(first_action(body).get("value"))
    try:
        team = get_team(deps.store.db, name, ws=deps.ws)
    except VsmError:
        log.info("full digest refused for %r: no team %r", user, name)
        _open(say, "That team no longer exists.")
        return
    refusal = f"Only members of <#{team.channel}> can see its digest."
    if not allowed(deps, client, team.channel, user, say, refusal, within=PRE_ACK_S):
        return
    try:
        opened = obj(
            client.views_open(
                trigger_id=trigger,
                view=notice_modal(TITLE, f"Building *{escape_mrkdwn(team.name)}*'s digest…"),
            ).get("view")
        )
    except (SlackApiError, SlackClientError) as exc:  # an expired or forged trigger_id
        log.info("full digest of %s not opened for %s: %s", team.name, user, slack_error(exc))
        return
    try:
        now = deps.clock()
        view = digest_modal(build_digest(deps.store.db, team, now, ws=deps.ws), now)
    except Exception as exc:  # noqa: BLE001 - the reader gets a short answer, the log one line
        log.error("full digest of %s failed: %s", team.name, error_line(exc))
        view = notice_modal(TITLE, FAILED)
    try:
        client.views_update(view_id=text(opened.get("id")), hash=text(opened.get("hash")) or None, view=view)
    except (SlackApiError, SlackClientError) as exc:  # the reader closed it meanwhile
        log.info("full digest of %s not shown to %s: %s", team.name, user, slack_error(exc))


def _open(say: _Notice, message: str) -> None:
    try:
        say(message)
    except (SlackApiError, SlackClientError) as exc:
        log.info("notice not opened: %s", slack_error(exc))
