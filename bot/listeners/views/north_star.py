"""The organisation settings form's submission (the North Star form): the North Star metrics, their
targets, the org channel, the org digest's schedule and the org time zone. Workspace admins and the
org admins (``bot.authz.may_set``) may save it, checked again at the moment of the write.

Every field is read as if forged and checked as the config file's ``[org]`` is
(``bot.settings_form.read_org_form``); a bad one is an inline error on its field and nothing is saved.
A new org channel must be one the bot is in (asked of Slack before the acknowledgement): else every
org digest would fail there. The changed settings are saved together, all or nothing, through
``metrics.teams.set_org_many``, which logs who, when and what in words and refuses a form opened
before another admin's save; then the org digest is re-planned (``deps.on_org_saved``) and the change
is announced old → new in the org channel. A save that changes nothing writes and says nothing.
"""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError

from bot.authz import (
    ADMIN_UNKNOWN,
    CHANNEL_UNKNOWN,
    NOT_ADMIN,
    NOT_IN_CHANNEL,
    PRE_ACK_S,
    before_ack,
    bot_can_post,
    may_set,
    org_admins,
    workspace_admin,
)
from bot.logline import slack_error
from bot.payload import obj, private_metadata, user_id
from bot.render.settings_changes import describe_org
from bot.render.templates import MESSAGE_TEXT, cut_mrkdwn, escape_mrkdwn
from bot.settings_form import read_org_form
from metrics.errors import VsmError
from metrics.teams import USER_ID, OrgConflict, get_org, org_settings, same_org_value, set_org_many
from metrics.workspace import SINGLE, Workspace

log = logging.getLogger("vsm.bot")
SELF_REMOVAL = (
    "You would take yourself off the organisation's admins and could not open this form again: keep "
    "yourself, or ask a workspace admin to make the change."
)

# The settings the form sets, in the order it shows them (and the announcement words them).
KEYS = ("north_star", "targets", "channel", "timezone", "digest", "admins")
CHANGED_SINCE = (
    "Someone changed the organisation settings since you opened this form. Close it and open it again "
    "to see their change."
)
TEAM_CHANNEL_NOW = "That channel has a team now. Choose a channel of the organisation's own."


def save(db, org: dict, new: dict, user: str, seen: object = None, *, ws: Workspace = SINGLE) -> dict:
    """The settings that differ from those in effect, saved together through ``set_org_many`` (each
    logged with ``user`` and its change in words), or nothing; ``{key: [old, new]}`` for those that
    changed. ``seen``: the settings' version when the form was opened (``OrgConflict`` if it moved)."""
    after = {**org, **new}
    changed = {key: new[key] for key in KEYS if not same_org_value(key, org[key], new[key])}
    if not changed:
        return {}
    version = seen if isinstance(seen, int) and not isinstance(seen, bool) else None
    if seen is not None and version is None:  # a forged version: as if the settings had moved
        raise OrgConflict("the form's version is not a number", "version")
    return set_org_many(
        db, changed, who=user, what=lambda change: describe_org(change, after), seen=version, ws=ws
    )


def _refusal(client, deps, view: dict, user: str, deadline: float) -> dict[str, str] | None:
    """Why ``user`` may not save this form now, as a modal error; ``None`` when they may. The form
    must be theirs (``private_metadata``) and they must be an admin now: at most one ``users.info``
    call, with the short pre-ack client (no retries, within the pre-ack budget)."""
    if not user or private_metadata(view).get("by") != user:
        return {"metrics": NOT_ADMIN}
    admin = may_set(before_ack(client, timeout=max(deadline - time.monotonic(), 0.01)), deps, user)
    if admin is None:
        return {"metrics": ADMIN_UNKNOWN}
    return None if admin else {"metrics": NOT_ADMIN}


