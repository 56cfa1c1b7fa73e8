"""Buttons that open the team settings modal: "Set up a team here", "Adjust metrics" and "Settings"."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.authz import allowed, before_ack
from bot.logline import slack_error
from bot.payload import first_action, message_channel, obj, tell, text, user_id
from bot.render.modals import settings_view
from metrics.scope import known
from metrics.teams import TEAM_RULES, Team, team_for_channel

log = logging.getLogger("vsm.bot")

ZONE_LOOKUP_S = 1.0
"""The most the creator's time zone may cost before the form opens: the ``trigger_id`` that opens it
lives 3 seconds, and the membership check has already spent some of them."""


def creator_zone(client, user: str | None) -> str:
    """The time zone in ``user``'s Slack profile (``users.info`` → ``user.tz``), so a new team's digest
    and windows start in the creator's local time; UTC when Slack cannot say in time."""
    if not user:
        return "UTC"
    try:
        info = obj(before_ack(client, timeout=ZONE_LOOKUP_S).users_info(user=user).get("user"))
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.info("time zone of %s unknown, UTC used: %s", user, slack_error(exc))
        return "UTC"
    tz = text(info.get("tz"))
    return tz if TEAM_RULES["timezone"].ok(tz) else "UTC"


def open_settings(client, deps, trigger_id: str | None, user: str | None, channel: str, respond) -> None:
    """The settings modal for the channel's team (or a new one, in its creator's time zone), for the
    channel's members only."""
    db = deps.store.db
    refusal = "Only members of the team's channel can change its settings."
    if not allowed(deps, client, channel, user or "", respond, refusal):
        return
    team = team_for_channel(db, channel)
    new = team is None
    if team is None:
        team = Team(name=f"team-{channel.lower()}", channel=channel, timezone=creator_zone(client, user))
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
