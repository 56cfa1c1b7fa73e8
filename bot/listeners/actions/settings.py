"""Buttons that open the team settings modal: "Set up a team here", "Adjust metrics" and "Settings"."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.authz import BEFORE_OPEN_S, allowed, before_ack
from bot.logline import slack_error
from bot.payload import first_action, message_channel, obj, tell, text, user_id
from bot.render.modals import settings_view
from metrics.scope import known
from metrics.teams import TEAM_RULES, Team, team_for_channel

log = logging.getLogger("vsm.bot")

MIN_LOOKUP_S = 0.1  # less time left than this: the zone is not asked for (UTC)


def creator_zone(client, user: str | None, within: float = BEFORE_OPEN_S) -> str:
    """The time zone in ``user``'s Slack profile (``users.info`` → ``user.tz``), so a new team's digest
    and windows start in the creator's local time; UTC when Slack cannot say within ``within``
    seconds (one call, no retries), or there is no time left to ask."""
    if not user or within < MIN_LOOKUP_S:
        return "UTC"
    try:
        info = obj(before_ack(client, timeout=within).users_info(user=user).get("user"))
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.info("time zone of %s unknown, UTC used: %s", user, slack_error(exc))
        return "UTC"
    tz = text(info.get("tz"))
    return tz if TEAM_RULES["timezone"].ok(tz) else "UTC"


def open_settings(client, deps, trigger_id: str | None, user: str | None, channel: str, respond) -> None:
    """The settings modal for the channel's team (or a new one, in its creator's time zone), for the
    channel's members only."""
    db = deps.store.db
    start = time.monotonic()
    # Bounded, as the submission's check is: the app's own client would sleep through a rate limit
    # while the trigger_id expires.
    refusal = "Only members of the team's channel can change its settings."
    if not allowed(deps, client, channel, user or "", respond, refusal, within=BEFORE_OPEN_S):
        return
    team = team_for_channel(db, channel, ws=deps.ws)
    new = team is None
    if team is None:
        left = BEFORE_OPEN_S - (time.monotonic() - start)
        team = Team(
            name=f"team-{channel.lower()}", channel=channel, timezone=creator_zone(client, user, left)
        )
    view = settings_view(db, team, channel, opener=user, new=new, synced=known(db))
    try:
        client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:  # an expired or forged trigger_id
        log.info("settings modal not opened for %s: %s", user, slack_error(exc))
        tell(respond, "Slack would not open the settings form; run `/vsm settings` again.")


def setup_team(ack, body, client, respond, context) -> None:
    """ "Set up a team here", under the answer to ``/vsm`` in a channel with no team."""
    ack()
    channel = text(first_action(body).get("value")) or message_channel(body)
    open_settings(client, context["deps"], text(body.get("trigger_id")), user_id(body), channel, respond)


def adjust_metrics(ack, body, client, respond, context) -> None:
    """A digest's "Adjust metrics" (its message's channel) or an App Home team's "Settings" (the
    team's channel, in the button: App Home has no channel)."""
    ack()
    channel = message_channel(body) or text(first_action(body).get("value"))
    open_settings(client, context["deps"], text(body.get("trigger_id")), user_id(body), channel, respond)
