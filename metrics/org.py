"""The organisation's North Star roll-up: one figure per North Star metric, pooled from every team.

An organisation is one Slack workspace's (``metrics.workspace``): its settings and teams are read
with ``ws``, so a roll-up never pools another workspace's team, even one of the same name.

docs/metrics.md "Organisation roll-up": the org figure pools the *observations* of every team, each
observation once (a PR, deployment, incident or work item in two teams' scopes counts once), so
durations are p50/p85 of the pooled observations (never a median of team medians), counts per week
are pooled events ÷ weeks and rates pooled numerator ÷ pooled denominator. Each metric's own
``aggregate``, ``weekly`` and ``signal`` (metrics/catalogue/base.py) turn the pooled observations into
the figure, the weekly series and the XmR / two-sample verdict, so the org figure follows exactly the
rules a team's does. Windows and weeks are drawn in the org time zone, and each team's own figure is
computed on that same window, so the rows beside the org figure are comparable. Teams are listed by
name, never ranked; nothing here is per person.

Cost: one ``TeamData`` per team, loaded once for every North Star metric (``rollups`` takes the list),
and only ``(at, value)`` of each pooled observation is kept, not the item behind it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from operator import itemgetter
from typing import NamedTuple

import sqlite_utils

from metrics import catalogue
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import (
    NO_DATA,
    NO_EARLIER_DATA,
    Metric,
    Observation,
    Result,
    Verdict,
    baseline_window,
    failed,
    local_day,
    series_weeks,
    slicer,
)
from metrics.dataset import Item, TeamData
from metrics.errors import VsmError, error_line
from metrics.runtime import gc_deferred
from metrics.targets import from_stored, target_status
from metrics.teams import ORG_DEFAULTS, ORG_DIGEST, Team, check_number, check_target, get_org, list_teams
from metrics.timeutil import (
    Window,
    complete_days,
    dates_window,
    iso,
    local_midnight,
    parse_period,
    week_start,
    zone,
)
from metrics.workspace import SINGLE, Workspace

log = logging.getLogger("vsm.metrics")

# Net flow observes one item twice, when it arrives and when it departs: both are kept per item.
_EVENTS = frozenset(("arrival", "departure"))
NO_TEAM_DATA = "no team has data for this metric in this period (each team's row says why)"

Identity = tuple[str, str, str, str | None]
_AT = itemgetter(0)


class Point(NamedTuple):
    """A pooled observation as the aggregation, the weekly points and the signal read it (``at`` and
    ``value``, like ``Observation``): the item behind it is not kept, and a large org pools half a
    million of them, where a tuple costs a third of an ``Observation``."""

    at: float
    value: float


# -- the org's window ---------------------------------------------------------------------------------
def org_timezone(org: dict) -> str:
    """The org's IANA zone name (``[org] timezone``, default UTC), checked: windows and weeks of the
    roll-up are drawn in it, so a bad one is a clear error, never a silent UTC."""
    name = org.get("timezone", ORG_DEFAULTS["timezone"])
    if not isinstance(name, str):
        raise VsmError(f"org timezone: expected an IANA name such as Europe/London, not {name!r}")
    zone(name)
    return name


def _as_datetime(now: datetime | float) -> datetime:
    if isinstance(now, datetime):
        return now
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise VsmError(f"now: expected an instant, not {now!r}")
    return datetime.fromtimestamp(now, UTC)


def org_window(
    org: dict,
    now: datetime | float,
    *,
    period: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Window:
    """The roll-up's window in the org time zone. By default the org digest's period: the last
    ``[org] digest.period_days`` (default 28) complete local days, as a team's digest window is
    drawn; or what the reader asked for, read exactly as ``vsm metric`` reads it (``--period``, or
    ``--since``/``--until`` local dates, ``until`` exclusive), so one request gives the same days
    for the org and for a team in the same zone."""
    tz = zone(org_timezone(org))
    now_dt = _as_datetime(now)
    if period and (since or until):
        raise VsmError("use either --period or --since/--until, not both")
    if bool(since) != bool(until):
        raise VsmError("--since and --until go together")
    if period:
        return parse_period(period, tz, now_dt)
    if since:
        return dates_window(since, until or "", tz)
    digest = org.get("digest") or {}
    if not isinstance(digest, dict):
        raise VsmError(f"org digest: expected a table, not {digest!r}")
    days = int(check_number("period_days", digest.get("period_days", ORG_DIGEST["period_days"])))
    return complete_days(days, tz, now_dt)


# -- what makes two teams' observations the same one -----------------------------------------------------
def identity(o: Observation) -> Identity:
    """What an observation is about, the same whichever team's scope it came through: a work item
    by (source, key), a PR, deployment or incident by its URL (which names the tool it lives in) and
    key, plus the event for a metric that observes one item twice (net flow's arrival and departure).

    The catalogue's observations carry their explain item lazily (``functools.partial``); the ref
    is read from the partial's arguments so that pooling never builds the items (a thousand per team
    on a large org). Anything else falls back to the explain item itself."""
    item = o.item
    if isinstance(item, partial) and item.args:
        first = item.args[0]
        if isinstance(first, Item):
            info = item.args[3] if len(item.args) > 3 else None
            return (
                "item",
                first.source,
                first.key,
                info if isinstance(info, str) and info in _EVENTS else None,
            )
        if isinstance(first, dict) and "key" in first:
            return _ref_identity(first)
    return _ref_identity(o.explain())


def _ref_identity(ref: dict) -> Identity:
    event = ref.get("event")
    return ("ref", str(ref.get("url") or ""), str(ref.get("key")), event if isinstance(event, str) else None)


# -- the roll-up ------------------------------------------------------------------------------------------
@dataclass
class TeamFigure:
    """One team's own figure on the org's window: what its row beside the org figure says."""

    team: str
    value: object
    sample_size: int
    target: float | None
    on_target: bool | None
    result: Result  # the whole figure (notes, no-data reason), for surfaces that say more

    def to_json(self) -> dict:
        return {
            "team": self.team,
            "value": self.value,
            "sample_size": self.sample_size,
            "target": self.target,
            "on_target": self.on_target,
        }


@dataclass
class Rollup:
    """One North Star metric for the org: the pooled figure, its previous period, weekly series and
    verdict, the org's target if it set one, and every team's row, by name."""

    metric: Metric
    window: Window
    value: object
    previous: object
    sample_size: int
    series: list[dict]
    verdict: Verdict
    teams: list[TeamFigure]
    poolable: bool = True
    target: float | None = None
    on_target: bool | None = None
    previous_note: str | None = None
    no_data_reason: str | None = None
    contributors: list[str] = field(default_factory=list)  # teams whose observations are pooled

    @property
    def signal(self) -> str | None:
        return self.verdict.signal

    def to_json(self) -> dict:
        """``vsm northstar --json``'s entry for this metric (docs INTERFACE.md): values shaped as in
        ``vsm metric --json``; ``target`` and ``on_target`` only where the org set a target."""
        org = {
            "value": self.value,
            "previous": self.previous,
            "sample_size": self.sample_size,
            "series": self.series,
            "signal": self.verdict.signal,
        }
        if self.target is not None:
            org |= {"target": self.target, "on_target": self.on_target}
        return {
            "metric": self.metric.id,
            "unit": self.metric.unit,
            "org": org,
            "teams": [t.to_json() for t in self.teams],
        }


def poolable(metric: Metric) -> bool:
    """Whether the org figure can be pooled from observations: every metric that lists them (the
    durations, counts and rates, and flow efficiency, net flow and PR size, which aggregate their
    observations their own way). WIP, flow load, aging WIP, flow distribution, the forecast and the
    sprint figures are not: they are daily samples of a team's own board, a team's own forecast or a
    team's own sprints, not events a second team could also observe, and summing or averaging them
    across teams would be a figure docs/metrics.md does not define. Their org figure is left empty
    (null) with a note, and each team's row still shows its own."""
    return type(metric).observations is not Metric.observations


