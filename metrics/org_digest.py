"""What goes into the organisation's digest (issue 13): decided here, rendered in ``bot``.

The North Star roll-up (``metrics.org``); the teams whose determinant metrics moved with a real
signal in the period, better or worse, each with its team's one-line reason; the experiments that
concluded in the period, with their verdicts; and the teams whose data is stale. Teams are listed by
name, never ranked; nothing is per person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlite_utils

from metrics import results
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Metric, Result
from metrics.digest import digest_window
from metrics.experiments import Experiment, concluded_between
from metrics.org import Rollup, by_name, north_star_ids, org_targets, org_timezone, org_window
from metrics.runtime import gc_deferred
from metrics.store.sync_status import freshness
from metrics.teams import Team, get_org, list_teams
from metrics.timeutil import Window, epoch, parse_instant
from metrics.workspace import SINGLE, Workspace

# A source whose last successful sync is older than this at the digest's time is stale, even with no
# error recorded: a sync job that stopped leaves no error behind (docs/metrics.md, "The org digest").
STALE_AFTER = timedelta(hours=24)


@dataclass
class Moved:
    """One team's determinant metric that moved with a real signal (METRICS.md's rules) in the team's
    own digest window, as its digest says it."""

    team: str
    channel: str
    metric: str  # metric id
    metric_name: str
    better: bool | None  # True better, False worse, None for a context metric (no better direction)
    line: str  # the team's one-line reason, as its own digest says it (plain text, unescaped)
    window: Window | None = None  # the team's digest window the signal was found in


@dataclass
class Stale:
    """A team whose data is not current: which sources, as of when, and why (plain text)."""

    team: str
    channel: str
    sources: list[dict]  # {"source", "as_of" (ISO or None), "error" (str or None)}


@dataclass
class OrgDigest:
    window: Window
    timezone: str
    north_star: list[Rollup]
    moved: list[Moved] = field(default_factory=list)  # by team name, then metric: never ranked
    concluded: list[Experiment] = field(default_factory=list)
    stale: list[Stale] = field(default_factory=list)


def build_org_digest(
    db: sqlite_utils.Database, now: datetime, window: Window | None = None, *, ws: Workspace = SINGLE
) -> OrgDigest:
    """The org digest's content over ``window`` (default: the org digest's period, ``org_window``):
    the org of workspace ``ws``, its settings, its teams and their experiments, no other's."""
    org = get_org(db, ws=ws)
    tz = org_timezone(org)
    window = window or org_window(org, now)
    north = north_star_ids(org)
    # The figures a sync stored (``metrics.results``): read once for every part, the data version
    # before anything else, and computed (then stored) only where they are not current.
    reading = results.Reading(db, window, now, ws=ws) if results.cacheable(window, epoch(now)) else None
    teams = by_name(list_teams(db, ws=ws))
    with gc_deferred():
        north_star = results.org_rollups(
            db, north, window, now, targets=org_targets(org), teams=teams, reading=reading, ws=ws
        )
        return OrgDigest(
            window,
            tz,
            north_star,
            moved_teams(db, teams, north, now, (window, reading), ws=ws),
            concluded_between(db, window.start, window.end, ws=ws),
            stale_teams(db, teams, now),
        )


