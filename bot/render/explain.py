"""Explain: the items behind a figure, each with its key (linked), title, dates and figure.

A line reads "PAY-404 Improve onboarding flow · started 3 Nov, done 12 Nov · 9.0 d", a deployment's
"api/deployments/81 · deployed 3 Nov 14:05". Dates are the team's local days. A signal's statistics
(``Result.signal_detail``) come first: the digest and the figure reply say the signal in one plain line,
and this is where a reader who wants the numbers behind it finds them. Nothing here is a command to
type: Slack is not a terminal.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from bot.render import format as fmt
from bot.render.templates import Trusted, cut, cut_mrkdwn, escape_mrkdwn, link, render_json
from metrics.behind import age_text, day_text, readable_stage, span_text
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Result, one_decimal
from metrics.teams import Team

EXPLAIN_LIMIT = 40
PER_SECTION = 8  # lines per section; each section is also cut to Slack's 3,000 characters
SECTION_CHARS = 3000

_NET_FLOW = {"arrival": "committed", "departure": "done"}


def _when(metric_id: str, item: dict, tz: ZoneInfo) -> str:
    """The item's dates in words, by what the item is (its metric's start and end, a deployment's
    finish, a merge, a day sample, a sprint)."""
    span = span_text(metric_id, item, tz)
    if span:
        return span
    if "finished" in item and "service" in item:  # a deployment: its time matters, not only its day
        return f"deployed {day_text(item['finished'], tz, clock=True)}"
    if "merged" in item:
        return f"merged {day_text(item['merged'], tz)}"
    if "event" in item:
        return f"{_NET_FLOW.get(item['event'], item['event'])} {day_text(item.get('at'), tz)}"
    if "sprint" in item:
        return f"{day_text(item.get('start'), tz)} – {day_text(item.get('end'), tz)}"
    if "age_hours" in item:
        return item.get("status") or readable_stage(item.get("stage"))
    if "done" in item:
        return f"done {day_text(item['done'], tz)}"
    return ""


def _figure(metric_id: str, item: dict) -> str:
    """The item's own number: its duration, share, size, or what made it count."""
    if "efficiency" in item:
        return f"{one_decimal(item['efficiency'])}% active of {fmt.duration(item['hours'])}"
    if "hours" in item:
        return fmt.duration(item["hours"])
    if "age_hours" in item:
        return age_text(item["age_hours"]) + (" (older than usual)" if item.get("flagged") else "")
    if "lines" in item:
        return f"{item['lines']:,} lines"
    if "reviewed" in item:
        return "reviewed" if item["reviewed"] else "no review before merge"
    if item.get("failed"):
        return "followed by incident " + ", ".join(item.get("incidents", []))
    if item.get("rework"):
        return "shipped rework: " + ", ".join(p["key"] for p in item.get("rework_prs", []))
    if "wip" in item:
        return f"{item['wip']} in progress"
    if "category" in item:
        return item["category"]
    if metric_id == "sprint-completion" and item.get("committed") and "left_undone" in item:
        share = f"{one_decimal(item['value'])}%, " if item.get("value") is not None else ""
        return f"{share}{item['left_undone']} of {item['committed']} committed items left undone"
    if "value" in item and isinstance(item["value"], int | float):
        return f"{one_decimal(item['value'])}%"
    return ""


def _label(item: dict, tz: ZoneInfo) -> str:
    if item.get("key"):
        return link(item.get("url"), item["key"])
    if item.get("sprint"):
        return link(None, item["sprint"])
    if item.get("day"):  # a day sample: the local day it is of (``at`` is the instant it was taken)
        try:
            day = date.fromisoformat(item["day"])
        except (TypeError, ValueError):
            return link(None, str(item["day"]))
        return link(None, f"{day.day} {day:%b}")
    return link(None, "item")


def _item_line(metric_id: str, item: dict, tz: ZoneInfo) -> str:
    """One observation as an mrkdwn line: its key (linked when the source gave a URL), title, dates and
    figure, every part from a tool escaped."""
    title = cut(item.get("title") or item.get("summary") or "", 80)
    parts = [_label(item, tz) + (f" {escape_mrkdwn(title)}" if title else "")]
    parts += [escape_mrkdwn(p) for p in (_when(metric_id, item, tz), cut(_figure(metric_id, item), 120)) if p]
    return "• " + " · ".join(parts)


def _sections(lines: list[str]) -> list[Trusted]:
    """Lines in sections of ``PER_SECTION``, each within Slack's limit however long its titles are."""
    return [
        Trusted(cut_mrkdwn("\n".join(lines[i : i + PER_SECTION]), SECTION_CHARS))
        for i in range(0, len(lines), PER_SECTION)
    ]


def _order(items: list[dict]) -> tuple[list[dict], str]:
    """Longest first where items have a duration or an age; else as the metric listed them (in time)."""
    if any("hours" in i for i in items):
        return sorted(items, key=lambda i: -(i.get("hours") or 0)), "longest first"
    if any("age_hours" in i for i in items):
        return sorted(items, key=lambda i: -(i.get("age_hours") or 0)), "oldest first"
    return items, ""


def _open_line(item: dict, tz: ZoneInfo) -> str:
    """An item in progress: its key (linked), title, status as the team wrote it (a stage's words when
    the status is not known), and since when."""
    title = cut(item.get("title") or item.get("summary") or "", 80)
    status = item.get("status") or readable_stage(item.get("stage"))
    since = day_text(item.get("committed"), tz)
    parts = [link(item.get("url"), item.get("key") or "item") + (f" {escape_mrkdwn(title)}" if title else "")]
    parts += [escape_mrkdwn(p) for p in (status, f"started {since}" if since else "") if p]
    return "• " + " · ".join(parts)


def _in_progress(metric, result: Result) -> dict | None:
    """WIP's items in progress at the count its figure shows first ("23 in progress now"), oldest
    first: the work a team can act on, before the days its average was sampled on."""
    count = fmt.current_count(metric, result)
    listed = result.extra.get("current_items") if isinstance(result.extra, dict) else None
    if count is None or not isinstance(listed, list):
        return None
    lines = [_open_line(i, result.window.tz) for i in listed[:EXPLAIN_LIMIT] if isinstance(i, dict)]
    return {
        "heading": f"{count} in progress {fmt.current_when(result)}"
        + (", oldest first" if count > 1 else ""),
        "sections": _sections(lines),
        "more": max(0, len(listed) - EXPLAIN_LIMIT),
    }


def explain_message(team: Team, result: Result, items: list[dict] | None = None) -> dict:
    """The Explain reply. ``items``: the result's items with their titles (``metrics.behind.titled``);
    the result's own items when not given."""
    metric = CATALOGUE[result.metric]
    tz = result.window.tz
    ordered, order = _order(list(result.items if items is None else items))
    detail = getattr(result, "signal_detail", None)
    return render_json(
        "explain.json.j2",
        team=team.name,
        name=metric.name,
        period=result.window.label(),
        signal=result.signal if detail else None,
        signal_detail=detail,
        in_progress=_in_progress(metric, result),
        sections=_sections([_item_line(metric.id, i, tz) for i in ordered[:EXPLAIN_LIMIT]]),
        order=order,
        more=max(0, len(ordered) - EXPLAIN_LIMIT),
        total=len(ordered),
        counted=fmt.counted(metric, len(ordered)),
    )
