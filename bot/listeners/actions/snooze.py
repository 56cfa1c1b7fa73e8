"""The nudge menu of a digest or a nudge: snooze nudges for 1 to 30 days, resume, or open settings."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.authz import allowed
from bot.listeners.actions.settings import open_settings
from bot.payload import first_action, message_channel, selected_value, tell, text, user_id
from metrics.teams import save_team, team_for_channel
from metrics.timeutil import iso

log = logging.getLogger("vsm.bot")


def snooze_nudges(ack, body, client, respond, context) -> None:
    ack()
    deps = context["deps"]
    channel, user = message_channel(body), user_id(body)
    choice = selected_value(first_action(body))
    if choice == "settings":
        open_settings(client, deps, text(body.get("trigger_id")), user, channel, respond)
        return
    # "0" resumes; 1 to 30 days snooze. ASCII digits only: "²".isdigit() is True, int("²") fails.
    if not (choice.isascii() and choice.isdigit() and len(choice) <= 2 and int(choice) <= 30):
        log.info("snooze_nudges refused for %r: choice %r", user, choice[:20])
        tell(respond, replace_original=False, text="Choose how long to snooze the nudges from the menu.")
        return
    team = team_for_channel(deps.store.db, channel, ws=deps.ws)
    refusal = "Only members of the team's channel can snooze its nudges."  # no team: no members
    if not allowed(deps, client, team.channel if team else "", user, respond, refusal):
        return
    days = int(choice)
    now = deps.clock()
    team.snooze_until = iso((now + timedelta(days=days)).timestamp()) if days else ""
    what = "snoozed nudges" if days else "resumed nudges"
    if save_team(deps.store.db, team, who=user, what=what, ws=deps.ws):
        deps.on_team_saved(team, deps.ws)
        until = (now + timedelta(days=days)).astimezone(team.tz)
        said = f"snoozed nudges until {until:%a %d %b %H:%M %Z}" if days else "resumed nudges"
        client.chat_postMessage(channel=channel, text=f"<@{user}> {said}.")