def own_window_figures(
    db: sqlite_utils.Database,
    wanted: Sequence[tuple[Team, Sequence[str]]],
    now: datetime,
    known: tuple[Window, results.Reading | None] | None = None,
    *,
    ws: Workspace = SINGLE,
) -> tuple[dict[tuple[str, str], Result], dict[str, Window]]:
    """Several teams' figures, each on its own digest window as of ``now`` (``digest_window``: its
    time zone and period), as its digest, App Home and the post-sync warming (``results.warm``)
    compute them: ``(team name, metric id) -> Result``, and each team's window. One
    ``results.figures_of`` call per distinct window (teams sharing a zone and period share one
    read of the stored figures); ``known``: a window whose ``Reading`` the caller already has. The
    teams are workspace ``ws``'s (their figures are stored under it)."""
    # Keyed by the zone's name too: windows in two zones at the same offset are equal instants, but
    # their weeks (and the stored figures' key) are each zone's own.
    groups: dict[tuple[Window, str], list[tuple[Team, Sequence[str]]]] = {}
    windows: dict[str, Window] = {}
    for t, ids in wanted:
        w = windows[t.name] = digest_window(t, now)
        groups.setdefault((w, w.tz.key), []).append((t, ids))
    found: dict[tuple[str, str], Result] = {}
    for (window, zone), group in groups.items():
        reading = known[1] if known and (known[0], known[0].tz.key) == (window, zone) else None
        if reading is None and len(group) > 1 and results.cacheable(window, epoch(now)):
            reading = results.Reading(db, window, now, ws=ws)
        found |= results.figures_of(db, group, window, now, reading, ws=ws)
    return found, windows


def moved_teams(
    db: sqlite_utils.Database,
    teams: Sequence[Team],
    north: Sequence[str],
    now: datetime,
    known: tuple[Window, results.Reading | None] | None = None,
    *,
    ws: Workspace = SINGLE,
) -> list[Moved]:
    """Each team's determinant metrics that moved with a real signal, judged as the team's own digest
    judges them: on its digest window as of ``now``, not the org's, so the org digest never says a
    team moved when its digest says it did not (``own_window_figures``). Listed in ``teams``' order
    (by name), each team's metrics in its own order."""
    wanted = [(t, own) for t in teams if (own := determinants(t, north))]
    found, windows = own_window_figures(db, wanted, now, known, ws=ws)
    return [
        m
        for t, own in wanted
        for m in moved_of(t, [(CATALOGUE[i], found[(t.name, i)]) for i in own], windows[t.name])
    ]


def determinants(team: Team, north: Sequence[str]) -> list[str]:
    """The team's own metrics, as its digest chooses them: the ones it picked that the catalogue
    knows, less the org's North Star metrics (those are the roll-up's)."""
    return [m for m in team.metrics if m in CATALOGUE and m not in north]


# -- which way a signal went ------------------------------------------------------------------------
def signal_better(metric: Metric, result: Result) -> bool | None:
    """Whether the figure's signal says the metric got better (True) or worse (False), by the
    metric's direction (as ``bot.render.format.better_or_worse`` judges a change); None for no
    signal, a context metric, or net flow, whose aim is balance (a move either way may be towards it
    or away). The way the figure went is the one the signal rule found (``Result.signal_up``), never
    read back from the signal's wording."""
    up = result.signal_up if result.signal else None
    if up is None or metric.better not in ("lower", "higher"):
        return None
    return up == (metric.better == "higher")


def moved_of(
    team: Team, figures: Sequence[tuple[Metric, Result]], window: Window | None = None
) -> list[Moved]:
    """The team's determinant figures that moved with a real signal, in the team's order of metrics."""
    return [
        Moved(team.name, team.channel, m.id, m.name, signal_better(m, r), r.signal, window)
        for m, r in figures
        if r.signal
    ]


# -- stale data --------------------------------------------------------------------------------------
# What each kind of source syncs (``Connector.streams``), to tell a source's kind from sync_status
# alone: a source that never synced has no rows to tell it by.
_KIND_STREAMS = (
    ("jira", {"issues", "sprints"}),
    ("gitlab", {"merge_requests", "pipelines"}),
    ("github", {"pulls"}),
)
# The store's rows that tie a source to a team's scope, per kind: (table, column, the team's names).
_ROWS = {
    "jira": (("work_items", "project", lambda t: t.jira_projects), ("sprints", "board", lambda t: t.boards)),
    "github": (
        ("pull_requests", "repo", lambda t: t.repos),
        ("deployments", "service", lambda t: t.repos + t.services),
        ("incidents", "service", lambda t: t.repos + t.services),
    ),
    "gitlab": (
        ("pull_requests", "repo", lambda t: t.gitlab_projects),
        ("deployments", "service", lambda t: t.gitlab_projects + t.services),
    ),
    "pagerduty": (("incidents", "service", lambda t: t.services),),
}


