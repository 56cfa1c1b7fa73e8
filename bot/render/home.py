"""App Home's view: the org's North Star at the top for everyone, then the teams the user belongs to.

- **Org North Star**: each metric's pooled figure, its change, its signal in one line and the org
  target's status, over the org digest's period (``metrics.org``): compact, one line a metric.
- **One team**: its figures in full, as before, with its settings button.
- **Several teams** (a delivery manager's portfolio): one compact block per team: its North Star
  figures and its own (determinant) metrics, each with its target status and signal; the teams that
  need attention first (a figure off target, or a signal that it got worse: the block says which in a
  few words), then the others; within each group by name, never ranked. Each block has a "Full
  digest" button (the team's digest, in a modal: ``bot/listeners/actions/portfolio.py``) and the
  team's settings button.
- **No team**: the org North Star and how to set a team up.

Slack's patience: the view is published after the event is acknowledged, from stored figures
(``metrics.results``: computed after each sync, recomputed only when their inputs changed), so a
portfolio of many teams or a large org does not recompute every team. Slack's limit of 100 blocks a
view: at most ``MAX_TEAMS`` team blocks, then a line saying how many more and where to see them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.authz import user_channels
from bot.render import format as fmt
from bot.render.digest import message as digest_message
from bot.render.org_digest import as_result
from bot.render.targets import target_line
from bot.render.teams import channel_link
from bot.render.templates import SECTION_TEXT, Trusted, cut_mrkdwn, escape_mrkdwn, render_json
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import FAILED as FAILED_FIGURE
from metrics.catalogue.base import Metric, Result
from metrics.digest import Digest, digest_window
from metrics.errors import error_line
from metrics.org import Rollup, north_star_ids, org_targets, org_timezone, org_window
from metrics.org_digest import by_name, determinants, own_window_figures, signal_better
from metrics.results import org_rollups, team_figures
from metrics.targets import target_status
from metrics.teams import Team, get_org, list_teams
from metrics.timeutil import Window
from metrics.workspace import SINGLE, Workspace

log = logging.getLogger("vsm.bot")

MAX_VIEW_BLOCKS = 100  # Slack's limit for a view: App Home, or a modal
MAX_TEAMS = 30  # 3 blocks a portfolio team, after the org's North Star and headings: under 100
SINGLE_FIGURES = 8  # one team's figures in full, as App Home always showed them
OFF_TARGET, WORSE = "missed", False


def period(window: Window) -> str:
    """How App Home names a window: "last 28 days to 24 Nov (2026-10-28 – 2026-11-24)". The dates in
    brackets are ``Window.label()``, word for word what `/vsm`, North Star and the digest show, so a
    reader can see the figures are the same ones."""
    end = (window.until - timedelta(days=1)).date()
    return f"last {window.days} days to {end.day} {end:%b} ({window.label()})"


# -- the org's North Star ---------------------------------------------------------------------------------
def _org_line(r: Rollup) -> str:
    """``*Lead time for changes* p50 4.6 d · p85 7.9 d · p85 ↑ 16.8 h, worse · ⚑ slower than … ·
    ✅ org target: on target (≤ 8.0 d)`` (escaped mrkdwn)."""
    metric, result = r.metric, as_result(r)
    name = f"*{escape_mrkdwn(metric.name)}*"
    if not r.poolable:
        return f"{name} _not pooled across teams: each team's figure is its own_"
    figure, _spark = fmt.shown(metric, result)
    if not fmt.has_data(result):
        return f"{name} _{escape_mrkdwn(figure)}_"
    parts = [f"{name} {escape_mrkdwn(figure)}", escape_mrkdwn(fmt.versus(metric, result))]
    verdict = fmt.verdict(result.signal, result.signal_note, result.sample_size)
    parts.append(("⚑ " if result.signal else "") + escape_mrkdwn(verdict))
    status = None if r.on_target is None else ("met" if r.on_target else "missed")
    if r.target is not None:
        parts.append(f"{_mark(status)}org target: {escape_mrkdwn(target_line(metric, r.target, status))}")
    return " · ".join(parts)


def org_north_star(db, now: datetime, *, ws: Workspace = SINGLE) -> dict:
    """The org's North Star as App Home's top shows it: one line a metric, the window, the zone."""
    org = get_org(db, ws=ws)
    ids = north_star_ids(org)
    if not ids:
        return {"lines": [], "period": "", "timezone": "", "teams": 0}
    window = org_window(org, now)
    found = org_rollups(db, ids, window, now, targets=org_targets(org), ws=ws)
    return {
        "lines": [Trusted(_org_line(r)) for r in found],
        "period": period(window),
        "timezone": org_timezone(org),
        "teams": len(found[0].teams) if found else 0,
    }


# -- one team's figures -------------------------------------------------------------------------------------
def team_rows(db, team: Team, now: datetime, *, ws: Workspace = SINGLE) -> tuple[Window, list[dict]]:
    """The team's figures over its digest period (the window every surface uses unless a person asks
    for another), with that window: App Home's view of one team, in full."""
    window = digest_window(team, now)
    ids = [m for m in team.metrics if m in CATALOGUE][:SINGLE_FIGURES]
    rows = []
    for mid, result in zip(ids, team_figures(db, team, ids, window, now, ws=ws), strict=True):
        figure, spark = fmt.shown(CATALOGUE[mid], result)
        rows.append({"name": CATALOGUE[mid].name, "value": figure, "spark": spark})
    return window, rows


