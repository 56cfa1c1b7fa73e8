"""The organisation settings form's submission (the North Star form): the North Star metrics, their
targets, the org channel, the org digest's schedule and the org time zone. Workspace admins and the
users named in ``[org] admins`` may save it, checked again at the moment of the write.

Every field is read as if forged and checked as the config file's ``[org]`` is (``metrics.teams``'
rules; targets by ``bot.settings_form.read_targets``, as a team's); a bad one is an inline error on
its field and nothing is saved. Each changed setting goes through ``metrics.teams.set_org``, which
logs who, when and what in words; then the org digest is re-planned (``deps.on_org_saved``) and the
change is announced old → new in the org channel. A save that changes nothing writes and says nothing.
"""

from __future__ import annotations

import logging
import re

from slack_sdk.errors import SlackApiError

from bot.authz import before_ack, may_set
from bot.logline import slack_error
from bot.payload import obj, private_metadata, state_values, text, user_id
from bot.render.settings_changes import describe_org
from bot.render.templates import escape_mrkdwn
from bot.settings_form import ERROR_CHARS, form_values, in_current_order, read_digest, read_targets
from metrics.catalogue import CATALOGUE
from metrics.errors import VsmError
from metrics.targets import words
from metrics.teams import (
    NUMBERS,
    ORG_RULES,
    USER_ID,
    check_org,
    get_org,
    is_number,
    number_allowed,
    off_north_star,
    org_settings,
    org_version,
    same_org_value,
    set_org,
    team_for_channel,
)

log = logging.getLogger("vsm.bot")

# The settings the form sets, in the order it shows them (and the announcement words them).
KEYS = ("north_star", "targets", "channel", "timezone", "digest")
NOT_ADMIN = "Only workspace admins can change the organisation settings."
CHANGED_SINCE = (
    "Someone changed the organisation settings since you opened this form. Close it and open it again "
    "to see their change."
)
_WHOLE = re.compile(r"\s*\d{1,4}\s*")


def _problem(ids: list) -> str | None:
    """What is wrong with a submitted choice, checked as the config's ``[org] north_star`` is: a
    forged id is refused, not silently dropped (the admin would believe it was saved)."""
    if not 1 <= len(ids) <= 5:
        return "Choose one to five metrics."
    try:
        check_org("north_star", ids)
    except VsmError:
        unknown = next((m for m in ids if m not in CATALOGUE), None)
        return f"Unknown metric “{str(unknown)[:40]}”." if unknown else "Choose each metric once."
    return None


def _targets(typed: str, ids: list[str], current: dict, errors: dict[str, str]) -> dict:
    """The targets, read as a team's are (every bad line at once), and only for the North Star
    metrics chosen above: a target for another metric would be stored and never shown."""
    targets = read_targets(typed, errors, current)
    off = off_north_star(targets, ids)
    if off:
        names = ", ".join(words(CATALOGUE[m].name) for m in off)
        said = (
            f"{names[:200]}: not among the North Star metrics above, and the organisation's targets are "
            "shown only beside them. Choose the metric above, or remove its line."
        )
        errors["targets"] = f"{errors['targets']} {said}" if "targets" in errors else said
    if "targets" in errors:
        errors["targets"] = errors["targets"][:ERROR_CHARS]
    return targets


def _channel(db, state: dict, errors: dict[str, str]) -> str:
    """The org channel chosen (``""``: none): a channel id, and not a team's channel, where
    ``/vsm digest`` is the team's own digest."""
    chosen = text(obj(obj(state.get("channel")).get("v")).get("selected_conversation"))
    if not ORG_RULES["channel"].ok(chosen):
        errors["channel"] = "Choose a public or private channel."
        return chosen
    team = team_for_channel(db, chosen) if chosen else None
    if team is not None:
        errors["channel"] = (
            f"That is the channel of the team {team.name[:64]}. Choose a channel of the organisation's own."
        )
    return chosen


def _period(typed: str, errors: dict[str, str]) -> int:
    """The digest's period in whole days, checked as the config's ``period_days`` is."""
    low, high, whole, _ = NUMBERS["period_days"]
    days = int(typed) if _WHOLE.fullmatch(typed) and typed.isascii() else None
    if days is None or not is_number(days, low, high, whole):
        allowed = number_allowed("period_days")
        errors["period_days"] = f"{allowed[:1].upper()}{allowed[1:]}."
        return 0
    return days