def source_kinds(db: sqlite_utils.Database) -> dict[str, str]:
    """Each synced source's kind: as its sync recorded it (``sync_status.kind``), else, for rows
    written before kinds were recorded, told from the streams it syncs (``jira``: issues, sprints;
    ``gitlab``: merge requests, pipelines; ``github``: pulls; a source with none of those, an
    incident tool, ``pagerduty``)."""
    streams: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    for source, stream, kind in db.execute("select source, stream, kind from sync_status"):
        streams.setdefault(source, set()).add(stream)
        if kind in _ROWS:
            kinds[source] = kind
    return {
        source: kinds.get(source) or next((k for k, marks in _KIND_STREAMS if names & marks), "pagerduty")
        for source, names in streams.items()
    }


def _scope_kinds(team: Team) -> set[str]:
    return {
        k
        for k, on in (
            ("jira", team.jira_projects or team.boards),
            ("github", team.repos),
            ("gitlab", team.gitlab_projects),
            ("pagerduty", team.services),
        )
        if on
    }


def _holds(db: sqlite_utils.Database, source: str, kind: str, team: Team) -> bool:
    """Whether ``source`` holds any row of the team's scope."""
    for table, column, names in _ROWS[kind]:
        keys = [str(n) for n in names(team)]
        if (
            keys
            and db.execute(
                f"select 1 from {table} where source = ? and {column} in ({','.join('?' * len(keys))}) limit 1",
                [source, *keys],
            ).fetchone()
        ):
            return True
    return False


def team_sources(db: sqlite_utils.Database, team: Team, kinds: dict[str, str]) -> list[str]:
    """The sources in the team's scope: those of a kind its scope names (Jira for projects or
    boards, GitHub for repositories...). Where the org syncs several sources of one kind (two Jira
    sites), only those holding rows of the team's scope, unless none does yet (then each may be the
    team's, and a stale one is said)."""
    wanted = _scope_kinds(team)
    out = []
    for kind in sorted(wanted):
        same = sorted(s for s, k in kinds.items() if k == kind)
        if len(same) > 1:
            holding = [s for s in same if _holds(db, s, kind, team)]
            same = holding or same
        out += same
    return sorted(out)


def is_stale(entry: dict, now: datetime | float) -> bool:
    """A source is behind when it never synced, its last sync failed (the team digest's freshness
    line: "data as of never", "(last sync failed)"), or its last success is older than
    ``STALE_AFTER`` at ``now``: a sync job that stopped records no error. A time that cannot be
    read is not taken for a fresh one."""
    if not entry.get("as_of") or entry.get("error"):
        return True
    try:
        at = parse_instant(str(entry["as_of"]))
    except ValueError:
        return True
    return at < epoch(now) - STALE_AFTER.total_seconds()


def stale_teams(db: sqlite_utils.Database, teams: Sequence[Team], now: datetime | float) -> list[Stale]:
    """Each team, by name, whose data is stale at ``now``: a source in its scope (``team_sources``)
    that never synced, whose last sync failed, or that last synced more than ``STALE_AFTER`` ago
    (``is_stale``; ``metrics.store.sync_status.freshness`` gives each source's oldest stream)."""
    fresh = {f["source"]: f for f in freshness(db)}
    behind = {s: f for s, f in fresh.items() if is_stale(f, now)}
    if not behind:
        return []
    kinds = source_kinds(db)
    out = []
    for team in by_name(teams):
        mine = [behind[s] for s in team_sources(db, team, kinds) if s in behind]
        if mine:
            out.append(Stale(team.name, team.channel, [dict(f) for f in mine]))
    return out