def _known(metric: Metric, result: Result) -> bool:
    """Whether the team's figure is known (``base.unknown``): an empty figure whose reason is not
    the metric's "nothing happened" is unknown (no source in scope, never synced, or, for the change
    failure rate, no incidents synced so every deployment would read as a success). An unknown
    team's observations are not pooled: they would be invented zeros."""
    if result.sample_size:
        return True
    reason = result.no_data_reason
    return reason is None or reason == getattr(metric, "nothing", None)


def by_name(teams: Sequence[Team]) -> list[Team]:
    """Teams in the order every org surface lists them: by name, case aside, then as written (never
    by a figure)."""
    return sorted(teams, key=lambda t: (t.name.casefold(), t.name))


def org_target(metric: Metric, stored: object) -> float | None:
    """The org's target for a metric as stored (a plain number, or ``Target.to_dict``), or None when
    it is missing or not a finite number within the metric's bounds (never judged on a bad one)."""
    if stored is None:
        return None
    try:
        target = from_stored(metric, stored)
        if not math.isfinite(target):
            return None
        return check_target(metric.id, target)
    except (VsmError, TypeError, ValueError, OverflowError):
        return None


def on_target(metric: Metric, value: object, target: float | None) -> bool | None:
    """Whether ``value`` meets ``target`` (``target_status``), or None when it is not judged."""
    status = target_status(metric, value, target)
    return None if status is None else status == "met"


