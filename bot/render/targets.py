"""A target as the team reads it: its status and the bound (``on target (≤ 10.0 d)``)."""

from __future__ import annotations

from bot.render.format import duration, number
from metrics.catalogue.base import Metric


def target_line(metric: Metric, target_value: float | None, status: str | None) -> str:
    if target_value is None:
        return ""
    op = "≤" if metric.better == "lower" else "≥"
    shown = duration(target_value) if metric.unit == "duration" else number(metric, target_value)
    mark = {"met": "on target", "missed": "off target"}.get(status or "", "no figure yet")
    return f"{mark} ({op} {shown})"
