"""``app_uninstalled`` and ``tokens_revoked``: the workspace's bot token is gone, so its digests, nudges
and verdicts stop at once (``deps.on_uninstalled``: the scheduler removes the workspace's jobs) rather
than failing with ``token_revoked`` at every run until someone notices.

The workspace's teams, settings, experiments and history stay: a reinstall finds them as they were,
and ``vsm forget-workspace`` is the deliberate way to erase them. Its stored tokens go in the same hook
(``bot.app.create_app`` with an ``oauth_flow`` wraps it to remove them first): Bolt runs only the first
listener matching an event, so Bolt's own token revocation listeners would never hear these.

``tokens_revoked`` lists the users whose tokens were revoked, by kind (``tokens.oauth``: user tokens;
``tokens.bot``: the bot's). vsm-bot acts only with its bot token (it asks for bot scopes only), so only
a revoked bot token stops the workspace; a user's revoked token changes nothing here.
"""

from __future__ import annotations

import logging

from bot.payload import obj
from metrics.workspace import shown

log = logging.getLogger("vsm.bot")


def app_uninstalled(context) -> None:
    """The app was removed from the workspace: stop its jobs."""
    deps = context["deps"]
    log.info("vsm-bot uninstalled from %s: its jobs stop", shown(deps.ws))
    deps.on_uninstalled(deps.ws)


def tokens_revoked(event, context) -> None:
    """Tokens were revoked: when the bot's is among them, stop the workspace's jobs."""
    deps = context["deps"]
    bots = obj(event.get("tokens")).get("bot")
    if not isinstance(bots, list) or not bots:
        log.info(
            "user tokens revoked in %s: nothing to stop (vsm-bot uses its bot token only)", shown(deps.ws)
        )
        return
    log.info("the bot token of %s was revoked: its jobs stop", shown(deps.ws))
    deps.on_uninstalled(deps.ws)
