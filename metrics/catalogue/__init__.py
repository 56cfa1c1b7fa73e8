"""The metric catalogue: every metric of docs/metrics.md, by stable id.

Families live in their own modules (``flow``, ``forecast``, ``dora``, ``pull_requests``, ``scrum``);
each lists its metrics in ``METRICS``. ``compute`` is the one entry point the CLI, the Slack app and
the digests use.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from metrics.catalogue import dora, flow, forecast, pull_requests, scrum
from metrics.catalogue.base import Metric, Result
from metrics.dataset import TeamData
from metrics.errors import VsmError
from metrics.teams import Team
from metrics.timeutil import Window

if TYPE_CHECKING:
    import sqlite_utils

CATALOGUE: dict[str, Metric] = {
    m.id: m for module in (flow, forecast, dora, scrum, pull_requests) for m in module.METRICS
}


def get(metric_id: str) -> Metric:
    """The metric with this id, or a clear error listing what exists."""
    metric = CATALOGUE.get((metric_id or "").strip().lower())
    if metric is None:
        raise VsmError(f"unknown metric {metric_id!r} (one of: {', '.join(CATALOGUE)})")
    return metric


def compute(
    db: sqlite_utils.Database, team: Team, metric_id: str, window: Window, now: datetime | float | None = None
) -> Result:
    """One metric for one team over a window (a fresh data load; digests share a TeamData instead)."""
    return get(metric_id).compute(TeamData(db, team, now), window)


def ids() -> set[str]:
    return set(CATALOGUE)
