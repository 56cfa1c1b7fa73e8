"""A team's targets: which number a target is judged on, and whether the figure meets it."""

from __future__ import annotations

from metrics.catalogue.base import Metric


def headline(metric: Metric, value) -> float | None:
    """The one number a target is compared with: p85 for durations (most items finish within it)."""
    if isinstance(value, dict):
        return value.get("p85")
    return value if isinstance(value, int | float) else None


def target_status(metric: Metric, value, target: float | None) -> str | None:
    v = headline(metric, value)
    if target is None or v is None or metric.better not in ("lower", "higher"):
        return None
    ok = v <= target if metric.better == "lower" else v >= target
    return "met" if ok else "missed"
