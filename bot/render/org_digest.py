"""The organisation's digest as Slack sees it: ``message`` (the ``chat.postMessage`` payload) and
``preview`` (``/vsm digest`` in the org channel, with a "Post to channel" button).

Four parts, in this order, each team listed by name and never ranked:

- **North Star**: per metric, the org's pooled figure (``fmt.shown``, as every surface shows a
  figure), its change against the previous period, the signal rules' verdict in one line (a figure
  that could not be tested says why: never "within normal variation" when unknown), the org target
  where one is set; then each team's own figure on the same window. Always present: without North
  Star metrics it says so and how to set them.
- **Moved with a real signal**: team, metric, better or worse, the team's one-line reason, as the
  team's own digest judged it on its own window (named when it is not the org's). Always
  present: when nothing moved it says so, and that figures without data or history are not tested.
- **Experiments concluded**: team, what it tried, the metric, the verdict, "stopped early". Left out
  when none concluded in the period (nothing to report is not news).
- **Stale data**: team, source, as of when (and "last sync failed", as the team digest says it: the
  error's text stays in the logs). Left out when every team is current.

Slack's limits hold for any size of org (1,000 teams): each list is packed into sections of at most
``SECTION_TEXT`` characters, each part has a fixed number of sections, and what does not fit is
counted in a last line saying where to see it (``vsm northstar``, each team's digest, ``vsm
experiments``), never dropped silently. Every text a tool or a person wrote (team names, reasons,
what a team tried, source names) is escaped for mrkdwn (``escape_mrkdwn``) as the lines
are built, since they are packed by their escaped length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from bot import ids
from bot.render import format as fmt
from bot.render.digest import MAX_BLOCKS
from bot.render.targets import target_line
from bot.render.templates import (
    escape_mrkdwn,
    pack,
    render_json,
    within_limits,
)
from metrics.catalogue.base import Result
from metrics.experiments import Experiment
from metrics.org import Rollup, TeamFigure
from metrics.org_digest import Moved, OrgDigest, Stale
from metrics.timeutil import Window, parse_instant

TEAM_BLOCKS = 2  # sections of team rows under each North Star metric (~50 teams each)
MOVED_BLOCKS = 4
CONCLUDED_BLOCKS = 3
STALE_BLOCKS = 2
STAMP = "%a %d %b %H:%M %Z"
NO_NORTH_STAR = (
    "No North Star metrics are set for the organisation: an org admin sets them with "
    "`/vsm northstar` (*Change (admins)*)."
)
NOTHING_MOVED = (
    "No team's metrics moved with a real signal this period. Figures without data or enough "
    "history cannot signal: each team's digest says which."
)


def as_result(r: Rollup) -> Result:
    """The org figure as the shared display functions read a figure (``fmt.shown``, ``fmt.versus``,
    ``fmt.verdict``): the pooled value, previous period, series and the signal rules' verdict."""
    return Result(
        metric=r.metric.id,
        team="all teams",
        window=r.window,
        value=r.value,
        unit=r.metric.unit,
        sample_size=r.sample_size,
        previous=r.previous,
        series=r.series,
        previous_note=r.previous_note,
        no_data_reason=r.no_data_reason,
    ).judged(r.verdict)


def _status(on_target: bool | None) -> str | None:
    return None if on_target is None else ("met" if on_target else "missed")


def team_row(r: Rollup, t: TeamFigure) -> str:
    """``• payments: p50 2.1 d · p85 5.3 d (42 PRs) · on target``: the team's own figure, as its
    digest shows it; without data, why (``fmt.shown``)."""
    metric = r.metric
    figure, _spark = fmt.shown(metric, t.result)
    if fmt.has_data(t.result):
        figure += f" ({fmt.counted(metric, t.sample_size)})"
    else:
        figure = f"_{escape_mrkdwn(figure)}_"
    if t.target is not None:
        status = _status(t.on_target)
        figure += {"met": " · on target", "missed": " · off target"}.get(status or "", "")
    return f"• {escape_mrkdwn(t.team)}: {figure}"


def more_teams(n: int) -> str:
    """The line that ends a capped list of team rows: how many are not drawn, and where they all are."""
    return f"…and {n} more teams: `vsm northstar` lists every team."


