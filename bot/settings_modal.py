"""The team settings modal: metrics, targets, digest schedule, workflow mapping and data scope.

Only members of the team's channel may open or submit it; every change is saved with who and when
(``metrics.teams.save_team``) and announced in the channel.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.command_parse import obj, private_metadata, state_values, text, user_id
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


MEMBERS_TTL = 60.0
PRE_ACK_S = 2.0
"""The most a membership check made before a 3-second acknowledgement may take, all of it: waiting
for another click's fetch of the same channel, and every page of ``conversations.members``."""
MEMBERS_UNKNOWN = "Could not check the channel's members just now; try again in a minute."


class MemberCache:
    """Who is in each channel, as ``conversations.members`` said at most ``ttl`` seconds ago.

    Every change (a settings save, a team set up, a digest posted, nudges snoozed) is authorised
    against the channel's members when it happens, not only when its form was opened: someone who left
    the channel since cannot use a form or a preview they still hold. The check sits before a modal's
    3-second acknowledgement, so it must be quick, and a burst of clicks (a preview posted by several
    people, a double click) must not cost a call each: one paged fetch per channel serves them all for
    ``ttl`` seconds. 60 s bounds how long someone removed from a channel keeps its rights, and keeps a
    busy channel far below ``conversations.members``' tier-4 limit (100+ calls a minute).
    """

    def __init__(self, ttl: float = MEMBERS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def is_member(self, client, channel: str, user: str, *, within: float | None = None) -> bool | None:
        """Whether ``user`` is in ``channel``; ``None`` when Slack could not say (the caller refuses).

        ``within``: seconds the whole check may take (``PRE_ACK_S`` before an acknowledgement). The
        wait for another click's fetch and every page share it, each call is made without retries
        (``before_ack``) in the time left, and running out is ``None``, as when Slack fails."""
        if not channel or not user:
            return False
        deadline = None if within is None else self.clock() + within
        with self._lock:
            lock = self._locks.setdefault(channel, threading.Lock())
        # Concurrent clicks on one channel wait for one fetch (a check with a deadline, only so long).
        if not lock.acquire(timeout=-1 if deadline is None else max(deadline - self.clock(), 0)):
            log.warning("membership of %s unknown: another read of it is still running", channel)
            return None
        try:
            cached = self._members.get(channel)
            if cached is None or self.clock() - cached[0] >= self.ttl:
                try:
                    cached = (self.clock(), frozenset(self._fetch(client, channel, deadline)))
                except (SlackApiError, SlackClientError, OSError) as exc:
                    log.warning("membership of %s unknown: %s", channel, _reason(exc))
                    return None
                self._members[channel] = cached
        finally:
            lock.release()
        return user in cached[1]

    def _fetch(self, client, channel: str, deadline: float | None) -> set[str]:
        """Every member of ``channel`` (paged ``conversations.members``), by ``deadline`` if given:
        each page then gets the time left, and none left raises ``TimeoutError``."""
        members: set[str] = set()
        cursor = None
        while True:
            page = client
            if deadline is not None:
                left = deadline - self.clock()
                if left <= 0:
                    raise TimeoutError(f"{len(members)} members read when the time ran out")
                page = before_ack(client, timeout=left)
            resp = page.conversations_members(channel=channel, cursor=cursor, limit=1000)
            members |= {m for m in resp.get("members") or [] if isinstance(m, str)}
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return members


def _reason(exc: Exception) -> str:
    """A Slack failure in a few words (its error code), never the request (which carries the token)."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return type(exc).__name__


def before_ack(client, timeout: float = PRE_ACK_S) -> WebClient:
    """``client`` without retries and with a short timeout (2 s), for a call made before a 3-second
    acknowledgement: the app's client sleeps through rate limits, which Slack would not wait for."""
    return WebClient(token=client.token, base_url=client.base_url, timeout=timeout, retry_handlers=[])


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
    """The settings modal; ``opener`` (a channel member when it opened) is recorded so only they can
    submit it, and only while still a member (``MemberCache``). ``new``: the form sets up a team (the
    channel had none), so its submission may only create one."""
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


def tell(respond, message: str = "", **payload) -> None:
    """Answer a click through its ``response_url``, when it has one: a click in App Home (or a forged
    one) has none, and then the log line is all the answer there is."""
    try:
        if message:
            payload = {"replace_original": False, "text": message, **payload}
        respond(**payload)
    except Exception as exc:  # noqa: BLE001 - see above; respond raises ValueError or a network error
        log.info("could not answer (%s): %s", type(exc).__name__, message or payload.get("text", ""))


def allowed(deps, client, channel: str, user: str, respond, refusal: str) -> bool:
    """Whether ``user`` is in ``channel`` now (``deps.members``), for a click made after its ack. When
    not, the refusal is logged and told to the clicker: ``refusal``, or ``MEMBERS_UNKNOWN`` when Slack
    could not say."""
    member = deps.members.is_member(client, channel, user)
    if not member:
        said = MEMBERS_UNKNOWN if member is None else refusal
        log.info("refused %r in %r: %s", user, channel, said)
        tell(respond, said)
    return bool(member)


def open_modal(client, deps, trigger_id: str | None, user: str | None, channel: str, respond) -> None:
    db = deps.store.db
    refusal = "Only members of the team's channel can change its settings."
    if not allowed(deps, client, channel, user or "", respond, refusal):
        return
    team = team_for_channel(db, channel)
    new = team is None
    team = team or Team(name=f"team-{channel.lower()}", channel=channel)
    try:
        client.views_open(trigger_id=trigger_id, view=view(db, team, channel, opener=user, new=new))
    except SlackApiError as exc:  # an expired or forged trigger_id
        log.info("settings modal not opened for %s: %s", user, _reason(exc))
        tell(respond, "Slack would not open the settings form; run `/vsm settings` again.")


def _values(state: dict[str, dict]) -> dict[str, str | list[str]]:
    """Block id -> the submitted string (or strings), from ``command_parse.state_values``. Anything
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


def register(app: App, deps) -> None:
    @app.view(CALLBACK)
    def submit(ack, body, client, view):
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
