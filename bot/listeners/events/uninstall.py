"""``app_uninstalled`` and ``tokens_revoked``: the workspace's bot token is gone, so its digests, nudges
and verdicts stop at once (``deps.on_uninstalled``: the scheduler removes the workspace's jobs) rather
than failing with ``token_revoked`` at every run until someone notices.

The workspace's teams, settings, experiments and history stay: a reinstall finds them as they were,
and ``vsm forget-workspace`` is the deliberate way to erase them. Its stored tokens go in the same hook
(``bot.app.create_app`` with an ``oauth_flow`` wraps it to remove them first): Bolt runs only the first
listener matching an event, so Bolt's own token revocation listeners would never hear these.

Slack redelivers an event it thinks we missed (after 1 and 5 minutes): one already seen is skipped
(``deps.seen_events``), and only installations made at or before the event's ``event_time`` are
removed, so an old event arriving after a quick reinstall (or after a restart that forgot what was
seen) leaves the new installation, and its jobs, alone.

``tokens_revoked`` lists the users whose tokens were revoked, by kind (``tokens.oauth``: user tokens;
``tokens.bot``: the bot's). vsm-bot acts only with its bot token (it asks for bot scopes only), so only
a revoked bot token stops the workspace; a user's revoked token changes nothing here.
"""

from __future__ import annotations

import logging
import math

from bot.payload import obj, text
from metrics.workspace import Workspace, shown
from metrics.workspace_rows import installed

log = logging.getLogger("vsm.bot")


def app_uninstalled(body, context) -> None:
    """The app was removed from the workspace: its tokens go and its jobs stop."""
    deps = context["deps"]
    if _seen(deps, body, "app_uninstalled"):
        return
    log.info("vsm-bot uninstalled from %s: its jobs stop", shown(deps.ws))
    _gone(deps, body, context)


def tokens_revoked(event, body, context) -> None:
    """Tokens were revoked: when the bot's is among them, the workspace's tokens go and its jobs stop."""
    deps = context["deps"]
    if _seen(deps, body, "tokens_revoked"):
        return
    bots = obj(event.get("tokens")).get("bot")
    if not isinstance(bots, list) or not bots:
        log.info(
            "user tokens revoked in %s: nothing to stop (vsm-bot uses its bot token only)", shown(deps.ws)
        )
        return
    log.info("the bot token of %s was revoked: its jobs stop", shown(deps.ws))
    _gone(deps, body, context)


def _seen(deps, body: dict, kind: str) -> bool:
    """An event delivered again (Slack's retry of one we answered too slowly, or not at all)."""
    if deps.seen_events.first_time(text(body.get("event_id"))):
        return False
    log.info("%s of %s delivered again: already handled", kind, shown(deps.ws))
    return True


def event_time(body: dict) -> float | None:
    """The envelope's ``event_time`` (Unix seconds, when Slack stamped the event), or None when it
    is missing or no plausible time (then every installation of the workspace goes, as before)."""
    at = body.get("event_time")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        return None
    return float(at) if 0 < at < 1e11 else None


def _gone(deps, body: dict, context) -> None:
    removed = deps.on_uninstalled(deps.ws, event_time(body))
    enterprise = text(context.enterprise_id)
    if (
        removed == 0
        and enterprise
        and enterprise != deps.ws
        and installed(deps.store.db, Workspace(enterprise))
    ):
        # An org-wide installation's event that does not say it is one names a workspace of the org.
        log.warning(
            "%s of enterprise %s had no installation of its own to remove; enterprise %s's org-wide "
            "installation stays (Slack's event did not say it was org-wide). If vsm-bot was removed from "
            "the whole organisation, its token is found dead at its next digest and removed then, or "
            "run `vsm forget-workspace %s`",
            shown(deps.ws),
            enterprise,
            enterprise,
            enterprise,
        )