def plain_target(target: float | None) -> float | None:
    """A target as shown and written to JSON: a float, or None when there is none (or it is not finite)."""
    return None if target is None or not math.isfinite(target) else float(target)


def team_row(metric: Metric, team: Team, result: Result) -> TeamFigure:
    """A team's row beside the org figure: its own figure and its own target, judged on it. One
    construction for a computed roll-up and one read back from the store, so they cannot differ."""
    target = team.targets.get(metric.id)
    return TeamFigure(
        team.name,
        result.value,
        result.sample_size,
        plain_target(target),
        on_target(metric, result.value, target),
        result,
    )


@dataclass
class _Pool:
    """One metric's pooled observations, first team (by name) first: ``identity -> [(at, value)]``."""

    obs: dict[Identity, list[Point]] = field(default_factory=dict)
    firsts: list[float] = field(default_factory=list)  # each contributing team's history start
    contributors: list[str] = field(default_factory=list)

    def add(self, team: str, observations: Iterable[Observation], first: float | None) -> None:
        """A team's observations, each counted once for the org: an identity another team already
        brought is skipped (that team's, earlier by name, stands), and within one team nothing is
        dropped, so a team alone pools to exactly its own figure."""
        mine: dict[Identity, list[Point]] = {}
        for o in observations:
            mine.setdefault(identity(o), []).append(Point(o.at, o.value))
        for key, points in mine.items():
            self.obs.setdefault(key, points)
        if first is not None:
            self.firsts.append(first)
        self.contributors.append(team)


def _team_range(metric: Metric, data: TeamData, window: Window) -> float:
    """Where ``Metric.compute`` starts its loads for this team (its baseline or previous period):
    observations from there reuse what ``compute`` loaded instead of loading the team again."""
    return min(metric.baseline(data, window).start, window.previous().start)


def _history_start(metric: Metric, data: TeamData) -> float | None:
    return data.history_start(metric.history) if metric.history else float("-inf")


def _empty_series(window: Window, now: float, duration_like: bool) -> list[dict]:
    return [
        {"week": local_day(s, window).isoformat(), "value": None}
        | ({"p85": None} if duration_like else {})
        | ({} if complete else {"partial": True})
        for s, _e, complete in series_weeks(window, now)
    ]


def _pooled(metric: Metric, pool: _Pool, window: Window, now: float) -> dict:
    """The org figure from the pooled observations, by the metric's own aggregation, weekly point
    and signal rules. The baseline and the previous period start no earlier than the first week in
    which *every* contributing team has data: weeks before a team's history are unknown for the org
    too, and pooled without that team they would make its arrival look like a shift."""
    obs = [p for points in pool.obs.values() for p in points]
    obs.sort(key=_AT)
    first = max(pool.firsts) if pool.firsts else None
    base = baseline_window(window, first)
    prev = window.previous()
    between = slicer(obs)
    current = between(window.start, window.end)
    series = []
    for s, e, complete in series_weeks(window, now):
        week = between(s, e)
        series.append(
            {"week": local_day(s, window).isoformat(), "value": metric.weekly(week)}
            | ({"p85": metric.weekly_p85(week)} if metric.judged_on_p85 else {})
            | ({} if complete else {"partial": True})
        )
    known_from = (
        None if first is None else local_midnight(week_start(first, window.tz), window.tz).timestamp()
    )
    previous, previous_note = metric.aggregate(between(prev.start, prev.end), prev), None
    if known_from is None or prev.start < known_from:
        previous, previous_note = None, NO_EARLIER_DATA
    verdict = metric.signal(obs, window, base, now)
    if not current and verdict.signal is None and verdict.note is None:
        verdict = Verdict(note=NO_DATA, limits=verdict.limits)
    return {
        "value": metric.aggregate(current, window),
        "previous": previous,
        "previous_note": previous_note,
        "sample_size": len(current),
        "series": series,
        "verdict": verdict,
        "no_data_reason": getattr(metric, "nothing", None) if not current else None,
    }


