"""The two modals: a team's settings and the organisation's (the North Star form)."""

from __future__ import annotations

import json

from bot.render.targets import as_written
from bot.render.templates import render_json
from metrics.catalogue import CATALOGUE
from metrics.scope import SCOPE_LABELS, Known, nothing_synced, synced_count
from metrics.targets import legacy_note
from metrics.teams import DAYS, MAX_ORG_ADMINS, NUMBERS, Team, org_settings

TARGETS_HINT = (
    "One per line: cycle-time = 5d, throughput = 8, change-failure-rate = 15. A metric with no better "
    "direction takes the one you want: wip ≤ 8 (or <=, >=)."
)


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


def scope_hints(synced: Known | None) -> dict[str, str]:
    """Under each data-scope field, how many names the sources have synced for it (or that nothing
    is yet): counts, never the names. Anyone in any channel can open this form ("Set up a team
    here", guests included), and the organisation's project keys, repositories and services are not
    theirs to browse; an entry the store does not know is answered with the close name it likely
    means, on saving (``metrics.scope.unknown``)."""
    if synced is None:
        return {}
    return {key: synced_count(key, synced.get(key)) or nothing_synced(key) for key in SCOPE_LABELS}


def targets_hint(team: Team) -> str:
    """The targets field's hint: how to write a target, then each of the team's targets that only
    older settings allowed (``wip = 8``, not judged) and how to rewrite it, as a hint rather than an
    error: the team did not type it, and it does not block a save (``bot.settings_form``)."""
    notes = [legacy_note(CATALOGUE.get(m), t) for m, t in team.targets.items()]
    said = " ".join(f"⚠️ {n}." for n in notes if n)
    return f"{said} {TARGETS_HINT}".strip()[:2000] if said else TARGETS_HINT


def settings_view(
    db,
    team: Team,
    channel: str,
    opener: str | None = None,
    new: bool = False,
    *,
    synced: Known | None = None,
    meta: dict | None = None,
    typed_targets: str | None = None,
) -> dict:
    """The settings modal; ``opener`` (a channel member when it opened) is recorded so only they can
    submit it, and only while still a member (``MemberCache``). ``new``: the form sets up a team (the
    channel had none), so its submission may only create one.

    ``synced`` (``metrics.scope.known``) puts what the sources know under the scope fields. When the
    open form is redrawn for a new Jira scope (``bot.listeners.actions.scope``), ``meta`` keeps the
    form's own metadata and ``typed_targets`` the targets text as typed; every input keeps its
    block and action ids, so Slack keeps what the user typed."""
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
        targets=typed_targets
        if typed_targets is not None
        else "\n".join(as_written(k, CATALOGUE.get(k), v) for k, v in team.targets.items()),
        statuses=statuses,
        unmapped=[s for s in seen if s.lower() not in mapped],
        scope=[
            (key, label[:1].upper() + label[1:], getattr(team, key)) for key, label in SCOPE_LABELS.items()
        ],
        hints=scope_hints(synced),
        targets_hint=targets_hint(team),
        meta=json.dumps(meta or {"channel": channel, "team": team.name, "by": opener, "new": new}),
    )


ORG_TARGETS_HINT = (
    "Only for the North Star metrics above, one per line: lead-time-for-changes = 2d, "
    "deployment-frequency = 5, change-failure-rate = 15%. Shown beside the organisation's figures."
)


def north_star_view(org: dict, opener: str, seen: int = 0) -> dict:
    """The organisation's settings form (the North Star form): its metrics, their targets, the org
    channel, the org digest's day, time and period, and the org time zone, as ``org_settings`` has
    them in effect. ``opener`` (an admin when it opened) is recorded so only they submit it, and
    only while still an admin (``bot.listeners.views.north_star``); ``seen`` (``org_version``), so
    a save of settings someone else changed since is refused rather than undoing their change."""
    org = org_settings(org)
    low, high, _, _ = NUMBERS["period_days"]
    targets = org["targets"] if isinstance(org["targets"], dict) else {}
    return render_json(
        "north_star_modal.json.j2",
        metrics=list(CATALOGUE.values()),
        chosen=org["north_star"],
        targets="\n".join(as_written(k, CATALOGUE.get(k), v) for k, v in targets.items()),
        targets_hint=ORG_TARGETS_HINT,
        org=org,
        days=DAYS,
        period_min=f"{low:g}",
        period_max=f"{high:g}",
        period_hint=f"{low:g} to {high:g}: the organisation digest and /vsm northstar cover this many whole "
        "days before the day they are read.",
        meta=json.dumps({"by": opener, "seen": seen}),
        max_admins=MAX_ORG_ADMINS,
    )
