"""The North Star figures' "Change (admins)" button: opens the organisation settings form (the North
Star form), for org admins only: workspace admins and owners, and the org admins the database holds
(``bot.authz.may_set``)."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.authz import ADMIN_UNKNOWN, BEFORE_OPEN_S, NOT_ADMIN, before_ack, may_set
from bot.logline import slack_error
from bot.payload import tell, text, user_id
from bot.render.modals import north_star_view
from metrics.teams import get_org, org_version

log = logging.getLogger("vsm.bot")


def set_north_star(ack, body, client, respond, context) -> None:
    ack()
    deps = context["deps"]
    user = user_id(body)
    # Bounded, as the settings form's check is: the app's own client would sleep through a rate limit
    # while the trigger_id (3 s) expires.
    admin = may_set(before_ack(client, timeout=BEFORE_OPEN_S), deps, user) if user else False
    if not admin:
        log.info(
            "organisation settings not opened for %r: %s", user, "unknown" if admin is None else "no admin"
        )
        tell(respond, replace_original=False, text=ADMIN_UNKNOWN if admin is None else NOT_ADMIN)
        return
    db = deps.store.db
    view = north_star_view(get_org(db, ws=deps.ws), user, org_version(db, ws=deps.ws))
    try:
        client.views_open(trigger_id=text(body.get("trigger_id")), view=view)
    except SlackApiError as exc:  # an expired or forged trigger_id
        log.info("north star modal not opened for %s: %s", user, slack_error(exc))
        tell(respond, "Slack would not open the organisation settings form; click the button again.")
