"""How figures read: one decimal, half-up at display only; hours below a day, else days.

A change says how far a figure moved *and* whether that is good news: an arrow alone reads the same
on pickup time (up is worse) as on deployment frequency (up is better), so every change carries
"better" or "worse" by the metric's direction, and none for context metrics (WIP) that have none.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from metrics.catalogue.base import NO_DATA, Metric, duration_text, one_decimal
from metrics.catalogue.base import counted as counted_text
from metrics.targets import headline
from metrics.timeutil import parse_instant

SPARKS = "▁▂▃▄▅▆▇█"


def duration(hours: float | None) -> str:
    """``7.5 h`` below 24 hours, else ``3.2 d``: the catalogue's one display rule
    (``duration_text``, in seconds), so a figure and the notes about it can never disagree."""
    if hours is None:
        return "–"
    return duration_text(hours * 3600)


def whole(x: float) -> str:
    """Half-up to a whole number: lines of code and forecast items are never fractional."""
    return str(_half_up(x, "1"))


def _half_up(x: float, step: str) -> Decimal:
    return Decimal(repr(float(x))).quantize(Decimal(step), rounding=ROUND_HALF_UP)


def as_shown(metric: Metric, x: float) -> float:
    """``x`` at the precision the figure is shown in, in the metric's own unit: a duration shown in
    days to a tenth of a day (14.02 d and 13.98 d both read 14.0 d), in hours to a tenth of an hour;
    lines and open items whole; anything else to one decimal. A change is judged on these, so
    "p85 ↓ 0.5 h" never sits beside two figures that both read 14.0 d."""
    if is_duration(metric):
        if abs(x) >= 24:
            return float(_half_up(x / 24, "0.1")) * 24
        return float(_half_up(x, "0.1"))
    if metric.unit in ("lines", "items, duration"):
        return float(_half_up(x, "1"))
    return float(_half_up(x, "0.1"))


def is_rate(metric: Metric) -> bool:
    """A percentage (a rate, a share): its changes are in percentage points, never a percent of it."""
    return "%" in metric.unit


def is_duration(metric: Metric) -> bool:
    return metric.unit == "duration"


def number(metric: Metric, x: float | None) -> str:
    """One number in the metric's unit, as a target or a change shows it."""
    if x is None:
        return "–"
    unit = metric.unit
    if is_duration(metric):
        return duration(x)
    if is_rate(metric):
        return f"{one_decimal(x)}%"
    if unit.endswith("/week"):
        return f"{one_decimal(x)}/wk"
    if unit == "lines":
        return f"{whole(x)} lines"
    if unit == "items, duration":  # aging WIP: a count of open items
        return f"{whole(x)} items"
    if unit == "items":  # WIP: an average of daily counts
        return f"{one_decimal(x)} items"
    return one_decimal(x)


def value(metric: Metric, v) -> str:
    """The figure as a reader sees it."""
    if v is None:
        return "no data"
    if isinstance(v, dict):
        if "p50" in v and "p85" in v:
            if metric.unit == "lines":
                return f"p50 {whole(v['p50'])} · p85 {whole(v['p85'])} lines"
            if metric.unit == "items / date":
                parts = [f"{k} {whole(x)}" for k, x in v.items() if x is not None]
                return " · ".join(parts) + " items"
            return f"p50 {duration(v['p50'])} · p85 {duration(v['p85'])}"
        return " · ".join(f"{k} {one_decimal(x)}%" for k, x in v.items() if x)
    return number(metric, v)


def counted(metric: Metric, n: int) -> str:
    """What n counts, in words: "30 days sampled" for WIP (a daily sample), "12 deployments" for
    deployment frequency, "42 items" for cycle time: the metric's own ``things``."""
    return counted_text(n, metric.things)


def spread(metric: Metric, v, horizon: str = "") -> str:
    """What p50 and p85 mean, with this figure's numbers: "half of them within 8.7 d, 85% within
    14.0 d"; for a forecast, how likely each count is over its ``horizon`` ("in the next 14 days").
    Empty for figures that are not a p50/p85 spread."""
    if not isinstance(v, dict) or "p50" not in v or "p85" not in v:
        return ""
    if metric.unit == "items / date":  # a forecast's percentiles are likelihoods, not spreads
        parts = [f"{k[1:]}% likely at least {whole(x)}" for k, x in v.items() if x is not None]
        return f"items done {horizon or 'ahead'}: " + ", ".join(parts)
    show = (lambda x: f"{whole(x)} lines") if metric.unit == "lines" else duration
    return f"half of them within {show(v['p50'])}, 85% within {show(v['p85'])}"


def better_or_worse(metric: Metric, now: float, before: float) -> str | None:
    """ "better", "worse", or None (no change, or a metric without a better direction)."""
    if now == before:
        return None
    if metric.better == "lower":
        return "better" if now < before else "worse"
    if metric.better == "higher":
        return "better" if now > before else "worse"
    if metric.better == "≈ 0" and abs(now) != abs(before):  # net flow: balance is the aim
        return "better" if abs(now) < abs(before) else "worse"
    return None


