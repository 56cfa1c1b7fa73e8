"""A settings change in words a lead understands, for the channel and the settings log.

``describe`` turns a saved change (``metrics.teams.diff``: ``{key: [old, new]}``) into phrases such as
"digest: Mon 09:30 → Wed 10:15 America/New_York", "metrics: added PR pickup time, removed Work in
progress", "target cycle time: ≤ 10.0 d → ≤ 8.0 d", "workflow: In Review moved from Review to In
progress"; ``created`` says what a new team starts with in one sentence. Plain text: the caller
escapes it for mrkdwn.
"""

from __future__ import annotations

from bot.render.targets import bound
from bot.render.teams import every
from bot.render.templates import escape_mrkdwn
from metrics.behind import readable_stage
from metrics.catalogue import CATALOGUE
from metrics.scope import SCOPE_LABELS
from metrics.targets import judged_as, words
from metrics.teams import CHANNEL_ID, ORG_DIGEST, Team

# The settings the form does not show, as a lead would name them when they change some other way.
LABELS = {
    "name": "name",
    "channel": "channel",
    "jql": "JQL filter",
    "boards": "boards",
    "work_types": "work types",
    "discarded_resolutions": "discarded resolutions",
    "impediments_wait": "impediments count as waiting",
    "include_bot_prs": "bot pull requests included",
    "rework_patterns": "rework patterns",
    "stale_pr_hours": "stale pull request threshold",
    "nudge_repeat_hours": "nudge repeat interval",
    "snooze_until": "nudges snoozed until",
}
NUDGE_NAMES = {"target": "targets", "stale-prs": "waiting pull requests", "aging-items": "aging items"}
LIST_MAX = 5  # names listed before "and N more"


