"""The two modals: a team's settings and the organisation's North Star metrics."""

from __future__ import annotations

import json

from bot.render.templates import render_json
from metrics.catalogue import CATALOGUE
from metrics.teams import DAYS, Team


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


def settings_view(db, team: Team, channel: str, opener: str | None = None, new: bool = False) -> dict:
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


def north_star_view(chosen: list[str], opener: str) -> dict:
    """The North Star form; ``opener`` (an admin when it opened) is recorded so only they submit it."""
    return render_json(
        "north_star_modal.json.j2",
        metrics=list(CATALOGUE.values()),
        chosen=chosen,
        meta=json.dumps({"by": opener}),
    )
