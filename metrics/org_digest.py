"""What goes into the organisation's digest (issue 13): decided here, rendered in ``bot``.

The North Star roll-up (``metrics.org``); the teams whose determinant metrics moved with a real
signal in the period, better or worse, each with its team's one-line reason; the experiments that
concluded in the period, with their verdicts; and the teams whose data is stale. Teams are listed by
name, never ranked; nothing is per person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils

from metrics.experiments import Experiment
from metrics.org import Rollup
from metrics.timeutil import Window


@dataclass
class Moved:
    """One team's determinant metric that moved with a real signal (METRICS.md's rules) this period."""

    team: str
    channel: str
    metric: str  # metric id
    metric_name: str
    better: bool | None  # True better, False worse, None for a context metric (no better direction)
    line: str  # the team's one-line reason, as its own digest says it (plain text, unescaped)


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


def build_org_digest(db: sqlite_utils.Database, now: datetime, window: Window | None = None) -> OrgDigest:
    """The org digest's content over ``window`` (default: the org digest's period, ``org_window``)."""
    raise NotImplementedError("issue 13: the org digest's content is being built")
