"""A target as the team reads it: its status and the bound (``on target (≤ 10.0 d)``), and as the
team wrote it (``cycle-time = 10d``) in the settings form."""

from __future__ import annotations

from bot.render.format import duration, number
from metrics.catalogue.base import Metric
from metrics.targets import AT_LEAST, AT_MOST, BETTER, direction, entered


def bound(metric: Metric, target: float) -> str:
    """``≤ 10.0 d``: the direction the target is judged in (the team's stated one for a context
    metric) and the bound in the figure's own format."""
    better = direction(metric, target)
    op = {"lower": AT_MOST, "higher": AT_LEAST}.get(better or "", "")
    shown = duration(target) if metric.unit == "duration" else number(metric, target)
    return f"{op} {shown}".strip()


def target_line(metric: Metric, target_value: float | None, status: str | None) -> str:
    if target_value is None:
        return ""
    if direction(metric, target_value) is None:  # wip = 8 from before targets had directions
        shown = f"{metric.id} ≤ {float(target_value):g}"
        return f"target {bound(metric, target_value)} not judged: say which way in the settings, e.g. {shown}"
    mark = {"met": "on target", "missed": "off target"}.get(status or "", "no figure yet")
    return f"{mark} ({bound(metric, target_value)})"


def as_written(metric_id: str, metric: Metric | None, target: float) -> str:
    """One line of the settings form's targets, as the team wrote it: ``cycle-time = 10d``,
    ``wip ≤ 8``. A plain number (older settings) is written in the metric's units: ``10d``, ``80%``."""
    op = getattr(target, "op", BETTER) or BETTER
    text = getattr(target, "text", "") or entered(metric, target)
    return f"{metric_id} {op} {text}"
