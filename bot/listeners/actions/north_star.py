"""The North Star figures' "Change (admins)" button: opens the North Star modal, for admins only."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.authz import may_set
from bot.logline import slack_error
from bot.payload import tell, text, user_id
from bot.render.modals import north_star_view
from metrics.teams import get_org

log = logging.getLogger("vsm.bot")


def set_north_star(ack, body, client, respond, context) -> None:
    ack()
    deps = context["deps"]
    user = user_id(body)
    if not user or not may_set(client, deps, user):
        tell(respond, replace_original=False, text="Only workspace admins can set the North Star metrics.")
        return
    view = north_star_view(get_org(deps.store.db).get("north_star", []), user)
    try:
        client.views_open(trigger_id=text(body.get("trigger_id")), view=view)
    except SlackApiError as exc:  # an expired or forged trigger_id
        log.info("north star modal not opened for %s: %s", user, slack_error(exc))
        tell(respond, "Slack would not open the North Star form; click the button again.")