def _amount(metric: Metric, diff: float, a: float, b: float) -> str:
    """How far a figure moved, in words that cannot mislead: percentage points for rates; the
    difference in the metric's unit for durations and sizes, and wherever a percent would mislead
    (from zero, to zero, across zero, for a figure that may go negative, or a move too small to
    show as a percent); otherwise a percent of the previous figure."""
    d = abs(diff)
    if is_rate(metric):
        return f"{one_decimal(d)} pts"
    if is_duration(metric):
        return duration(d)
    if metric.unit == "lines":
        return f"{whole(d)} lines"
    if a == 0 or b == 0 or (a < 0) != (b < 0) or not metric.bounds()[0]:
        return number(metric, d)  # a figure that can go negative (net flow) is a balance, not a size
    percent = one_decimal(d / abs(b) * 100)
    if not any(ch in "123456789" for ch in percent):  # 1000.1/wk from 1000.0/wk: "0.1/wk", not "0.0%"
        return number(metric, d)
    return f"{percent}%"


def change(metric: Metric, current, previous) -> str:
    """``↑ 2.1 d, worse``: the move of the figure's headline number (p85 for spreads, which is what
    targets judge), marked better or worse by the metric's direction. Both figures are taken at the
    precision they are shown in (``as_shown``): "no change" when they read the same; "" when either
    figure is missing: there is nothing to compare, and the caller says why (``comparison``)."""
    a, b = headline(metric, current), headline(metric, previous)
    if a is None or b is None:
        return ""
    a, b = as_shown(metric, a), as_shown(metric, b)  # judged as the reader sees the two figures
    amount = _amount(metric, a - b, a, b)
    if a == b or not any(ch in "123456789" for ch in amount):
        return "no change"
    label = "p85 " if isinstance(current, dict) else ""
    mark = better_or_worse(metric, a, b)
    return f"{label}{'↑' if a > b else '↓'} {amount}" + (f", {mark}" if mark else "")


def previous_note(result) -> str | None:
    """Why the previous period has no figure, when the metric knows ("no earlier data": it lies
    before the team's history began)."""
    return getattr(result, "previous_note", None)


def comparison(metric: Metric, result) -> str:
    """The figure against the previous period in one line, never "no previous figure" beside one:
    "Change: p85 ↑ 2.1 d, worse (previous period: p50 6.0 d · p85 12.0 d)", else just what the previous
    period was, or why it has no figure."""
    note = previous_note(result)
    if result.previous is None:
        return f"Previous period: {note or 'no data'}"
    moved = change(metric, result.value, result.previous)
    prev = value(metric, result.previous)
    if not moved:
        return f"Previous period: {prev}"
    return f"{'No change' if moved == 'no change' else 'Change: ' + moved} (previous period: {prev})"


def versus(metric: Metric, result) -> str:
    """``comparison`` for a line with little room (the digest): the change alone, else what the
    previous period was or why it has none."""
    moved = change(metric, result.value, result.previous)
    if moved:
        return moved
    if result.previous is None:
        return f"previous period: {previous_note(result) or 'no data'}"
    return f"previous period: {value(metric, result.previous)}"


def no_data(result) -> str:
    """A figure without data never reads as calm: "no data in this period: <the likely reason>"."""
    reason = getattr(result, "no_data_reason", None)
    if not reason:
        return NO_DATA
    if "in this period" in reason:  # "no data: no deployments in this period", said once
        return f"no data: {reason}"
    return f"{NO_DATA}: {reason}"


def has_data(result) -> bool:
    return result.value is not None and result.sample_size != 0


def shown(metric: Metric, result) -> tuple[str, str]:
    """The figure and its weekly sparkline as every surface shows them (reply, digest, App Home,
    terminal): without data, why there is none and no sparkline (a flat line of zero-filled weeks
    beside "no data" would read as a steady figure); a sampled level (WIP) with its current value
    first, which is what its definition promises and what a team acts on."""
    if not has_data(result):
        return no_data(result), ""
    figure = _with_current(metric, result, value(metric, result.value))
    extra = result.extra if isinstance(result.extra, dict) else {}
    if extra.get("p85_hours") is not None and isinstance(extra.get("flagged"), int):
        figure += (
            f" open, {extra['flagged']} older than usual"  # aging WIP: the count to act on, in the figure
        )
    return figure, sparkline(result.series)


def _with_current(metric: Metric, result, average: str) -> str:
    """ "23 in progress now · average 16.6 items": WIP's window average beside the count it is at
    (``extra["current"]``)."""
    current = current_count(metric, result)
    if current is None:
        return average
    return f"{current} in progress {current_when(result)} · average {average}"


def current_count(metric: Metric, result) -> int | None:
    """The count a sampled level (WIP, flow load) is at, at the end of its window or now: None for
    any other figure."""
    extra = result.extra if isinstance(result.extra, dict) else {}
    current = extra.get("current")
    if metric.unit != "items" or not isinstance(current, int) or isinstance(current, bool):
        return None
    return current


def current_when(result) -> str:
    """When a level's current count was taken: "now" when the window runs to now (its last day is
    sampled at the moment it was computed), else "at the end of 24 Nov", its last day (a digest's
    period ends at the last local midnight)."""
    last = result.items[-1].get("at") if result.items else None
    taken = parse_instant(last) if isinstance(last, str) else None
    if taken is not None and taken < result.window.end:
        return "now"
    day = result.window.until - timedelta(days=1)
    return f"at the end of {day.day} {day:%b}"


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


def verdict(signal: str | None, note: str | None, sample_size: int | None = None) -> str:
    """What the signal rules said, in one line: the signal, else why none could be given (no data,
    too short a history), else "within normal variation". A missing signal is not a calm one when it
    was never tested, so the note is never dropped, and a figure with no data is never "normal"."""
    if signal:
        return signal
    if sample_size == 0:  # the most basic reason first: with no data, history does not matter
        return f"no signal: {NO_DATA}"
    return note or "within normal variation"
