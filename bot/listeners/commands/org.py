"""``/vsm northstar`` and ``/vsm teams``: the levels above the team, answered in any channel.

Both run after the acknowledgement (``vsm._reply``). The roll-up reads every team: from the stored
figures (``metrics.results``, computed after each sync), recomputed only where their inputs changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.render import replies
from metrics.org import north_star_ids, org_targets, org_timezone, org_window
from metrics.results import org_rollups
from metrics.teams import get_org, list_teams, team_for_channel

if TYPE_CHECKING:
    from bot.app import Deps


def northstar_reply(deps: Deps, channel: str) -> dict:
    """The org's North Star roll-up over the org digest's period in the org time zone
    (``metrics.org.org_window``): each metric pooled from every team, each team's own figure on the
    same days beside it. In a team's channel its row comes first; anywhere else, every team by name.
    Without North Star metrics: how to set them."""
    db = deps.store.db
    org = get_org(db, ws=deps.ws)
    ids = north_star_ids(org)
    tz = org_timezone(org)
    if not ids:
        return replies.north_star_message([], tz)
    now = deps.clock()
    window = org_window(org, now)
    found = org_rollups(db, ids, window, now, targets=org_targets(org), ws=deps.ws)
    return replies.north_star_message(found, tz, here=team_for_channel(db, channel, ws=deps.ws))


def teams_reply(deps: Deps) -> dict:
    """Every team by name with its channel, chosen metrics and digest schedule (`vsm teams`' facts)."""
    return replies.teams_message(list_teams(deps.store.db, ws=deps.ws))
