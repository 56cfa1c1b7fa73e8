"""Nudges as Slack messages: items by key (linked), title and what is due, never people.

A line reads as a team says it: "PAY-404 Improve onboarding flow — In Progress, 21 days", or for a pull
request "acme/pay#12 Fix the retry — waiting 3.1 d for a first review" (the key names the repository).
"""

from __future__ import annotations

from bot.render import format as fmt
from bot.render.templates import cut, link, render_json
from metrics.behind import age_text
from metrics.catalogue import CATALOGUE
from metrics.nudges import MAX_ITEMS, Nudge
from metrics.teams import Team

WHY = {
    "target": "Compared with the targets your team set. You get this at most once per digest period.",
    "stale-prs": "A first review waiting long holds up everything behind it. Each PR is named at most every few days.",
    "aging-items": "Older than 85% of the items you finished in the last 90 days. Each item is named at most every few days.",
}


def _detail(nudge: Nudge, item: dict) -> str:
    d = item["detail"]
    if nudge.kind == "stale-prs":
        return f"waiting {fmt.duration(d['hours_waiting'])} for a first review"
    if nudge.kind == "aging-items":
        status = f"{d['status']}, " if d.get("status") else ""
        return f"{status}{age_text(d['age_hours'])} (usual p85 {fmt.duration(d['p85_hours'])})"
    metric = CATALOGUE[d["metric"]]
    return f"{fmt.number(metric, d['value'])} against a target of {fmt.number(metric, d['target'])}"


def message(team: Team, nudge: Nudge) -> dict:
    """The ``chat.postMessage`` payload for one nudge."""
    items = [
        {"link": link(i["url"], i["key"]), "title": cut(i["title"], 120), "detail": _detail(nudge, i)}
        for i in nudge.items[:MAX_ITEMS]
    ]
    return render_json(
        "nudge.json.j2",
        channel=team.channel,
        team=team.name,
        headline=nudge.headline,
        items=items,
        more=nudge.more,
        why=WHY[nudge.kind],
    )
