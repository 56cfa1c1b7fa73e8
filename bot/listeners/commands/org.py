"""``/vsm northstar`` and ``/vsm teams``: the levels above the team, answered in any channel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.render import replies
from metrics import catalogue
from metrics.digest import digest_window
from metrics.teams import get_org, team_for_channel

if TYPE_CHECKING:
    from bot.app import Deps


def northstar_reply(deps: Deps, channel: str) -> dict:
    """The org's North Star figures. (Issue 13: to become the org roll-up, from any channel.)"""
    db = deps.store.db
    org = get_org(db)
    ids = [m for m in org.get("north_star", []) if m in catalogue.CATALOGUE]
    if not ids:
        return {
            "response_type": "ephemeral",
            "text": "No North Star metrics are set for the organisation yet.",
        }
    team = team_for_channel(db, channel)
    if team is None:
        return replies.no_team_message(channel)
    now = deps.clock()
    window = digest_window(team, now)
    return replies.north_star_message(team, [catalogue.compute(db, team, m, window, now) for m in ids])


def teams_reply(deps: Deps) -> dict:
    """Every team with its channel and digest schedule. (Issue 13: not built yet.)"""
    return {"response_type": "ephemeral", "text": "`/vsm teams` is not built yet."}
