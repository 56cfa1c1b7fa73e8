"""``/vsm digest`` in the org channel: a preview of the organisation's digest.

Routing (``bot.listeners.commands.vsm``) sends ``/vsm digest`` here only from ``[org] channel`` when no
team owns that channel. When the org channel is also a team's channel, ``/vsm digest`` there previews
the team's digest, as it always has: a team's members ask for their own digest far more often, and
the org digest still arrives there on its schedule; its preview is then not offered in Slack (left
as it is, deliberately: one command, one meaning per channel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.render.org_digest import preview
from metrics.org import org_window
from metrics.org_digest import build_org_digest
from metrics.teams import get_org

if TYPE_CHECKING:
    from bot.app import Deps


def is_org_channel(deps: Deps, channel: str) -> bool:
    """Whether ``channel`` is ``[org] channel`` (where the org digest goes)."""
    return bool(channel) and get_org(deps.store.db, ws=deps.ws).get("channel") == channel


def preview_reply(deps: Deps) -> dict:
    """The org digest as it stands now, over the org digest's period (the last ``period_days``
    complete days in the org's time zone, as the scheduled one would show today), ephemeral, with a
    button to post it."""
    db = deps.store.db
    now = deps.clock()
    org = get_org(db, ws=deps.ws)
    return preview(build_org_digest(db, now, window=org_window(org, now), ws=deps.ws), now)
