"""How figures read: one decimal, half-up at display only; hours below a day, else days."""

from __future__ import annotations

from metrics.catalogue.base import Metric, one_decimal
from metrics.targets import headline

SPARKS = "▁▂▃▄▅▆▇█"


def duration(hours: float | None) -> str:
    """``7.5 h`` below 24 hours, else ``3.2 d``."""
    if hours is None:
        return "–"
    if hours < 24:
        return f"{one_decimal(hours)} h"
    return f"{one_decimal(hours / 24)} d"


def number(metric: Metric, x: float | None) -> str:
    if x is None:
        return "–"
    unit = metric.unit
    if unit in ("duration", "items, duration") and metric.id != "aging-wip":
        return duration(x)
    if "%" in unit:
        return f"{one_decimal(x)}%"
    if unit.endswith("/week"):
        return f"{one_decimal(x)}/wk"
    if unit == "lines":
        return f"{one_decimal(x)} lines"
    return one_decimal(x)


def value(metric: Metric, v) -> str:
    """The figure as a reader sees it."""
    if v is None:
        return "no data"
    if isinstance(v, dict):
        if "p50" in v and "p85" in v:
            fmt = (lambda x: f"{one_decimal(x)}") if metric.unit in ("lines", "items / date") else duration
            if metric.unit == "lines":
                return f"p50 {fmt(v['p50'])} · p85 {fmt(v['p85'])} lines"
            if metric.unit == "items / date":
                parts = [f"{k} {fmt(x)}" for k, x in v.items() if x is not None]
                return " · ".join(parts) + " items"
            return f"p50 {fmt(v['p50'])} · p85 {fmt(v['p85'])}"
        return " · ".join(f"{k} {one_decimal(x)}%" for k, x in v.items() if x)
    return number(metric, v)


def change(metric: Metric, current, previous) -> str:
    """``↓ 12% vs previous`` with ✓/✗ by the metric's better direction, or ``–``."""
    a, b = headline(metric, current), headline(metric, previous)
    if a is None or b is None:
        return "no previous figure"
    if b == 0:
        return "was 0" if a else "no change"
    pct = (a - b) / abs(b) * 100
    if abs(pct) < 0.05:
        return "no change"
    arrow = "↑" if pct > 0 else "↓"
    return f"{arrow} {one_decimal(abs(pct))}% vs previous"


def sparkline(series: list[dict]) -> str:
    """Weekly points as bars; the unfinished current week is left out (it always looks low)."""
    vals = [p.get("value") for p in series if not p.get("partial")]
    nums = [v for v in vals if isinstance(v, int | float)]
    if not nums:
        return ""
    lo, hi = min(nums), max(nums)
    out = []
    for v in vals:
        if not isinstance(v, int | float):
            out.append(" ")
        elif hi == lo:
            out.append(SPARKS[3])
        else:
            out.append(SPARKS[round((v - lo) / (hi - lo) * (len(SPARKS) - 1))])
    return "".join(out)


def verdict(signal: str | None, note: str | None) -> str:
    """What the signal rules said, in one line: the signal, else why none could be given (too short a
    history), else "within normal variation". A missing signal is not a calm one when it was never
    tested, so the note is never dropped."""
    return signal or note or "within normal variation"
