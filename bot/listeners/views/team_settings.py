"""The team settings modal's submission: metrics, targets, digest schedule, workflow mapping and scope.

Only members of the team's channel may submit it, checked again at the moment of the write; every
change is saved with who and when (``metrics.teams.save_team``) and announced in the channel. The
form itself is ``bot.render.modals.settings_view``, opened by ``bot.listeners.actions.settings``.
"""

from __future__ import annotations

import logging

from bot.authz import MEMBERS_UNKNOWN, PRE_ACK_S
from bot.payload import obj, private_metadata, state_values, text, user_id
from bot.render.templates import escape_mrkdwn
from metrics.catalogue import CATALOGUE
from metrics.config import parse_target
from metrics.errors import VsmError
from metrics.teams import (
    DAYS,
    DIGEST_TIME,
    NUDGE_KINDS,
    TEAM_NAME,
    TEAM_RULES,
    Team,
    TeamConflict,
    create_team,
    save_team,
    team_for_channel,
)
from metrics.workflow import Workflow

log = logging.getLogger("vsm.bot")


def _values(state: dict[str, dict]) -> dict[str, str | list[str]]:
    """Block id -> the submitted string (or strings), from ``bot.payload.state_values``. Anything
    that is not a string where Slack sends one reads as empty, so ``apply`` sees only str and list."""
    out: dict[str, str | list[str]] = {}
    for block_id, actions in state.items():
        for _action_id, v in actions.items():
            if v.get("type") in ("multi_static_select", "checkboxes"):
                options = v.get("selected_options")
                out[block_id] = [text(obj(o).get("value")) for o in options if isinstance(options, list)]
            elif v.get("type") == "static_select":
                out[block_id] = text(obj(v.get("selected_option")).get("value"))
            elif v.get("type") == "timepicker":
                out[block_id] = text(v.get("selected_time"))
            else:
                out[block_id] = text(v.get("value"))
    return out


def _str(values: dict, key: str) -> str:
    return text(values.get(key)).strip()


def _list(values: dict, key: str) -> list[str]:
    got = values.get(key)
    return [x for x in got if isinstance(x, str)] if isinstance(got, list) else []


def apply(team: Team, values: dict) -> tuple[Team, dict[str, str]]:
    """The submitted settings applied to a copy of the team, and inline errors by block id.

    Every value is checked as if forged: Slack sends what the form offered, but a submission is only
    a signed request, so a metric id, day or time outside the form's options is refused here too.
    """
    errors: dict[str, str] = {}
    new = Team.from_json(team.to_json())
    new.name = _str(values, "name")
    if not TEAM_NAME.fullmatch(new.name):
        errors["name"] = "Letters, digits, space, _ . - (up to 64)."
    new.metrics = _list(values, "metrics")
    unknown = [m for m in new.metrics if m not in CATALOGUE]
    if unknown:
        errors["metrics"] = f"Unknown metric “{str(unknown[0])[:40]}”."
    new.targets = _targets(_str(values, "targets"), errors)
    new.timezone = _str(values, "timezone")
    if not TEAM_RULES["timezone"].ok(new.timezone):
        errors["timezone"] = "An IANA time zone such as Europe/London."
    new.digest = _digest(team.digest, values, errors)
    workflow = [{**stage, "statuses": _list(values, f"stage:{stage['stage']}")} for stage in team.workflow]
    try:
        Workflow.from_list(workflow)
        new.workflow = workflow
    except VsmError as exc:
        errors["stage:done"] = str(exc)[:150]
    if "nudges" in values:
        new.nudges = [k for k in NUDGE_KINDS if k in _list(values, "nudges")]
    for key in ("jira_projects", "repos", "services"):
        new_value = [x.strip() for x in _str(values, key).replace("\n", ",").split(",") if x.strip()]
        setattr(new, key, new_value)
    return new, errors


def _targets(text: str, errors: dict[str, str]) -> dict[str, float]:
    """``metric = value`` lines, each read and bounded as the config file's targets are."""
    targets: dict[str, float] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        metric, _, raw = line.partition("=")
        metric = metric.strip()
        if metric not in CATALOGUE:
            errors["targets"] = f"Line {n}: unknown metric “{metric[:40]}”."
            break
        try:
            targets[metric] = parse_target(raw.strip(), metric)
        except VsmError as exc:
            errors["targets"] = f"Line {n}: {metric}: {exc}"[:150]
            break
    return targets


