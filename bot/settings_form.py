"""Reading the settings forms: the submitted values as the settings they set, checked as if forged,
with every problem as an inline error by block id.

Both the team form's submission (``bot.listeners.views.team_settings``) and the redraw for a new Jira
scope (``bot.listeners.actions.scope``) read the open form; they read it here, one way. The
organisation settings form (``bot.listeners.views.north_star``) is read here too (``read_org_form``),
with the same readers for what both forms hold: values, targets, the digest's day and time.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.payload import obj, state_values, text
from metrics.catalogue import CATALOGUE
from metrics.catalogue.aliases import metric_id, suggest
from metrics.errors import VsmError
from metrics.scope import SCOPE_LABELS, Known, unknown
from metrics.targets import judged_as, legacy_note, read_target, split_line, words
from metrics.teams import (
    DAYS,
    DIGEST_TIME,
    MAX_ORG_ADMINS,
    NUDGE_KINDS,
    NUMBERS,
    ORG_RULES,
    TEAM_NAME,
    TEAM_RULES,
    Team,
    check_org,
    is_number,
    number_allowed,
    off_north_star,
    team_for_channel,
)
from metrics.workflow import Workflow
from metrics.workspace import SINGLE, Workspace

# Slack documents no length for a modal's inline error; the form keeps each to what a hint, shown in
# the same place, may hold, and far less in practice: every bad target line at once, then "and N more".
ERROR_CHARS = 1000
_WHOLE = re.compile(r"\s*\d{1,4}\s*")


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
    new.metrics = in_current_order(team.metrics, _list(values, "metrics"))
    strangers = [m for m in new.metrics if m not in CATALOGUE]
    if strangers:
        errors["metrics"] = f"Unknown metric “{str(strangers[0])[:40]}”."
    new.targets = read_targets(_str(values, "targets"), errors, team.targets)
    new.timezone = _str(values, "timezone")
    if not TEAM_RULES["timezone"].ok(new.timezone):
        errors["timezone"] = "An IANA time zone such as Europe/London."
    new.digest = read_digest(team.digest, values, errors)
    # Selects send their options in the form's order: a status kept stays where the team had it.
    workflow = [
        {**stage, "statuses": in_current_order(stage["statuses"], _list(values, f"stage:{stage['stage']}"))}
        for stage in team.workflow
    ]
    try:
        Workflow.from_list(workflow)
        new.workflow = workflow
    except VsmError as exc:
        errors["stage:done"] = str(exc)[:150]
    if "nudges" in values:
        new.nudges = in_current_order(team.nudges, [k for k in NUDGE_KINDS if k in _list(values, "nudges")])
    for key in SCOPE_LABELS:
        if key not in values and key == "gitlab_projects":  # a form opened before the field existed
            continue
        entries = in_current_order(getattr(team, key), scope_entries(_str(values, key)))
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


def in_current_order(current: list[str], chosen: list[str]) -> list[str]:
    """The chosen metrics in the team's order: a multi-select sends the catalogue's order, which is
    no choice of the team's, so the metrics kept stay where they were and new ones follow."""
    return [m for m in current if m in chosen] + [m for m in chosen if m not in current]


def read_targets(typed: str, errors: dict[str, str], current: dict | None = None) -> dict[str, float]:
    """``metric = value`` lines (``wip ≤ 8`` for a metric without a better direction), each read and
    checked as the config file's targets are. Every bad line is reported at once, a repeated line's
    bad value as well as its repetition. What older settings allowed (a plain ``wip = 8``, a zero
    bound) is kept as it was when the line is the team's current target untouched: it must not
    block every other change (the form's hint says how to rewrite it); typed anew, it is refused."""
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
        metric = CATALOGUE[mid]
        try:  # a repeated line is read too: a bad value on it is its own problem
            target = read_target(metric, raw, op, legacy=True)
            if legacy_note(metric, target) and judged_as(metric, target) != judged_as(
                metric, current.get(mid)
            ):
                read_target(metric, raw, op)  # raises: what a target typed now must be
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


def read_digest(current: dict, values: dict, errors: dict[str, str]) -> dict:
    """The digest day, time and period as a form typed them (the team's and the org's forms read
    them one way); each bad field's message goes in ``errors``."""
    day, time = _str(values, "day") or "mon", _str(values, "time") or "09:00"
    if day not in DAYS:
        errors["day"] = "A day of the week."
    if not time.isascii() or not DIGEST_TIME.fullmatch(time):  # the pattern's \d takes any script's digits
        errors["time"] = "A time such as 09:00."
    elif 1 <= int(time[:2]) < 3:
        errors["time"] = "Pick a time outside 01:00–03:00 (daylight-saving changes skip or repeat it)."
    return {**current, "day": day, "time": time}


