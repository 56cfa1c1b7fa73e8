"""The team settings modal's submission: metrics, targets, digest schedule, workflow mapping and scope.

Only members of the team's channel may submit it, checked again at the moment of the write; every
change is saved with who and when (``metrics.teams.save_team``) and announced in the channel. The
form itself is ``bot.render.modals.settings_view``, opened by ``bot.listeners.actions.settings``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache

from bot.authz import MEMBERS_UNKNOWN, PRE_ACK_S
from bot.payload import obj, private_metadata, state_values, text, user_id
from bot.render.settings_changes import created, describe
from bot.render.templates import escape_mrkdwn
from metrics.catalogue import CATALOGUE
from metrics.catalogue.aliases import metric_id, suggest
from metrics.errors import VsmError
from metrics.scope import SCOPE_LABELS, Known, known, unknown
from metrics.targets import read_target, split_line, undirected
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

# Slack documents no length for a modal's inline error; the form keeps each to what a hint, shown in
# the same place, may hold, and far less in practice: every bad target line at once, then "and N more".
ERROR_CHARS = 1000


def form_values(state: dict[str, dict]) -> dict[str, str | list[str]]:
    """Block id -> the submitted string (or strings), from ``bot.payload.state_values``. Anything
    that is not a string where Slack sends one reads as empty, so ``apply`` sees only str and list."""
    out: dict[str, str | list[str]] = {}
    for block_id, actions in state.items():
        for _action_id, v in actions.items():
            if v.get("type") in ("multi_static_select", "checkboxes"):
                options = v.get("selected_options")
                out[block_id] = [
                    text(obj(o).get("value")) for o in (options if isinstance(options, list) else [])
                ]
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


def apply(team: Team, values: dict, synced: Callable[[], Known] | None = None) -> tuple[Team, dict[str, str]]:
    """The submitted settings applied to a copy of the team, and inline errors by block id.

    Every value is checked as if forged: Slack sends what the form offered, but a submission is only
    a signed request, so a metric id, day or time outside the form's options is refused here too.
    ``synced`` (``metrics.scope.known`` on the store): names added to the data scope are checked
    against what the sources hold; it is read only when a name was added.
    """
    errors: dict[str, str] = {}
    new = Team.from_json(team.to_json())
    new.name = _str(values, "name")
    if not TEAM_NAME.fullmatch(new.name):
        errors["name"] = "Letters, digits, space, _ . - (up to 64)."
    new.metrics = _in_team_order(team.metrics, _list(values, "metrics"))
    strangers = [m for m in new.metrics if m not in CATALOGUE]
    if strangers:
        errors["metrics"] = f"Unknown metric “{str(strangers[0])[:40]}”."
    new.targets = _targets(_str(values, "targets"), errors, team.targets)
    new.timezone = _str(values, "timezone")
    if not TEAM_RULES["timezone"].ok(new.timezone):
        errors["timezone"] = "An IANA time zone such as Europe/London."
    new.digest = _digest(team.digest, values, errors)
    # Selects send their options in the form's order: a status kept stays where the team had it.
    workflow = [
        {**stage, "statuses": _in_team_order(stage["statuses"], _list(values, f"stage:{stage['stage']}"))}
        for stage in team.workflow
    ]
    try:
        Workflow.from_list(workflow)
        new.workflow = workflow
    except VsmError as exc:
        errors["stage:done"] = str(exc)[:150]
    if "nudges" in values:
        new.nudges = _in_team_order(team.nudges, [k for k in NUDGE_KINDS if k in _list(values, "nudges")])
    for key in SCOPE_LABELS:
        if key not in values and key == "gitlab_projects":  # a form opened before the field existed
            continue
        entries = _in_team_order(getattr(team, key), scope_entries(_str(values, key)))
        setattr(new, key, entries)
        # Only what the team adds is checked: a name kept from before stays, synced or not.
        added = [e for e in entries if e not in getattr(team, key)]
        problem = unknown(key, added, synced().get(key)) if added and synced else None
        if problem:
            errors[key] = problem[:ERROR_CHARS]
    return new, errors


def scope_entries(typed: str) -> list[str]:
    """``PAY, WEB`` (or one a line) as a list, each once, in the order typed."""
    entries = [x.strip() for x in typed.replace("\n", ",").split(",") if x.strip()]
    return list(dict.fromkeys(entries))


def _in_team_order(current: list[str], chosen: list[str]) -> list[str]:
    """The chosen metrics in the team's order: a multi-select sends the catalogue's order, which is
    no choice of the team's, so the metrics kept stay where they were and new ones follow."""
    return [m for m in current if m in chosen] + [m for m in chosen if m not in current]