def listed(names: list[str], limit: int = LIST_MAX) -> str:
    """``a, b and 3 more``: a list a sentence can hold."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def metric_name(mid: str) -> str:
    metric = CATALOGUE.get(mid)
    return metric.name if metric else mid


def _schedule(digest: dict, tz: str | None) -> str:
    day = str(digest.get("day", "mon"))
    return " ".join(x for x in (day[:1].upper() + day[1:3], str(digest.get("time", "")), tz) if x)


def _digest(old: dict, new: dict, old_tz: str, new_tz: str, label: str = "digest") -> list[str]:
    parts = []
    same_zone = old_tz == new_tz
    if (old.get("day"), old.get("time")) != (new.get("day"), new.get("time")) or not same_zone:
        was = _schedule(old, None if same_zone else old_tz)
        parts.append(f"{label}: {was} → {_schedule(new, new_tz)}")
    if old.get("period_days") != new.get("period_days"):
        parts.append(f"{label} period: {old.get('period_days')} → {new.get('period_days')} days")
    return parts


def _added_removed(label: str, old: list, new: list, name=str) -> str | None:
    added = [name(x) for x in new if x not in old]
    removed = [name(x) for x in old if x not in new]
    said = [f"added {listed(added)}"] * bool(added) + [f"removed {listed(removed)}"] * bool(removed)
    if not said and old != new:
        said = ["reordered"]
    return f"{label}: {', '.join(said)}" if said else None


def _targets(old: dict, new: dict) -> list[str]:
    parts = []
    for mid in sorted(set(old) | set(new), key=lambda m: metric_name(m).lower()):
        a, b = old.get(mid), new.get(mid)
        metric = CATALOGUE.get(mid)
        if judged_as(metric, a) == judged_as(metric, b):  # a stated "≤" on a plain 8 is a change
            continue

        def shown(t: float | None, metric=metric) -> str:
            return "none" if t is None else bound(metric, t) if metric else f"{t:g}"

        parts.append(f"target {words(metric_name(mid))}: {shown(a)} → {shown(b)}")
    return parts


def _workflow(old: list, new: list) -> list[str]:
    def where(workflow: list) -> dict[str, str]:
        return {s: readable_stage(st.get("stage")) for st in workflow for s in st.get("statuses", [])}

    if [(s.get("stage"), s.get("kind")) for s in old] != [(s.get("stage"), s.get("kind")) for s in new]:
        return ["workflow: stages changed"]
    a, b = where(old), where(new)
    moves = []
    for status in sorted(set(a) | set(b), key=str.lower):
        if a.get(status) == b.get(status):
            continue
        if status not in a:
            moves.append(f"{status} mapped to {b[status]}")
        elif status not in b:
            moves.append(f"{status} no longer mapped (was {a[status]})")
        else:
            moves.append(f"{status} moved from {a[status]} to {b[status]}")
    return [f"workflow: {listed(moves)}"] if moves else []


def describe(changes: dict, team: Team) -> str:
    """The change in words, ``; ``-separated, in the order the form shows the settings; ``team`` is
    the team as saved (its time zone names when an unchanged zone's digest moved)."""
    old = {k: v[0] for k, v in changes.items()}
    new = {k: v[1] for k, v in changes.items()}
    parts: list[str] = []
    if "metrics" in changes:
        said = _added_removed("metrics", old["metrics"] or [], new["metrics"] or [], metric_name)
        parts += [said] if said else []
    if "targets" in changes:
        parts += _targets(old["targets"] or {}, new["targets"] or {})
    tz = changes.get("timezone")
    old_tz, new_tz = (tz[0], tz[1]) if tz else (team.timezone, team.timezone)
    if "digest" in changes or tz:
        parts += _digest(old.get("digest") or team.digest, new.get("digest") or team.digest, old_tz, new_tz)
    if "nudges" in changes:
        said = _added_removed("nudges", old["nudges"] or [], new["nudges"] or [], NUDGE_NAMES.get)
        parts += [said.replace("added", "turned on").replace("removed", "turned off")] if said else []
    if "workflow" in changes:
        parts += _workflow(old["workflow"] or [], new["workflow"] or [])
    for key, label in SCOPE_LABELS.items():
        if key in changes:
            said = _added_removed(label, old[key] or [], new[key] or [])
            parts += [said] if said else []
    done = {"metrics", "targets", "digest", "timezone", "nudges", "workflow", *SCOPE_LABELS}
    for key in sorted(set(changes) - done):
        parts.append(f"{LABELS.get(key, key.replace('_', ' '))} changed")
    if not parts and changes:  # a change the words above do not cover is still never announced as ""
        parts = [f"{_label(key)} changed" for key in sorted(changes)]
    return "; ".join(parts)


def _label(key: str) -> str:
    return SCOPE_LABELS.get(key) or LABELS.get(key) or key.replace("_", " ")


def created(team: Team) -> str:
    """``set up the team payments: 3 metrics, digest Mondays 09:00 Europe/London, scope PAY,
    acme/payments``: what a new team starts with, in one sentence."""
    n = len(team.metrics)
    scope = team.jira_projects + team.repos + team.gitlab_projects + team.services
    return (
        f"set up the team {team.name}: {n} metric{'s' * (n != 1)}, "
        f"digest {every(team.digest.get('day'))} {team.digest.get('time')} {team.timezone}, "
        + (f"scope {listed(scope)}" if scope else "no data scope yet")
    )


def describe_org(changes: dict, org: dict, *, mrkdwn: bool = False) -> str:
    """An org settings change (``{key: [old, new]}``, old None where it was never set) in words,
    ``; ``-separated, in the order the North Star form shows them: "North Star: added Throughput",
    "target lead time for changes: none → ≤ 2.0 d", "org channel: none → C0LEADERS01", "time zone:
    UTC → Europe/London", "org digest: Mon 09:00 → Wed 10:15 Europe/London". ``org`` is the org as
    saved (``metrics.teams.org_settings``: its zone names the digest's time).

    Plain text for the settings log; ``mrkdwn`` for Slack: every word escaped, channels as links."""
    esc = escape_mrkdwn if mrkdwn else str
    parts: list[str] = []
    old = {k: v[0] for k, v in changes.items()}
    new = {k: v[1] for k, v in changes.items()}
    if "north_star" in changes:
        said = _added_removed("North Star", old["north_star"] or [], new["north_star"] or [], metric_name)
        parts += [esc(said)] if said else []
    if "targets" in changes:
        parts += [esc(p) for p in _targets(old["targets"] or {}, new["targets"] or {})]
    if "channel" in changes:

        def where(channel: object) -> str:
            if not channel:
                return "none"
            return f"<#{channel}>" if mrkdwn and CHANNEL_ID.fullmatch(str(channel)) else esc(channel)

        parts.append(f"org channel: {where(old['channel'])} → {where(new['channel'])}")
    tz = org.get("timezone") or "UTC"
    if "timezone" in changes:
        parts.append(esc(f"time zone: {old['timezone'] or 'UTC'} → {new['timezone'] or 'UTC'}"))
    if "digest" in changes:
        was, now = ({**ORG_DIGEST, **(d or {})} for d in (old["digest"], new["digest"]))
        parts += [esc(p) for p in _digest(was, now, tz, tz, "org digest")]
    if "admins" in changes:
        # The ids as Slack mentions them: user ids are checked (USER_ID) before they are stored.
        person = (lambda u: f"<@{u}>") if mrkdwn else str
        said = _added_removed("org admins", old["admins"] or [], new["admins"] or [], person)
        if said and said.endswith("reordered"):  # an order of admins means nothing
            said = None
        parts += [said] if said else []
    for key in sorted(set(changes) - {"north_star", "targets", "channel", "timezone", "digest", "admins"}):
        parts.append(esc(f"org {key.replace('_', ' ')} changed"))
    return "; ".join(parts)