def _north_star(r: Rollup, team_blocks: int) -> dict:
    metric, result = r.metric, as_result(r)
    if not r.poolable:  # a team-level figure: the reason, and no change or signal to speak of
        value, spark, change, signal = "not pooled across teams", "", "", r.no_data_reason or ""
    else:
        value, spark = fmt.shown(metric, result)
        change = fmt.versus(metric, result)
        signal = fmt.verdict(result.signal, result.signal_note, result.sample_size)
    data = fmt.has_data(result)
    return {
        "id": metric.id,
        "name": metric.name,
        "value": value,
        "has_data": data,
        "n": fmt.counted(metric, r.sample_size) if data else "",
        "change": change,
        "signal": signal,
        "spark": spark,
        "target": target_line(metric, r.target, _status(r.on_target)),
        "target_status": _status(r.on_target),
        "teams": pack(r.teams, partial(team_row, r), team_blocks, more_teams),
    }


# -- the other parts ------------------------------------------------------------------------------------
def _moved_line(m: Moved, window: Window | None = None) -> str:
    """``• *tokyo* · Cycle time, worse: slower than … _(its digest's period: …, Asia/Tokyo)_``: the
    team's own digest judged the signal on its own window, named when it is not the org's
    ``window`` (another time zone or period), so a reader comparing the two digests sees why."""
    way = {True: "better", False: "worse"}.get(m.better, "moved")  # type: ignore[arg-type]
    line = f"• *{escape_mrkdwn(m.team)}* · {escape_mrkdwn(m.metric_name)}, {way}: {escape_mrkdwn(m.line)}"
    if m.window is not None and window is not None and not _same(m.window, window):
        line += f" _(its digest's period: {m.window.label()}, {escape_mrkdwn(m.window.tz.key)})_"
    return line


def _same(a: Window, b: Window) -> bool:
    return (a.start, a.end, a.tz.key) == (b.start, b.end, b.tz.key)


def _more_moved(n: int) -> str:
    return f"…and {n} more: each team's digest has its own (`/vsm digest` in its channel)."


def _concluded_line(e: Experiment) -> str:
    early = " (stopped early)" if e.stopped_early else ""
    verdict = e.verdict or "no verdict"
    return (
        f"• *{escape_mrkdwn(e.team)}* tried “{escape_mrkdwn(e.change)}” on "
        f"{escape_mrkdwn(e.metric_name)}: *{escape_mrkdwn(verdict)}*{early}"
    )


def _more_concluded(n: int) -> str:
    return f"…and {n} more: `vsm experiments --team NAME` lists a team's experiments."


def _as_of(stamp: object, tz) -> str:
    """A last sync's time in the org's zone; "never" when there was none; as stored (escaped) when
    it is not an instant."""
    if not stamp:
        return "never"
    try:
        at = parse_instant(stamp) if isinstance(stamp, str) else None
    except ValueError:
        at = None
    return datetime.fromtimestamp(at, tz).strftime(STAMP) if at is not None else escape_mrkdwn(stamp)


def _stale_line(s: Stale, tz) -> str:
    parts = []
    for src in s.sources:
        part = f"{escape_mrkdwn(src.get('source') or 'a source')} data as of {_as_of(src.get('as_of'), tz)}"
        if src.get("error"):  # as the team digest says it: the error's text is for the logs, not a channel
            part += " (last sync failed)"
        parts.append(part)
    return f"• *{escape_mrkdwn(s.team)}*: {'; '.join(parts) or 'no source synced'}"


def _more_stale(n: int) -> str:
    return f"…and {n} more teams: each team's digest shows when its sources last synced."


# -- the message ----------------------------------------------------------------------------------------
@dataclass
class Budget:
    """Sections each part may use, so that the whole message stays within ``MAX_BLOCKS`` whatever
    the org's size (the preview keeps one block for its button)."""

    teams: int
    moved: int
    concluded: int
    stale: int


