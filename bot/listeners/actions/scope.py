"""Enter in the settings form's Jira projects: the open form is redrawn to offer the statuses seen in
those projects in its stage selects, so a lead maps the team's workflow as soon as its scope is set.

Only the form's opener, still a member of the team's channel, may redraw it (as only they may save
it). The redraw keeps every input's block and action id, so Slack keeps what was typed; it goes with
the view's ``hash``, so a redraw that lost a race with another is dropped by Slack, not applied over it.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError, SlackClientError

from bot import ids
from bot.logline import slack_error
from bot.payload import obj, private_metadata, state_values, text, user_id
from bot.render.modals import settings_view
from bot.settings_form import apply, form_values
from metrics.scope import known
from metrics.teams import Team, team_for_channel

log = logging.getLogger("vsm.bot")


def scope_entered(ack, body, client, context) -> None:
    """The Jira projects typed in an open settings form: redraw it with their statuses."""
    ack()
    deps = context["deps"]
    view = obj(body.get("view"))
    meta, user = private_metadata(view), user_id(body)
    channel = text(meta.get("channel"))
    if view.get("callback_id") != ids.TEAM_SETTINGS or not channel or not user or meta.get("by") != user:
        log.info("settings form redraw refused for %r: not the form's opener", user)
        return
    if not deps.members.is_member(client, channel, user):
        log.info("settings form redraw refused for %r in %r: not a member now", user, channel)
        return
    db = deps.store.db
    values = form_values(state_values(view))
    base = team_for_channel(db, channel, ws=deps.ws) or Team(
        name=text(meta.get("team")) or "new", channel=channel
    )
    draft, _ = apply(base, values)  # what the form holds now; its errors wait for the submission
    redrawn = settings_view(
        db,
        draft,
        channel,
        synced=known(db),
        meta=meta,
        typed_targets=text(values.get("targets")),
    )
    try:
        client.views_update(view_id=text(view.get("id")), hash=text(view.get("hash")) or None, view=redrawn)
    except (SlackApiError, SlackClientError, OSError) as exc:  # a stale hash, a closed form
        log.info("settings form not redrawn for %s: %s", user, slack_error(exc))