def _targets(typed: str, errors: dict[str, str], current: dict | None = None) -> dict[str, float]:
    """``metric = value`` lines (``wip ≤ 8`` for a metric without a better direction), each read and
    checked as the config file's targets are. Every bad line is reported at once. A plain number on a
    metric without a direction (``wip = 8``, from before targets had one) is kept as it was, unjudged,
    when the line is the team's current target untouched: it must not block every other change."""
    targets: dict[str, float] = {}
    problems: list[str] = []
    lines: dict[str, int] = {}
    current = current or {}
    for n, line in enumerate(typed.splitlines(), start=1):
        if not line.strip():
            continue
        name, op, raw = split_line(line)
        mid = metric_id(name) if name else None
        if not op:
            problems.append(f"Line {n}: write it as metric = value, e.g. cycle-time = 5d.")
            continue
        if mid is None:
            close = suggest(name.split())
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"Line {n}: unknown metric “{name[:40]}”{hint}.")
            continue
        if mid in lines:
            problems.append(f"Line {n}: {mid} already has a target on line {lines[mid]}.")
        try:  # a repeated line is read too: a bad value on it is its own problem
            target = read_target(CATALOGUE[mid], raw, op, plain_ok=True)
            if undirected(target) and not (undirected(current.get(mid)) and current[mid] == target):
                read_target(CATALOGUE[mid], raw, op)  # raises: say which way the team wants it
        except VsmError as exc:
            problems.append(f"Line {n}: {mid}: {exc}.")
            continue
        if mid not in lines:
            lines[mid] = n
            targets[mid] = target
    if problems:
        errors["targets"] = _listed(problems)
    return targets


def _listed(problems: list[str]) -> str:
    """Every problem, one after another, within ``ERROR_CHARS``: what does not fit is counted."""
    said = ""
    for i, p in enumerate(problems):
        rest = len(problems) - i - 1
        tail = f" (and {rest} more)" if rest else ""
        if len(said) + len(p) + 1 + len(tail) > ERROR_CHARS:
            return f"{said} (and {len(problems) - i} more)".strip()
        said = f"{said} {p}".strip()
    return said


def _digest(current: dict, values: dict, errors: dict[str, str]) -> dict:
    day, time = _str(values, "day") or "mon", _str(values, "time") or "09:00"
    if day not in DAYS:
        errors["day"] = "A day of the week."
    if not time.isascii() or not DIGEST_TIME.fullmatch(time):  # the pattern's \d takes any script's digits
        errors["time"] = "A time such as 09:00."
    elif 1 <= int(time[:2]) < 3:
        errors["time"] = "Pick a time outside 01:00–03:00 (daylight-saving changes skip or repeat it)."
    return {**current, "day": day, "time": time}


def _synced(db) -> Callable[[], Known]:
    """What the sources know, read once and only if asked (a save that adds no scope reads nothing)."""
    return cache(lambda: known(db))


def _create(db, channel: str, user: str, values: dict) -> tuple[Team, dict, dict[str, str]]:
    """The "Set up a team here" form: only ever a new team. A name (or this channel) already taken is
    an error on the form, and nothing is written: submitting `payments` from another channel must not
    take over the payments team, its settings or its digests."""
    new, errors = apply(Team(name="new", channel=channel), values, _synced(db))
    if errors:
        return new, {}, errors
    try:
        return new, create_team(db, new, who=user, what=lambda _: created(new)), {}
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
    new, errors = apply(team, values, _synced(db))
    new.name, new.channel = team.name, team.channel
    errors.pop("name", None)
    if errors:
        return new, {}, errors
    try:
        return new, save_team(db, new, who=user, what=lambda changes: describe(changes, new)), {}
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
    values = form_values(state_values(view))
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
        what = created(team) if existing is None else describe(changes, team)
        if what:  # a change with nothing to say in words (an order only) is saved, not announced
            said = what if existing is None else f"changed the team settings: {what}"
            client.chat_postMessage(channel=channel, text=f"<@{user}> {escape_mrkdwn(said)}"[:3900])