class _NotLoaded(Exception):
    """The team's data could not be loaded (logged by ``load_team``)."""


def load_team(db: sqlite_utils.Database, team: Team, now: float) -> TeamData | None:
    """The team's data, or None when its settings or rows cannot be loaded (a damaged settings row):
    logged, and its figures are ``failed``, so one team never stops a roll-up over all of them."""
    try:
        return TeamData(db, team, now)
    except Exception as exc:  # noqa: BLE001 - logged; each figure then says it could not be computed
        log.error("%s's data could not be loaded: %s", team.name, error_line(exc))
        return None


def _failed(metric: Metric, team: Team, window: Window, exc: Exception) -> Result:
    if not isinstance(exc, _NotLoaded):
        log.error("%s of %s could not be computed: %s", metric.id, team.name, error_line(exc))
    return failed(metric.id, metric.unit, team.name, window)


def figure(metric: Metric, team: Team, data: TeamData | None, window: Window) -> Result:
    """``metric.compute`` for one team, or its figure as ``failed`` (logged) when the team's data
    could not be loaded or the computation raised: the one way every org-wide reading computes a
    team's figure, so that a damaged team is one unknown row, never a failed digest."""
    try:
        if data is None:
            raise _NotLoaded
        return metric.compute(data, window)
    except Exception as exc:  # noqa: BLE001 - logged; the figure says it could not be computed
        return _failed(metric, team, window, exc)


def rollups(
    db: sqlite_utils.Database,
    metric_ids: Sequence[str],
    window: Window,
    now: datetime | float,
    teams: Sequence[Team] | None = None,
    targets: dict | None = None,
    *,
    ws: Workspace = SINGLE,
) -> list[Rollup]:
    """Every metric of ``metric_ids`` rolled up across ``teams`` (default: every team of workspace
    ``ws``: an org is one workspace's teams, never another's), each team's
    data loaded once for all of them: the North Star of a large org in one pass over its teams.

    Per team and metric: the team's own figure on ``window`` (``Metric.compute``, exactly what
    ``vsm metric --team`` gives for the same dates), and, when that figure is known, its observations
    from the same loads, pooled once each by ``identity``. ``targets``: the org's, metric id -> number
    (``[org] targets``); a bad one is ignored rather than judged on."""
    metrics = [catalogue.get(m) for m in metric_ids]
    now_ts = _as_datetime(now).timestamp()
    teams = by_name(list_teams(db, ws=ws) if teams is None else teams)
    pools = {m.id: _Pool() for m in metrics}
    rows: dict[str, list[TeamFigure]] = {m.id: [] for m in metrics}
    with gc_deferred():
        for team in teams:
            data = load_team(db, team, now_ts)
            for metric in metrics:
                result = figure(metric, team, data, window)
                if poolable(metric) and _known(metric, result):  # a failed figure is not known
                    try:
                        obs, _notes = metric.observations(data, _team_range(metric, data, window), window.end)
                        pools[metric.id].add(team.name, obs, _history_start(metric, data))
                    except Exception as exc:  # noqa: BLE001 - one team's failure never stops the org's figure
                        result = _failed(metric, team, window, exc)
                rows[metric.id].append(team_row(metric, team, result))
            del data  # one team's loads at a time: a large org never holds them all
        return [
            _rollup(m, pools[m.id], rows[m.id], window, now_ts, (targets or {}).get(m.id)) for m in metrics
        ]