# -- a portfolio of teams ----------------------------------------------------------------------------------
@dataclass
class Block:
    """One team in the portfolio: its figures in short lines, and why it needs attention, if it does."""

    team: Team
    period: str
    lines: list[str]  # escaped mrkdwn
    off_target: list[str] = field(default_factory=list)  # metric names
    worse: list[str] = field(default_factory=list)
    failed: bool = False  # its figures could not be computed (logged): nothing is known of it
    # Every figure unknown (no value: a source never synced, nothing in scope): why, in a few words.
    # Unknown is never calm, so such a team needs attention like one off target.
    unknown: list[str] = field(default_factory=list)

    @property
    def attention(self) -> bool:
        return bool(self.off_target or self.worse or self.failed or self.unknown)

    @property
    def why(self) -> str:
        """ "off target: Cycle time · worse: Lead time for changes", or "no figures yet: Jira has
        not been synced yet" (plain text)."""
        if self.failed:
            return FAILED
        if self.unknown:
            return f"no figures yet: {_few(self.unknown, 2)}"
        parts = [f"off target: {_few(self.off_target)}"] if self.off_target else []
        parts += [f"worse: {_few(self.worse)}"] if self.worse else []
        return " · ".join(parts)


def _few(names: list[str], most: int = 3) -> str:
    """ "Cycle time, Throughput and 2 more": a reason stays a few words."""
    if len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[:most])} and {len(names) - most} more"


def _mark(status: str | None) -> str:
    return {"met": "✅ ", OFF_TARGET: "⚠️ "}.get(status or "", "")


def _line(metric: Metric, result: Result, target: float | None, status: str | None) -> str:
    """``Cycle time: *p50 3.0 d · p85 7.1 d* · ⚠️ off target (≤ 5.0 d) · ⚑ slower than …``: the
    figure, its target's status where the team set one, and its signal where there is one."""
    figure, _spark = fmt.shown(metric, result)
    shown = f"*{escape_mrkdwn(figure)}*" if fmt.has_data(result) else f"_{escape_mrkdwn(figure)}_"
    parts = [f"{escape_mrkdwn(metric.name)}: {shown}"]
    said = target_line(metric, target, status)
    if said:
        parts.append(_mark(status) + escape_mrkdwn(said))
    if result.signal:
        parts.append("⚑ " + escape_mrkdwn(result.signal))
    return " · ".join(parts)


def portfolio_block(
    team: Team, north: list[str], window: Window, found: dict[tuple[str, str], Result]
) -> Block:
    """The team's North Star figures and its own metrics over its digest period (``window``; the
    figures ``found``, read for every team at once), each with its target status and signal, and what
    makes the team need attention: a figure off its target, a signal that says it got worse (by the
    metric's direction: ``metrics.org_digest.signal_better``), or no figure known at all."""
    own = determinants(team, north)
    block = Block(team, period(window), [])
    reasons: list[str] = []
    for i, mid in enumerate(north + own):
        metric, result = CATALOGUE[mid], found[(team.name, mid)]
        if i == 0 and north:
            block.lines.append("_North Star_")
        if i == len(north) and own:
            block.lines.append("_The team's metrics_")
        target = team.targets.get(mid)
        status = target_status(metric, result.value, target)
        block.lines.append(_line(metric, result, target, status))
        if status == OFF_TARGET:
            block.off_target.append(metric.name)
        if signal_better(metric, result) is WORSE:
            block.worse.append(metric.name)
        block.failed = block.failed or result.no_data_reason == FAILED_FIGURE
        reason = result.no_data_reason or NO_FIGURE
        if result.value is None and reason not in reasons:
            reasons.append(reason)
    if north + own and all(found[(team.name, m)].value is None for m in north + own):
        block.unknown = reasons
    return block


FAILED = "figures could not be computed just now; it has been logged"
NO_FIGURE = "no data in this period"


def _failed(team: Team) -> Block:
    return Block(team, "", [], failed=True)


