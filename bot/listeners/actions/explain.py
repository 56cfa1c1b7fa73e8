"""A figure's Explain button: the items behind the figure, as a reply to whoever clicked."""

from __future__ import annotations

import json
import logging

from bot.payload import first_action, message_channel, obj, tell, text, user_id
from bot.render import usage
from bot.render.explain import explain_message
from metrics import catalogue
from metrics.behind import titled
from metrics.dataset import TeamData
from metrics.errors import VsmError
from metrics.teams import team_for_channel
from metrics.timeutil import parse_instant, window_between

log = logging.getLogger("vsm.bot")


def _spec(value: str) -> dict:
    """An Explain button's value (``replies._figure``): JSON with metric, team, since and until."""
    try:
        return obj(json.loads(value))
    except ValueError:
        return {}


def explain(ack, body, respond, context) -> None:
    ack()
    deps = context["deps"]
    spec = _spec(text(first_action(body).get("value")))
    try:
        # The channel decides the team, as for /vsm: a button's value is the clicker's to forge,
        # and must not show another team's items in this channel.
        team = team_for_channel(deps.store.db, message_channel(body), ws=deps.ws)
        if team is None or team.name != text(spec.get("team")):
            raise VsmError("this button belongs to another channel's team")
        start, end = parse_instant(text(spec.get("since"))), parse_instant(text(spec.get("until")))
        if start is None or end is None:
            raise VsmError("the button does not say which period")
        window = window_between(start, end, team.tz, "the period")
        metric = catalogue.get(text(spec.get("metric")))
        # One data load for the figure and the titles of the items behind it.
        data = TeamData(deps.store.db, team, deps.clock())
        result = metric.compute(data, window)
        items = titled(data, result)
    except (VsmError, ValueError) as exc:  # parse_instant: ValueError on a malformed time
        log.info("explain refused for %r: %s", user_id(body), exc)
        tell(respond, replace_original=False, **usage.help_message(f"Cannot explain that figure: {exc}"))
        return
    tell(respond, replace_original=False, **explain_message(team, result, items))