def _digest(current: dict, values: dict, errors: dict[str, str]) -> dict:
    day, time = _str(values, "day") or "mon", _str(values, "time") or "09:00"
    if day not in DAYS:
        errors["day"] = "A day of the week."
    if not time.isascii() or not DIGEST_TIME.fullmatch(time):  # the pattern's \d takes any script's digits
        errors["time"] = "A time such as 09:00."
    elif 1 <= int(time[:2]) < 3:
        errors["time"] = "Pick a time outside 01:00–03:00 (daylight-saving changes skip or repeat it)."
    return {**current, "day": day, "time": time}


def describe(changes: dict) -> str:
    """``metrics: +pr-pickup-time -wip; digest schedule`` from a settings diff."""
    parts = []
    for key, (old, new) in sorted(changes.items()):
        if isinstance(old, list) and isinstance(new, list) and all(isinstance(x, str) for x in old + new):
            delta = [f"+{x}" for x in new if x not in old] + [f"-{x}" for x in old if x not in new]
            parts.append(f"{key}: {' '.join(delta) or 'reordered'}")
        else:
            parts.append(key)
    return "; ".join(parts)


def _create(db, channel: str, user: str, values: dict) -> tuple[Team, dict, dict[str, str]]:
    """The "Set up a team here" form: only ever a new team. A name (or this channel) already taken is
    an error on the form, and nothing is written: submitting `payments` from another channel must not
    take over the payments team, its settings or its digests."""
    new, errors = apply(Team(name="new", channel=channel), values)
    if errors:
        return new, {}, errors
    try:
        return new, create_team(db, new, who=user), {}
    except TeamConflict as exc:
        if exc.key == "name":
            return new, {}, {"name": f"“{new.name}” is another team's name. Choose another one."}
        return new, {}, {"name": "This channel has a team now. Close this form and open /vsm settings again."}
    except VsmError as exc:
        return new, {}, {"name": str(exc)[:150]}


def _edit(db, team: Team, meta: dict, user: str, values: dict) -> tuple[Team, dict, dict[str, str]]:
    """The channel's own team, changed by one of its members: its name and channel stay (they key its
    history, its log and where its digests go)."""
    if meta.get("new") or meta.get("team") != team.name:
        # The form was opened for another team (or to set one up) and the channel's team changed since.
        return (
            team,
            {},
            {"name": "This channel's team changed. Close this form and open /vsm settings again."},
        )
    new, errors = apply(team, values)
    new.name, new.channel = team.name, team.channel
    errors.pop("name", None)
    if errors:
        return new, {}, errors
    try:
        return new, save_team(db, new, who=user), {}
    except VsmError as exc:
        return new, {}, {"name": str(exc)[:150]}


def _refusal(deps, client, meta: dict, user: str) -> dict[str, str] | None:
    """Why ``user`` may not submit this form, as a modal error; ``None`` when they may. The form
    must have been opened by them (``private_metadata``), and they must be in the channel now: leaving
    the channel after opening the form takes the right away (``MemberCache``)."""
    channel = text(meta.get("channel"))
    if not user or not channel or meta.get("by") != user:
        return {"name": "Only members of the team's channel can change it."}
    member = deps.members.is_member(client, channel, user, within=PRE_ACK_S)
    if member is None:
        return {"name": MEMBERS_UNKNOWN}
    if not member:
        return {"name": "Only members of the team's channel can change it, and you are not in it now."}
    return None


def submit(ack, body, client, view, context) -> None:
    """A settings form submitted: checked, saved (or answered with inline errors), announced."""
    deps = context["deps"]
    view = obj(view)
    meta, user = private_metadata(view), user_id(body)
    refused = _refusal(deps, client, meta, user)
    if refused:
        log.info("settings submission refused for %r in %r", user, meta.get("channel"))
        ack(response_action="errors", errors=refused)
        return
    channel = meta["channel"]
    values = _values(state_values(view))
    existing = team_for_channel(deps.store.db, channel)
    if existing is None:
        team, changes, errors = _create(deps.store.db, channel, user, values)
    else:
        team, changes, errors = _edit(deps.store.db, existing, meta, user, values)
    if errors:
        log.info("settings for %s not saved, errors in: %s", channel, ", ".join(sorted(errors)))
        ack(response_action="errors", errors=errors)
        return
    ack()
    if changes:
        deps.on_team_saved(team)
        said = (
            f"set up the team {team.name}"
            if existing is None
            else f"changed the team settings: {describe(changes)}"
        )
        client.chat_postMessage(channel=channel, text=f"<@{user}> {escape_mrkdwn(said)}"[:3900])