def portfolio_blocks(
    db, teams: list[Team], north: list[str], now: datetime, *, ws: Workspace = SINGLE
) -> list[Block]:
    """Each team's block, from one read of the stored figures for all of them (one
    ``results.figures_of`` per distinct digest window: ``own_window_figures``). A team whose
    data breaks a computation is one block saying so: it must not leave everyone's App Home
    unpublished."""
    north = [m for m in north if m in CATALOGUE]
    wanted = [(t, north + determinants(t, north)) for t in teams]
    try:
        found, windows = own_window_figures(db, wanted, now, ws=ws)
    except Exception as exc:  # noqa: BLE001 - logged, and App Home is still published, saying so
        log.error("App Home: the teams' figures failed: %s", error_line(exc))
        return [_failed(t) for t in teams]
    blocks = []
    for team in teams:
        try:
            blocks.append(portfolio_block(team, north, windows[team.name], found))
        except Exception as exc:  # noqa: BLE001 - logged, and the other teams are shown
            log.error("App Home: %s's figures failed: %s", team.name, error_line(exc))
            blocks.append(_failed(team))
    return blocks


def portfolio(blocks: list[Block]) -> tuple[list[Block], list[Block]]:
    """The teams needing attention, then the others: each group by name, never ranked."""
    return [b for b in blocks if b.attention], [b for b in blocks if not b.attention]


def _shown(b: Block) -> dict:
    return {
        "team": b.team,
        "channel": channel_link(b.team.channel),
        "period": b.period,
        "why": b.why,
        "figures": Trusted(cut_mrkdwn("\n".join(b.lines), SECTION_TEXT)) if b.lines else "",
    }


def _single(team: Team, period: str, rows: list[dict], failed: str = "") -> dict:
    """One team in full, with every key ``home.json.j2`` reads on every path (its environment is
    strict: a key one path leaves out is an error that leaves App Home unpublished): no ``rows`` and
    no ``failed`` is a team that chose no metrics, pointed to its settings."""
    return {
        "team": team,
        "channel": channel_link(team.channel),
        "period": period,
        "rows": rows,
        "failed": failed,
    }


# -- the view -----------------------------------------------------------------------------------------------
def home_view(db, client, user: str, now: datetime, *, ws: Workspace = SINGLE) -> dict:
    """App Home for ``user``: the org's North Star, then the teams whose channels the user is in
    (``users.conversations``, one paged call for all of them): one in full, several as a portfolio.
    Everything is ``ws``'s, the workspace App Home is opened in: its org, its teams."""
    channels = user_channels(client, user)
    mine = by_name([t for t in list_teams(db, ws=ws) if t.channel in channels])
    try:
        org = org_north_star(db, now, ws=ws)
    except Exception as exc:  # noqa: BLE001 - the teams below are still worth showing
        log.error("App Home: the org's North Star failed: %s", error_line(exc))
        org = {"lines": [Trusted(f"_{FAILED}_")], "period": "", "timezone": "", "teams": 0}
    context: dict = {"org": org, "single": None, "attention": [], "others": []}
    if len(mine) == 1:
        try:
            window, rows = team_rows(db, mine[0], now, ws=ws)
            context["single"] = _single(mine[0], period(window), rows)
        except Exception as exc:  # noqa: BLE001 - App Home is still published, saying so
            log.error("App Home: %s's figures failed: %s", mine[0].name, error_line(exc))
            context["single"] = _single(mine[0], "", [], failed=FAILED)
    elif mine:
        north = north_star_ids(get_org(db, ws=ws))
        attention, others = portfolio(portfolio_blocks(db, mine, north, now, ws=ws))
        shown = (attention + others)[:MAX_TEAMS]
        context["attention"] = [_shown(b) for b in shown if b.attention]
        context["others"] = [_shown(b) for b in shown if not b.attention]
    context["teams"] = len(mine)
    context["more"] = max(0, len(mine) - MAX_TEAMS) if len(mine) > 1 else 0
    return render_json("home.json.j2", **context)


# -- the modals a portfolio's "Full digest" opens -----------------------------------------------------------
def notice_modal(title: str, notice: str) -> dict:
    """A modal saying one thing (``notice``: mrkdwn we built, anything from a tool already escaped):
    "Building payments's digest…", or why it cannot be shown."""
    return render_json(
        "team_digest_modal.json.j2", title=title, blocks=[], channel="", notice=Trusted(notice)
    )


def digest_modal(d: Digest, now: datetime) -> dict:
    """The team's digest as its channel would get it (``bot.render.digest.message``), read-only: its
    buttons and menus (Explain, charts, Adjust metrics, snooze, Post to channel) act on the message's
    channel, which a modal opened from App Home does not have, so they are left out and a last line
    says where they are (`/vsm digest` in the team's channel). At most 100 blocks, as a view allows."""
    blocks = []
    for block in digest_message(d, now)["blocks"]:
        if block.get("type") == "actions":
            continue
        blocks.append({k: v for k, v in block.items() if k != "accessory"})
    return render_json(
        "team_digest_modal.json.j2",
        title=f"{d.team.name} digest",
        blocks=blocks[: MAX_VIEW_BLOCKS - 1],
        channel=d.team.channel,
        notice="",
    )