def read_org_form(db, view: dict, org: dict, *, ws: Workspace = SINGLE) -> tuple[dict, dict[str, str]]:
    """The organisation settings form's settings (north_star, targets, channel, timezone, digest,
    admins) and
    inline errors by block id, every field checked as the config's ``[org]`` is. ``org`` is the
    settings in effect (``metrics.teams.org_settings``). A field the submission lacks (a form opened
    by an older vsm-bot, which had only the metrics) keeps the setting in effect: nothing is changed
    that the form did not show. ``ws``: the workspace whose org it is (its teams' channels are taken)."""
    state = state_values(view)
    values = {
        "day": org["digest"]["day"],
        "time": org["digest"]["time"],
        "period_days": str(org["digest"]["period_days"]),
        "timezone": org["timezone"],
        **form_values(state),
    }
    errors: dict[str, str] = {}
    # The select sends the catalogue's order, no choice of the admin's: kept metrics stay in the org's.
    ids = in_current_order(org["north_star"], _list(values, "metrics"))
    problem = _north_star_problem(ids)
    if problem:
        errors["metrics"] = problem
    timezone = _str(values, "timezone")
    if not ORG_RULES["timezone"].ok(timezone):
        errors["timezone"] = "An IANA time zone such as Europe/London."
    digest = read_digest(org["digest"], values, errors)
    digest["period_days"] = _period(_str(values, "period_days"), errors)
    targets = org["targets"]
    if "targets" in values:
        targets = _org_targets(_str(values, "targets"), ids, targets, errors)
    new = {
        "north_star": ids,
        "targets": targets,
        "channel": _org_channel(db, state, errors, ws=ws) if "channel" in state else org["channel"],
        "timezone": timezone,
        "digest": digest,
        "admins": _org_admins(state, errors) if "admins" in state else org["admins"],
    }
    return new, errors


def _org_admins(state: dict, errors: dict[str, str]) -> list[str]:
    """The org admins chosen (``multi_users_select``: ``selected_users``), checked as the config's
    ``[org] admins`` is: a forged entry is refused on the field, not dropped."""
    chosen = obj(obj(state.get("admins")).get("v")).get("selected_users")
    if not isinstance(chosen, list) or not all(isinstance(u, str) for u in chosen):
        errors["admins"] = "Choose people from the list."
        return []
    admins = list(dict.fromkeys(chosen))
    if len(admins) > MAX_ORG_ADMINS:
        errors["admins"] = f"Choose up to {MAX_ORG_ADMINS} people."
    elif not ORG_RULES["admins"].ok(admins):
        errors["admins"] = "Choose people from the list."
    return admins


def _north_star_problem(ids: list[str]) -> str | None:
    """What is wrong with the chosen North Star metrics, checked as the config's ``[org] north_star``
    is: a forged id is refused, not silently dropped (the admin would believe it was saved)."""
    if not 1 <= len(ids) <= 5:
        return "Choose one to five metrics."
    try:
        check_org("north_star", ids)
    except VsmError:
        unknown_id = next((m for m in ids if m not in CATALOGUE), None)
        return f"Unknown metric “{str(unknown_id)[:40]}”." if unknown_id else "Choose each metric once."
    return None


def _org_targets(typed: str, ids: list[str], current: dict, errors: dict[str, str]) -> dict:
    """The org's targets, read as a team's are (every bad line at once), and only for the North Star
    metrics chosen: a target for another metric would be stored and never shown."""
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


def _org_channel(db, state: dict, errors: dict[str, str], *, ws: Workspace = SINGLE) -> str:
    """The org channel chosen (``""``: none): a channel id, and not a team's channel, where
    ``/vsm digest`` is the team's own digest (a team of ``ws``: another workspace's channels are not
    this one's). Whether the bot can post there is Slack's to say
    (``bot.authz.bot_can_post``, asked by the submission)."""
    chosen = text(obj(obj(state.get("channel")).get("v")).get("selected_conversation"))
    if not ORG_RULES["channel"].ok(chosen):
        errors["channel"] = "Choose a public or private channel."
        return chosen
    team = team_for_channel(db, chosen, ws=ws) if chosen else None
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