def budget(d: OrgDigest, room: int) -> Budget:
    """``room`` blocks shared out: fixed blocks first (header, late note, period, the North Star
    heading, each metric's figure, the parts' headings and dividers), then the lists' sections, the
    North Star teams last, with at least one section of teams per metric."""
    fixed = 4 + len(d.north_star) + 2 + 2 * bool(d.concluded) + 2 * bool(d.stale)
    left = room - fixed
    moved = max(1, min(MOVED_BLOCKS, left // 4))
    concluded = max(1, min(CONCLUDED_BLOCKS, left // 6)) if d.concluded else 0
    stale = max(1, min(STALE_BLOCKS, left // 8)) if d.stale else 0
    left -= moved + concluded + stale
    teams = max(1, min(TEAM_BLOCKS, left // max(1, len(d.north_star))))
    return Budget(teams, moved, concluded, stale)


def view(d: OrgDigest, now: datetime, room: int = MAX_BLOCKS) -> dict:
    tz = d.window.tz
    b = budget(d, room)
    return {
        "period": d.window.label(),
        "timezone": d.timezone,
        "generated": now.astimezone(tz).strftime("%a %d %b %Y %H:%M %Z"),
        "no_north_star": NO_NORTH_STAR,
        "north_star": [_north_star(r, b.teams) for r in d.north_star],
        "moved": pack(d.moved, partial(_moved_line, window=d.window), b.moved, _more_moved),
        "nothing_moved": NOTHING_MOVED,
        "concluded": pack(d.concluded, _concluded_line, b.concluded, _more_concluded),
        "stale": pack(d.stale, partial(_stale_line, tz=tz), b.stale, _more_stale),
    }


def message(
    d: OrgDigest,
    now: datetime,
    *,
    channel: str | None = None,
    late: datetime | None = None,
    room: int = MAX_BLOCKS,
) -> dict:
    """The exact ``chat.postMessage`` payload for ``channel`` (``[org] channel``). ``late``: when a
    digest sent after downtime was due; the message says so under its header."""
    due = late.astimezone(d.window.tz).strftime(STAMP) if late else None
    payload = render_json("org_digest.json.j2", **view(d, now, room), channel=channel or "", late=due)
    within_limits(payload)  # a very long reason or name: each text within Slack's limit
    if not channel:
        payload.pop("channel")
    return payload


def preview(d: OrgDigest, now: datetime) -> dict:
    """``/vsm digest`` in the org channel: the digest as an ephemeral reply, its last block a "Post
    to channel" button (``ids.POST_ORG_DIGEST``)."""
    payload = message(d, now, room=MAX_BLOCKS - 1)
    payload["response_type"] = "ephemeral"
    payload["blocks"].append(
        {
            "type": "actions",
            "block_id": "org_preview_actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": ids.POST_ORG_DIGEST,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Post to channel"},
                    "value": "org",
                }
            ],
        }
    )
    return payload


def north_star_text(window: Window, timezone: str, found: list[Rollup]) -> list[str]:
    """`vsm northstar` in a terminal: each North Star metric's org figure with what it counts, its
    change, the signal rules' verdict and the org's target, then every team's row, by name (plain
    lines: the caller makes each safe for a terminal)."""
    lines = [f"North Star · {window.label()} ({timezone}) · all teams pooled, each observation once"]
    for r in found:
        metric, result = r.metric, as_result(r)
        if not r.poolable:
            lines.append(f"  {metric.name}: not pooled across teams ({r.no_data_reason})")
        else:
            figure, _spark = fmt.shown(metric, result)
            parts = [figure + (f" ({fmt.counted(metric, r.sample_size)})" if fmt.has_data(result) else "")]
            if fmt.has_data(result):
                parts.append(fmt.versus(metric, result))
                parts.append(fmt.verdict(result.signal, result.signal_note, result.sample_size))
            if r.target is not None:
                parts.append(f"org target: {target_line(metric, r.target, _status(r.on_target))}")
            lines.append(f"  {metric.name}: " + " · ".join(parts))
        for t in r.teams:
            figure, _spark = fmt.shown(metric, t.result)
            if fmt.has_data(t.result):
                figure += f" ({fmt.counted(metric, t.sample_size)})"
            status = {True: " · on target", False: " · off target"}.get(t.on_target, "")  # type: ignore[arg-type]
            lines.append(f"    {t.team}: {figure}{status}")
    return lines
