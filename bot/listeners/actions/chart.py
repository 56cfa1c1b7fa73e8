"""The digest's Chart… menu: a PNG of one figure's weekly series, posted to the team's channel."""

from __future__ import annotations

import logging

from bot.authz import allowed
from bot.payload import first_action, message_channel, selected_value, tell, user_id
from bot.render import chart, usage
from metrics import catalogue
from metrics.errors import VsmError
from metrics.teams import team_for_channel
from metrics.timeutil import dates_window

log = logging.getLogger("vsm.bot")


def chart_menu(ack, body, client, respond, context) -> None:
    ack()
    deps = context["deps"]
    team = team_for_channel(deps.store.db, message_channel(body), ws=deps.ws)
    try:
        if team is None:
            raise VsmError("this channel has no team")
        parts = selected_value(first_action(body)).split("|")
        if len(parts) != 3:
            raise VsmError("the menu did not say which metric and period")
        mid, since, until = parts
        window = dates_window(since, until, team.tz)
        result = catalogue.compute(deps.store.db, team, mid, window, deps.clock())
    except VsmError as exc:
        log.info("chart refused for %r: %s", user_id(body), exc)
        tell(respond, replace_original=False, **usage.help_message(f"Cannot chart that: {exc}"))
        return
    # The chart is posted to the channel: like a digest, only by whoever is in it now (a public
    # channel's digest menu is there for anyone browsing it).
    refusal = f"Only members of <#{team.channel}> can post a chart there."
    if not allowed(deps, client, team.channel, user_id(body), respond, refusal):
        return
    problem = chart.upload(client, team.channel, catalogue.get(mid), result, team.targets.get(mid))
    if problem:
        tell(respond, replace_original=False, text=problem[0].upper() + problem[1:] + ".")
