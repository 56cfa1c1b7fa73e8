"""What goes into a team's digest: the figures, their targets and signals, and data freshness.

Rendering (Slack blocks, terminal text) lives in ``bot``; this module decides *what* is said, so the
same digest reaches every surface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils

from metrics import experiments
from metrics.behind import behind
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Metric, Result
from metrics.dataset import TeamData
from metrics.errors import VsmError
from metrics.experiments import Experiment, Progress
from metrics.org import north_star_ids
from metrics.runtime import gc_deferred
from metrics.store.sync_status import freshness
from metrics.targets import target_status
from metrics.teams import Team, get_org
from metrics.timeutil import Window, complete_days
from metrics.workspace import SINGLE, Workspace


@dataclass
class Figure:
    metric: Metric
    result: Result
    target: float | None
    target_status: str | None  # "met" | "missed" | None (no target, no value, or a context metric)
    # The work behind a signal or a missed target, so the team can act on it from the digest:
    # {"heading": str, "items": [{"key", "title", "url", "detail"}]}, up to 3 items (metrics.behind).
    behind: dict | None = None


@dataclass
class Digest:
    team: Team
    window: Window
    north_star: list[Figure]
    determinants: list[Figure]
    freshness: list[dict] = field(default_factory=list)  # {"source", "as_of", "error"}
    # The team's improvement experiments: those running (each its metric so far against the same
    # length of time before it), oldest first, and those concluded since the digest's window began.
    experiments: list[Progress] = field(default_factory=list)
    concluded: list[Experiment] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return self.north_star + self.determinants

    @property
    def nudges(self) -> list[Figure]:
        """Only real signals earn a line of their own: never a nudge for noise."""
        return [f for f in self.figures if f.result.signal]


def digest_window(team: Team, now: datetime) -> Window:
    """The last ``period_days`` complete local days before today (``now``'s local date), the window
    every surface shows without an explicit period. Not tied to the digest day: the scheduled digest
    passes its own fire time as ``now``, so on its day it covers the days before that day."""
    return complete_days(int(team.digest.get("period_days", 28)), team.tz, now)


def build_digest(
    db: sqlite_utils.Database,
    team: Team,
    now: datetime,
    window: Window | None = None,
    *,
    ws: Workspace = SINGLE,
) -> Digest:
    """Compute every figure of the team's digest from one shared data load. ``ws``: the workspace the
    team is one of (its org's North Star, its experiments)."""
    window = window or digest_window(team, now)
    data = TeamData(db, team, now)
    north = north_star_ids(get_org(db, ws=ws))
    own = [m for m in team.metrics if m in CATALOGUE and m not in north]

    def figure(mid: str) -> Figure:
        metric = CATALOGUE[mid]
        result = metric.compute(data, window)
        target = team.targets.get(mid)
        status = target_status(metric, result.value, target)
        return Figure(metric, result, target, status, behind(metric, result, data, status))

    with gc_deferred():  # the figures' objects live until the digest is rendered: see gc_deferred
        north_star = [figure(m) for m in north]
        determinants = [figure(m) for m in own]
        running = running_experiments(db, team, now, data, ws=ws)
    # Concluded from the window's start to now: one that ended since the window closed (today) is
    # neither running nor forgotten.
    until = max(window.end, now.timestamp()) + 1
    concluded = experiments.concluded_for(db, team.name, window.start, until, ws=ws)
    return Digest(team, window, north_star, determinants, freshness(db), running, concluded)


def running_experiments(
    db: sqlite_utils.Database, team: Team, now: datetime, data: TeamData, *, ws: Workspace = SINGLE
) -> list[Progress]:
    """The team's running experiments with their metric so far, from the digest's own data load. One
    whose metric can no longer be judged (the catalogue changed) is left out here; its verdict says
    so when it ends."""
    try:
        running = experiments.running(db, team, ws=ws)
    except VsmError:  # a team not stored (built in memory by a caller) has no experiments
        return []
    out = []
    for exp in running:
        try:
            out.append(experiments.progress(db, exp, now, data, ws=ws))
        except VsmError:
            continue
    return out
