"""Explain: the items behind a figure, each with its key (linked), title and figure."""

from __future__ import annotations

from bot.render import format as fmt
from bot.render.templates import link, render_json
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Result
from metrics.teams import Team

EXPLAIN_LIMIT = 40


def _item_line(item: dict) -> dict:
    """One observation as a line: its key (linked when the source gave a URL), title and figure."""
    label = item.get("key") or item.get("sprint") or item.get("day") or "item"
    title = item.get("title") or item.get("summary") or ""
    figure = ""
    if "hours" in item:
        figure = fmt.duration(item["hours"])
    elif "value" in item and isinstance(item["value"], int | float):
        figure = f"{fmt.one_decimal(item['value'])}%"
    elif "done" in item:
        figure = f"done {str(item['done'])[:10]}"
    return {"label": link(item.get("url"), label), "title": title, "figure": figure}


def explain_message(team: Team, result: Result) -> dict:
    metric = CATALOGUE[result.metric]
    items = sorted(result.items, key=lambda i: -(i.get("hours") or 0)) if result.items else []
    return render_json(
        "explain.json.j2",
        team=team.name,
        name=metric.name,
        period=result.window.label(),
        lines=[_item_line(i) for i in items[:EXPLAIN_LIMIT]],
        more=max(0, len(items) - EXPLAIN_LIMIT),
        total=len(items),
    )
