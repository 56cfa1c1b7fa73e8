"""A digest as Slack sees it (``message``) and as a terminal shows it (``text``), from one view model."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from bot import ids
from bot.render import format as fmt
from bot.render.experiment import concluded_row, running_row
from bot.render.targets import target_line
from bot.render.templates import link, render_json, render_text, within_limits
from bot.render.terminal import safe_all
from metrics.digest import Digest, Figure
from metrics.teams import Team
from metrics.timeutil import iso

MAX_BLOCKS = 50


SPREAD_NOTE = "p50: half were within it · p85: 85% were"
BEHIND_ITEMS = 3
RUNNING_SHOWN = 10  # running experiments with a section (and a Stop early button) each; the rest counted


def _row(f: Figure) -> dict:
    r, m = f.result, f.metric
    data = fmt.has_data(r)
    figure, spark = fmt.shown(m, r)
    return {
        "id": m.id,
        "name": m.name,
        "value": figure,
        "has_data": data,
        "spread": data and bool(fmt.spread(m, r.value)),
        "change": fmt.versus(m, r),
        "spark": spark,
        "target": target_line(m, f.target, f.target_status),
        "target_status": f.target_status,
        "signal": r.signal,
        # Without data the value already says why there is no signal: the note would repeat it.
        "signal_note": r.signal_note if data else None,
        "notes": r.notes,
        "n": r.sample_size,
        "behind": _behind(f.behind),
        "explain": {"metric": m.id, "team": r.team, "since": iso(r.window.start), "until": iso(r.window.end)},
    }


def _behind(behind: dict | None) -> dict | None:
    """The items behind a signal or a missed target (``Figure.behind``): the heading, and up to
    three items, each key linked to its source (``link`` escapes both parts; a title is escaped by
    the template like any other text), ``url`` and ``title`` kept for the terminal."""
    if not behind or not behind.get("items"):
        return None
    items = [
        {
            "key": str(i.get("key") or ""),
            "link": link(i.get("url"), i.get("key") or "item"),
            "url": i.get("url") or "",
            "title": i.get("title") or "",
            "detail": i.get("detail") or "",
        }
        for i in behind["items"][:BEHIND_ITEMS]
    ]
    return {"heading": behind.get("heading") or "Items behind it", "items": items}


def _calm(rows: list[dict]) -> str | None:
    """What "no signals" covers: every figure, or only those the rules could test (with data and
    enough history); None when none could be tested, so a digest without data never reads as calm."""
    tested = [r for r in rows if r["has_data"] and not r["signal_note"]]
    if not tested:
        return None
    if len(tested) == len(rows):
        return "every figure is within normal variation"
    if all(r["has_data"] for r in rows):
        return "every figure with enough history is within normal variation"
    return "every figure with data and enough history is within normal variation"


def view(d: Digest, now: datetime) -> dict:
    """The template's context. A data-quality note shared by several figures (the same items closed
    without flow behind cycle time and throughput) is said once, under the figures; so is what p50
    and p85 mean."""
    rows = [_row(f) for f in d.figures]
    counts = Counter(n for r in rows for n in dict.fromkeys(r["notes"]))
    shared = [n for n, c in counts.items() if c > 1]
    for r in rows:
        r["notes"] = [n for n in r["notes"] if n not in shared]
    ns = len(d.north_star)
    return {
        "team": d.team.name,
        "period": d.window.label(),
        "generated": now.astimezone(d.team.tz).strftime("%a %d %b %Y %H:%M %Z"),
        "north_star": rows[:ns],
        "determinants": rows[ns:],
        "nudges": [r for r in rows if r["signal"]],
        "calm": _calm(rows),
        "spread_note": SPREAD_NOTE if any(r["spread"] for r in rows) else "",
        "quality": shared,
        "freshness": d.freshness,
        "experiments": [running_row(p) for p in d.experiments[:RUNNING_SHOWN]],
        "more_experiments": max(0, len(d.experiments) - RUNNING_SHOWN),
        "concluded": [concluded_row(e) for e in d.concluded],
        "charts": [
            {"name": r["name"], "value": f"{r['id']}|{d.window.since.date()}|{d.window.until.date()}"}
            for r in rows[:100]
        ],
    }


def message(d: Digest, now: datetime, channel: str | None = None, late: datetime | None = None) -> dict:
    """The exact ``chat.postMessage`` payload, kept within Slack's message limits. ``late`` is the
    time a digest sent after downtime was due: the message says so under its header."""
    v = view(d, now)
    due = late.astimezone(d.team.tz).strftime("%a %d %b %H:%M %Z") if late else None
    payload = render_json("digest.json.j2", **v, channel=channel or d.team.channel, late=due)
    within_limits(payload)  # e.g. every figure signalling at once, a long data-quality note
    payload["blocks"] = _fit(payload["blocks"])
    return payload


def preview(d: Digest, now: datetime, team: Team) -> dict:
    """``/vsm digest``: the digest as an ephemeral reply, its last block a "Post to channel" button."""
    payload = message(d, now)
    payload.pop("channel", None)
    payload["response_type"] = "ephemeral"
    payload["blocks"] = payload["blocks"][:49] + [
        {
            "type": "actions",
            "block_id": "preview_actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": ids.POST_DIGEST,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Post to channel"},
                    "value": team.name[:150],
                }
            ],
        }
    ]
    return payload


def _fit(blocks: list[dict]) -> list[dict]:
    """At most ``MAX_BLOCKS``: with more figures than a message holds, the last figures give way to a
    pointer to ``/vsm metrics``, and what follows the figures (signals, freshness, the buttons) stays."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    last = max(i for i, b in enumerate(blocks) if str(b.get("block_id", "")).startswith("fig:"))
    head, tail = blocks[: last + 1], blocks[last + 1 :]
    more = {
        "type": "context",
        "block_id": "more_figures",
        "elements": [{"type": "mrkdwn", "text": "More figures: `/vsm metrics` in this channel."}],
    }
    return head[: MAX_BLOCKS - len(tail) - 1] + [more] + tail


def text(d: Digest, now: datetime) -> str:
    """The digest for a terminal: every string in it loses the control characters a tool's text may
    carry (``terminal.safe``), since the terminal would act on them rather than print them."""
    return render_text("digest.txt.j2", **safe_all(view(d, now)))
