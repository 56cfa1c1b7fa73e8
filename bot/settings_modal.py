"""The team settings modal: metrics, targets, digest schedule, workflow mapping and data scope.

Only members of the team's channel may open or submit it; every change is saved with who and when
(``metrics.teams.save_team``) and announced in the channel.
"""

from __future__ import annotations

import json
import logging
import re

from slack_bolt import App

from bot.render import escape_mrkdwn, render_json
from metrics.catalogue import CATALOGUE
from metrics.config import parse_target
from metrics.errors import VsmError
from metrics.teams import DAYS, NUDGE_KINDS, Team, save_team, team_for_channel
from metrics.timeutil import zone
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


def view(db, team: Team, channel: str, opener: str | None = None) -> dict:
    """The settings modal; ``opener`` (a channel member, checked when it opened) is recorded so the
    submission is accepted without another membership call before Slack's 3-second ack."""
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
        meta=json.dumps({"channel": channel, "team": team.name, "by": opener}),
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
    team = team_for_channel(db, channel) or Team(name=f"team-{channel.lower()}", channel=channel)
    client.views_open(trigger_id=trigger_id, view=view(db, team, channel, opener=user))


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
    """The submitted settings applied to a copy of the team, and inline errors by block id."""
    errors: dict[str, str] = {}
    new = Team.from_json(team.to_json())
    name = (values.get("name") or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}", name):
        errors["name"] = "Letters, digits, space, _ . - (up to 64)."
    new.name = name
    new.metrics = values.get("metrics") or []
    targets: dict[str, float] = {}
    for n, line in enumerate((values.get("targets") or "").splitlines(), start=1):
        if not line.strip():
            continue
        metric, _, raw = line.partition("=")
        metric = metric.strip()
        if metric not in CATALOGUE:
            errors["targets"] = f"Line {n}: unknown metric “{metric[:40]}”."
            break
        try:
            targets[metric] = parse_target(raw.strip())
        except VsmError as exc:
            errors["targets"] = f"Line {n}: {exc}"[:150]
            break
    new.targets = targets
    tz = (values.get("timezone") or "").strip()
    try:
        zone(tz)
    except VsmError:
        errors["timezone"] = "An IANA time zone such as Europe/London."
    new.timezone = tz
    new.digest = {**team.digest, "day": values.get("day") or "mon", "time": values.get("time") or "09:00"}
    hour = int((values.get("time") or "09:00")[:2])
    if 1 <= hour < 3:
        errors["time"] = "Pick a time outside 01:00–03:00 (daylight-saving changes skip or repeat it)."
    workflow = []
    for stage in team.workflow:
        chosen = values.get(f"stage:{stage['stage']}") or []
        workflow.append({**stage, "statuses": chosen})
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
        db = deps.store.db
        existing = team_for_channel(db, channel)
        team = existing or Team(name=meta.get("team") or channel, channel=channel)
        new, errors = apply(team, _values(view["state"]))
        if existing is not None:
            new.name = existing.name  # a team keeps its name: it keys its history and its log
            errors.pop("name", None)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        try:
            changes = save_team(db, new, who=user, what=None)
        except VsmError as exc:
            ack(response_action="errors", errors={"name": str(exc)[:150]})
            return
        ack()
        if changes:
            deps.on_team_saved(new)
            client.chat_postMessage(
                channel=channel,
                text=f"<@{user}> changed the team settings: {escape_mrkdwn(describe(changes))}"[:3900],
            )
