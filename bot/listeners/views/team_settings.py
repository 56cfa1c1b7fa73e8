"""The team settings modal's submission: metrics, targets, digest schedule, workflow mapping and scope.

Only members of the team's channel may submit it, checked again at the moment of the write; every
change is saved with who and when (``metrics.teams.save_team``) and announced in the channel. The
form itself is ``bot.render.modals.settings_view``, opened by ``bot.listeners.actions.settings``;
what it holds is read by ``bot.settings_form``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache

from bot.authz import form_refused
from bot.payload import obj, private_metadata, state_values, user_id
from bot.render.settings_changes import created, describe
from bot.render.templates import MESSAGE_TEXT, cut_mrkdwn, escape_mrkdwn
from bot.settings_form import apply, form_values
from metrics.errors import VsmError
from metrics.scope import Known, known
from metrics.teams import Team, TeamConflict, create_team, save_team, team_for_channel
from metrics.workspace import SINGLE, Workspace

log = logging.getLogger("vsm.bot")


def _synced(db) -> Callable[[], Known]:
    """What the sources know, read once and only if asked (a save that adds no scope reads nothing)."""
    return cache(lambda: known(db))


def _create(
    db, channel: str, user: str, values: dict, *, ws: Workspace = SINGLE
) -> tuple[Team, dict, dict[str, str]]:
    """The "Set up a team here" form: only ever a new team. A name (or this channel) already taken is
    an error on the form, and nothing is written: submitting `payments` from another channel must not
    take over the payments team, its settings or its digests."""
    new, errors = apply(Team(name="new", channel=channel), values, _synced(db))
    if errors:
        return new, {}, errors
    try:
        return new, create_team(db, new, who=user, what=lambda _: created(new), ws=ws), {}
    except TeamConflict as exc:
        if exc.key == "name":
            return new, {}, {"name": f"“{new.name}” is another team's name. Choose another one."}
        if exc.key == "org-channel":
            return (
                new,
                {},
                {"name": "This is the organisation's channel: set the team up in its own channel."},
            )
        return new, {}, {"name": "This channel has a team now. Close this form and open /vsm settings again."}
    except VsmError as exc:
        return new, {}, {"name": str(exc)[:150]}


def _edit(
    db, team: Team, meta: dict, user: str, values: dict, *, ws: Workspace = SINGLE
) -> tuple[Team, dict, dict[str, str]]:
    """The channel's own team, changed by one of its members: its name and channel stay (they key its
    history, its log and where its digests go)."""
    if meta.get("new") or meta.get("team") != team.name:
        # The form was opened for another team (or to set one up) and the channel's team changed since.
        return (
            team,
            {},
            {"name": "This channel's team changed. Close this form and open /vsm settings again."},
        )
    new, errors = apply(team, values, _synced(db))
    new.name, new.channel = team.name, team.channel
    errors.pop("name", None)
    if errors:
        return new, {}, errors
    try:
        return new, save_team(db, new, who=user, what=lambda changes: describe(changes, new), ws=ws), {}
    except VsmError as exc:
        return new, {}, {"name": str(exc)[:150]}


def submit(ack, body, client, view, context) -> None:
    """A settings form submitted: checked, saved (or answered with inline errors), announced."""
    deps = context["deps"]
    view = obj(view)
    meta, user = private_metadata(view), user_id(body)
    # The form must be theirs, and leaving the channel after opening it takes the right away.
    if form_refused(
        ack,
        deps,
        client,
        meta,
        user,
        field="name",
        not_theirs="Only members of the team's channel can change it.",
        not_member="Only members of the team's channel can change it, and you are not in it now.",
    ):
        return
    channel = meta["channel"]
    values = form_values(state_values(view))
    existing = team_for_channel(deps.store.db, channel, ws=deps.ws)
    if existing is None:
        team, changes, errors = _create(deps.store.db, channel, user, values, ws=deps.ws)
    else:
        team, changes, errors = _edit(deps.store.db, existing, meta, user, values, ws=deps.ws)
    if errors:
        log.info("settings for %s not saved, errors in: %s", channel, ", ".join(sorted(errors)))
        ack(response_action="errors", errors=errors)
        return
    ack()
    if changes:
        deps.on_team_saved(team, deps.ws)
        # An order alone is no change (teams.diff), and describe() words every change it is given.
        said = created(team) if existing is None else f"changed the team settings: {describe(changes, team)}"
        client.chat_postMessage(
            channel=channel, text=cut_mrkdwn(f"<@{user}> {escape_mrkdwn(said)}", MESSAGE_TEXT)
        )