def read_form(db, view: dict, org: dict) -> tuple[dict, dict[str, str]]:
    """The submitted settings (``KEYS``) and inline errors by block id, every field checked. A field
    the submission lacks (a form opened by an older vsm-bot, which had only the metrics) keeps the
    setting in effect: nothing is changed that the form did not show."""
    state = state_values(view)
    values = {
        "day": org["digest"]["day"],
        "time": org["digest"]["time"],
        "period_days": str(org["digest"]["period_days"]),
        "timezone": org["timezone"],
        **form_values(state),
    }
    errors: dict[str, str] = {}
    chosen = values.get("metrics")
    # The select sends the catalogue's order, no choice of the admin's: kept metrics stay in the org's.
    ids = in_current_order(
        org["north_star"], [m for m in chosen if isinstance(m, str)] if isinstance(chosen, list) else []
    )
    problem = _problem(ids)
    if problem:
        errors["metrics"] = problem
    timezone = text(values.get("timezone")).strip()
    if not ORG_RULES["timezone"].ok(timezone):
        errors["timezone"] = "An IANA time zone such as Europe/London."
    digest = read_digest(org["digest"], values, errors)
    digest["period_days"] = _period(text(values.get("period_days")), errors)
    targets = org["targets"]
    if "targets" in values:
        targets = _targets(text(values.get("targets")), ids, targets, errors)
    new = {
        "north_star": ids,
        "targets": targets,
        "channel": _channel(db, state, errors) if "channel" in state else org["channel"],
        "timezone": timezone,
        "digest": digest,
    }
    return new, errors


def save(db, org: dict, new: dict, user: str) -> dict:
    """Each setting that differs from the one in effect saved through ``set_org`` (logged with
    ``user`` and the change in words); ``{key: [old, new]}`` for those that changed."""
    after = {**org, **new}
    changes = {}
    for key in KEYS:
        if same_org_value(key, org[key], new[key]):
            continue
        change = {key: [org[key], new[key]]}
        if set_org(db, key, new[key], who=user, what=describe_org(change, after)):
            changes.update(change)
    return changes


def _refusal(client, deps, view: dict, user: str) -> dict[str, str] | None:
    """Why ``user`` may not save this form now, as a modal error; ``None`` when they may. The form
    must be theirs (``private_metadata``) and they must be an admin now: one ``users.info`` call,
    with the short pre-ack client (no retries, 2 s)."""
    if not user or private_metadata(view).get("by") != user:
        return {"metrics": NOT_ADMIN}
    admin = may_set(before_ack(client), deps, user)
    if admin is None:
        return {"metrics": "Slack could not say whether you are a workspace admin just now; try again."}
    return None if admin else {"metrics": NOT_ADMIN}


def submit(ack, body, view, client, context) -> None:
    """The organisation settings form submitted: checked, saved (or answered with inline errors),
    re-planned and announced."""
    deps = context["deps"]
    view, user = obj(view), user_id(body)
    refused = _refusal(client, deps, view, user)
    if refused:
        log.info("organisation settings submission refused for %r", user)
        ack(response_action="errors", errors=refused)
        return
    db = deps.store.db
    org = org_settings(get_org(db))
    new, errors = read_form(db, view, org)
    seen = private_metadata(view).get("seen")
    if not errors and seen is not None and seen != org_version(db):
        errors = {"metrics": CHANGED_SINCE}
    if errors:
        log.info("organisation settings from %s not saved, errors in: %s", user, ", ".join(sorted(errors)))
        ack(response_action="errors", errors=errors)
        return
    try:
        changes = save(db, org, new, user)
    except VsmError as exc:  # checked above: only a rule changed under a running form gets here
        log.info("organisation settings from %s not saved: %s", user, exc)
        ack(response_action="errors", errors={"metrics": str(exc)[:150]})
        return
    ack()
    if changes:
        deps.on_org_saved()
        announce(client, user, changes, org, {**org, **new})


def announce(client, user: str, changes: dict, before: dict, after: dict) -> None:
    """The change, old → new in words, in the org channel (the new one when it moved), naming who made
    it; the channel it moved from is told where it went. No org channel, no announcement."""
    who = f"<@{user}>" if USER_ID.fullmatch(user) else escape_mrkdwn(user)
    said = f"{who} changed the organisation settings: {describe_org(changes, after, mrkdwn=True)}"[:3900]
    old, new = before["channel"], after["channel"]
    posts = [(new, said)] if new else []
    if old and old != new:
        moved = f"{who} moved the organisation channel to <#{new}>: the organisation digest goes there now."
        posts.append((old, moved if new else said))
    for channel, message in posts:
        try:
            client.chat_postMessage(channel=channel, text=message)
        except SlackApiError as exc:  # archived, or the bot is not in it: the change is saved and logged
            log.info("organisation settings change not announced in %s: %s", channel, slack_error(exc))