def _channel_refusal(client, channel: str, deadline: float) -> dict[str, str] | None:
    """A new org channel the bot is not in, refused on its field: the save would succeed, then the
    announcement and every org digest would fail there with ``not_in_channel``. Asked in what is left
    of the pre-ack budget; no answer in time is a refusal too, never a guess."""
    can = bot_can_post(client, channel, within=deadline - time.monotonic())
    if can is None:
        return {"channel": CHANNEL_UNKNOWN}
    return None if can else {"channel": NOT_IN_CHANNEL}


def _self_removal(client, deps, org: dict, new: dict, user: str, deadline: float) -> dict[str, str] | None:
    """An org admin who is not a workspace admin taking themselves off the org admins, refused on the
    field: the save would lock them out of the form they are in. Slack is asked only in that case."""
    if user not in org_admins(deps) or user in new["admins"] or user in deps.admins:
        return None
    client = before_ack(client, timeout=max(deadline - time.monotonic(), 0.01))
    admin = workspace_admin(client, user, deps.ws)
    if admin is None:  # Slack could not say: refused, never guessed, and not said to be a lock-out
        return {"admins": ADMIN_UNKNOWN}
    return None if admin else {"admins": SELF_REMOVAL}


def submit(ack, body, view, client, context) -> None:
    """The organisation settings form submitted: checked, saved (or answered with inline errors),
    re-planned and announced."""
    deadline = time.monotonic() + PRE_ACK_S  # every Slack call before the 3-second ack, together
    deps = context["deps"]
    view, user = obj(view), user_id(body)
    refused = _refusal(client, deps, view, user, deadline)
    if refused:
        log.info("organisation settings submission refused for %r", user)
        ack(response_action="errors", errors=refused)
        return
    db = deps.store.db
    org = org_settings(get_org(db, ws=deps.ws))
    new, errors = read_org_form(db, view, org, ws=deps.ws)
    if not errors:
        errors = _self_removal(client, deps, org, new, user, deadline) or {}
    if not errors and new["channel"] and new["channel"] != org["channel"]:
        errors = _channel_refusal(client, new["channel"], deadline) or {}
    if errors:
        log.info("organisation settings from %s not saved, errors in: %s", user, ", ".join(sorted(errors)))
        ack(response_action="errors", errors=errors)
        return
    try:
        changes = save(db, org, new, user, private_metadata(view).get("seen"), ws=deps.ws)
    except OrgConflict as exc:  # checked under the write lock: another admin's save, or a new team
        log.info("organisation settings from %s not saved: %s", user, exc)
        said = {"channel": TEAM_CHANNEL_NOW} if exc.key == "channel" else {"metrics": CHANGED_SINCE}
        ack(response_action="errors", errors=said)
        return
    except VsmError as exc:  # checked above: only a rule changed under a running form gets here
        log.info("organisation settings from %s not saved: %s", user, exc)
        ack(response_action="errors", errors={"metrics": str(exc)[:150]})
        return
    ack()
    if changes:
        deps.on_org_saved(deps.ws)
        announce(client, user, changes, org, {**org, **new})


def announce(client, user: str, changes: dict, before: dict, after: dict) -> None:
    """The change, old → new in words, in the org channel (the new one when it moved), naming who made
    it; the channel it moved from is told where it went. No org channel, no announcement."""
    who = f"<@{user}>" if USER_ID.fullmatch(user) else escape_mrkdwn(user)
    said = cut_mrkdwn(
        f"{who} changed the organisation settings: {describe_org(changes, after, mrkdwn=True)}", MESSAGE_TEXT
    )
    old, new = before["channel"], after["channel"]
    posts = [(new, said)] if new else []
    if old and old != new:
        moved = f"{who} moved the organisation channel to <#{new}>: the organisation digest goes there now."
        posts.append((old, moved if new else said))
    for channel, message in posts:
        try:
            client.chat_postMessage(channel=channel, text=message)
        except SlackApiError as exc:  # archived, or the bot left it since: the change is saved and logged
            log.info("organisation settings change not announced in %s: %s", channel, slack_error(exc))