def _rollup(
    metric: Metric, pool: _Pool, rows: list[TeamFigure], window: Window, now: float, stored_target: object
) -> Rollup:
    pooled = poolable(metric)
    if not pooled or not pool.contributors:  # no org figure: why, with the team rows still shown
        reason = (
            NO_TEAM_DATA
            if pooled
            else f"{metric.name} is a team-level figure, not pooled across teams: each team's row shows its own"
        )
        out = Rollup(
            metric,
            window,
            None,
            None,
            0,
            _empty_series(window, now, metric.judged_on_p85),
            Verdict(note=NO_DATA if pooled else reason),
            rows,
            poolable=pooled,
            no_data_reason=reason,
        )
    else:
        pooled_figure = _pooled(metric, pool, window, now)
        out = Rollup(
            metric,
            window,
            pooled_figure["value"],
            pooled_figure["previous"],
            pooled_figure["sample_size"],
            pooled_figure["series"],
            pooled_figure["verdict"],
            rows,
            previous_note=pooled_figure["previous_note"],
            no_data_reason=pooled_figure["no_data_reason"],
            contributors=list(pool.contributors),
        )
    return judged(out, stored_target)


def judged(out: Rollup, stored_target: object) -> Rollup:
    """The roll-up with the org's target (``[org] targets``' entry, as stored) judged on its figure:
    done when a roll-up is read, computed or stored, never kept with it. A bad target is not judged."""
    target = org_target(out.metric, stored_target)
    out.target = plain_target(target)
    out.on_target = on_target(out.metric, out.value, target) if target is not None else None
    return out


def rollup(
    db: sqlite_utils.Database,
    metric_id: str,
    window: Window,
    now: datetime | float,
    teams: Sequence[Team] | None = None,
    targets: dict | None = None,
    *,
    ws: Workspace = SINGLE,
) -> Rollup:
    """One metric rolled up across the teams (see ``rollups``, which shares the loads between
    several metrics: prefer it for more than one)."""
    return rollups(db, [metric_id], window, now, teams, targets, ws=ws)[0]


def north_star_ids(org: dict) -> list[str]:
    """The org's North Star metric ids that the catalogue knows, in the org's order."""
    ids = org.get("north_star") or []
    return [m for m in ids if isinstance(m, str) and m in CATALOGUE] if isinstance(ids, list) else []


def org_targets(org: dict) -> dict:
    """``[org] targets`` (metric id -> target), or none when it is not a table."""
    targets = org.get("targets") or {}
    return targets if isinstance(targets, dict) else {}


# What rolls up the North Star: ``rollups``, or ``metrics.results.org_rollups`` (same arguments,
# ``ws`` among them).
RollupsFn = Callable[..., list[Rollup]]


def northstar(
    db: sqlite_utils.Database,
    now: datetime | float,
    window: Window | None = None,
    compute: RollupsFn | None = None,
    *,
    ws: Workspace = SINGLE,
) -> dict:
    """``vsm northstar --json`` (docs INTERFACE.md): the window, the org time zone and, for each North
    Star metric in the org's order, the pooled org figure and every team's figure beside it, for the
    org of workspace ``ws``. ``compute``: what rolls up (default ``rollups``;
    ``metrics.results.org_rollups`` reads the figures a sync stored instead of recomputing every team)."""
    window, tz, found = north_star_rollups(db, now, window, compute, ws=ws)
    return {
        "since": iso(window.start),
        "until": iso(window.end),
        "timezone": tz,
        "metrics": [r.to_json() for r in found],
    }


def north_star_rollups(
    db: sqlite_utils.Database,
    now: datetime | float,
    window: Window | None = None,
    compute: RollupsFn | None = None,
    *,
    ws: Workspace = SINGLE,
) -> tuple[Window, str, list[Rollup]]:
    """The window, the org time zone and each North Star metric rolled up with the org's targets:
    what ``northstar`` prints as JSON and a terminal as text. The org's settings and teams are
    workspace ``ws``'s."""
    org = get_org(db, ws=ws)
    tz = org_timezone(org)
    window = window or org_window(org, now)
    ids = north_star_ids(org)
    return window, tz, (compute or rollups)(db, ids, window, now, targets=org_targets(org), ws=ws)


__all__ = [
    "Rollup",
    "TeamFigure",
    "by_name",
    "figure",
    "identity",
    "judged",
    "load_team",
    "north_star_ids",
    "north_star_rollups",
    "northstar",
    "on_target",
    "org_target",
    "org_targets",
    "org_timezone",
    "org_window",
    "plain_target",
    "poolable",
    "rollup",
    "rollups",
    "team_row",
]
