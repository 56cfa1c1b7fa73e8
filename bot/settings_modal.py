"""The team settings modal: metrics, targets, digest schedule, workflow mapping and data scope.

Only members of the team's channel may open or submit it; every change is saved with who and when
(``metrics.teams.save_team``) and announced in the channel.
"""

from __future__ import annotations

import json
import logging

from slack_bolt import App

from bot.render import escape_mrkdwn, render_json
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
CALLBACK = "team_settings"


def is_member(client, channel: str, user: str) -> bool:
    """Whether ``user`` is in ``channel`` (paged ``conversations.members``)."""
    cursor = None
    while True:
        resp = client.conversations_members(channel=channel, cursor=cursor, limit=1000)
        if user in resp.get("members", []):
            return True
        cursor = (resp.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return False


def user_channels(client, user: str) -> set[str]:
    """Every channel ``user`` is in that the bot can see (paged ``users.conversations``): one call
    for all of a user's teams instead of a membership check per team."""
    channels: set[str] = set()
    cursor = None
    while True:
        resp = client.users_conversations(
            user=user,
            types="public_channel,private_channel",
            exclude_archived=True,
            limit=1000,
            cursor=cursor,
        )
        channels |= {c["id"] for c in resp.get("channels", [])}
        cursor = (resp.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return channels


def seen_statuses(db, team: Team) -> list[str]:
    """Statuses actually seen in the team's items (current and historical), most used first."""
    if not team.jira_projects:
        return []
    marks = ",".join("?" * len(team.jira_projects))
    rows = db.execute(
        f"select s.name, count(*) as n from transitions t join statuses s on s.source = t.source "
        f"and s.code = t.to_code where t.project in ({marks}) and s.name != '' group by s.name "
        f"order by n desc limit 100",
        team.jira_projects,
    ).fetchall()
    return [r[0] for r in rows]


NUDGE_LABELS = {
    "target": "Targets: a heads-up before one is missed, a note when it is",
    "stale-prs": "Pull requests waiting for a first review",
    "aging-items": "Work items older than our usual cycle time",
}


def view(db, team: Team, channel: str, opener: str | None = None, new: bool = False) -> dict:
    """The settings modal; ``opener`` (a channel member, checked when it opened) is recorded so the
    submission is accepted without another membership call before Slack's 3-second ack. ``new``: the
    form sets up a team (the channel had none), so its submission may only create one."""
    seen = seen_statuses(db, team)
    mapped = {s.lower() for stage in team.workflow for s in stage["statuses"]}
    statuses = sorted(set(seen) | {s for stage in team.workflow for s in stage["statuses"]})[:100]
    return render_json(
        "settings_modal.json.j2",
        team=team,
        channel=channel,
        metrics=list(CATALOGUE.values()),
        days=DAYS,
        nudge_kinds=NUDGE_LABELS,
        targets="\n".join(f"{k} = {v:g}" for k, v in team.targets.items()),
        statuses=statuses,
        unmapped=[s for s in seen if s.lower() not in mapped],
        meta=json.dumps({"channel": channel, "team": team.name, "by": opener, "new": new}),
    )


def open_modal(client, deps, trigger_id: str | None, user: str | None, channel: str, respond) -> None:
    db = deps.store.db
    if not user or not is_member(client, channel, user):
        try:
            respond(
                replace_original=False, text="Only members of the team's channel can change its settings."
            )
        except Exception:  # noqa: BLE001 - App Home has no response URL; the modal simply does not open
            log.info("settings refused for %s in %s", user, channel)
        return
    team = team_for_channel(db, channel)
    new = team is None
    team = team or Team(name=f"team-{channel.lower()}", channel=channel)
    client.views_open(trigger_id=trigger_id, view=view(db, team, channel, opener=user, new=new))


def _values(state: dict) -> dict:
    out = {}
    for block_id, actions in state.get("values", {}).items():
        for _action_id, v in actions.items():
            if v.get("type") in ("multi_static_select", "checkboxes"):
                out[block_id] = [o["value"] for o in v.get("selected_options") or []]
            elif v.get("type") == "static_select":
                out[block_id] = (v.get("selected_option") or {}).get("value")
            elif v.get("type") == "timepicker":
                out[block_id] = v.get("selected_time")
            else:
                out[block_id] = v.get("value")
    return out


def apply(team: Team, values: dict) -> tuple[Team, dict[str, str]]:
    """The submitted settings applied to a copy of the team, and inline errors by block id.

    Every value is checked as if forged: Slack sends what the form offered, but a submission is only
    a signed request, so a metric id, day or time outside the form's options is refused here too.
    """
    errors: dict[str, str] = {}
    new = Team.from_json(team.to_json())
    new.name = str(values.get("name") or "").strip()
    if not TEAM_NAME.fullmatch(new.name):
        errors["name"] = "Letters, digits, space, _ . - (up to 64)."
    new.metrics = values.get("metrics") or []
    unknown = [m for m in new.metrics if m not in CATALOGUE]
    if unknown:
        errors["metrics"] = f"Unknown metric “{str(unknown[0])[:40]}”."
    new.targets = _targets(values.get("targets") or "", errors)
    new.timezone = str(values.get("timezone") or "").strip()
    if not TEAM_RULES["timezone"].ok(new.timezone):
        errors["timezone"] = "An IANA time zone such as Europe/London."
    new.digest = _digest(team.digest, values, errors)
    workflow = [{**stage, "statuses": values.get(f"stage:{stage['stage']}") or []} for stage in team.workflow]
    try:
        Workflow.from_list(workflow)
        new.workflow = workflow
    except VsmError as exc:
        errors["stage:done"] = str(exc)[:150]
    if "nudges" in values:
        new.nudges = [k for k in NUDGE_KINDS if k in (values.get("nudges") or [])]
    for key in ("jira_projects", "repos", "services"):
        new_value = [x.strip() for x in (values.get(key) or "").replace("\n", ",").split(",") if x.strip()]
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
    day, time = values.get("day") or "mon", values.get("time") or "09:00"
    if day not in DAYS:
        errors["day"] = "A day of the week."
    if not DIGEST_TIME.fullmatch(str(time)):
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


def register(app: App, deps) -> None:
    @app.view(CALLBACK)
    def submit(ack, body, client, view):
        meta = json.loads(view.get("private_metadata") or "{}")
        channel, user = meta.get("channel", ""), body["user"]["id"]
        if not user or meta.get("by") != user:
            ack(
                response_action="errors", errors={"name": "Only members of the team's channel can change it."}
            )
            return
        existing = team_for_channel(deps.store.db, channel)
        if existing is None:
            team, changes, errors = _create(deps.store.db, channel, user, _values(view["state"]))
        else:
            team, changes, errors = _edit(deps.store.db, existing, meta, user, _values(view["state"]))
        if errors:
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
