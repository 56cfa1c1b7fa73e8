"""A metric's weekly series as a PNG (matplotlib), with the team's target and the process limits,
uploaded to the channel with ``files_upload_v2`` (``files.upload`` is retired).

The chart agrees with the text beside it:
- The limits are the ones the figure's signal was judged against (``Result.limits``: the XmR limits of
  its baseline, docs/metrics.md "Any chart of the series draws these same limits"), never limits of the
  weeks shown: a chart that drew other lines than the verdict used could show a point outside its
  limits next to "within normal variation". A rate's limits are already clipped to 0–100% there, and
  its axis stays within 0–100% too.
- A duration is drawn in the unit its figure is shown in (``format.duration``: days from 24 h on), so
  "p50 9.0 d" is not read off an axis of 216 hours; limits and target are converted with it.
- Each line names its statistic (weekly p50, weekly p85), and a target judged on p85 (durations, PR
  size; ``metrics.targets.headline``) is drawn against the weekly p85, its own labelled line.
- The unfinished current week is drawn hollow, with a legend entry saying so: it always looks low, and
  the signal rules do not test it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.render.format import duration
from metrics.catalogue.base import COUNT, DURATION, RATE, Metric, Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PARTIAL = "week of {day} so far (unfinished, not tested)"


@dataclass(frozen=True)
class Line:
    label: str
    values: list[float | None]  # one per week of ``Drawing.weeks``


@dataclass(frozen=True)
class Drawing:
    """What the chart draws, decided apart from matplotlib so that it can be checked. Every number is
    in the drawn ``unit`` (a duration's hours divided by ``scale``)."""

    title: str
    unit: str  # the y axis: "days", "hours", "deploys/week", "%", ...
    weeks: list[str]
    complete: list[bool]  # the unfinished current week is drawn hollow
    series: Line  # the weekly points the signal rules test (the p50 for durations)
    p85: Line | None  # the weekly p85, for a metric whose target is judged on it
    limits: dict | None  # the Result's: centre, upper, lower
    target: float | None
    target_label: str
    note: str | None  # why there are no limits, e.g. "not enough history for a signal (7 weeks)"
    partial_label: str | None = None  # the legend entry of the unfinished week, when one is drawn
    scale: float = 1.0  # hours per drawn unit (24 when a duration is drawn in days)
    y_range: tuple[float | None, float | None] = (None, None)  # where the axis must stay (rates: 0–100)


def duration_scale(metric: Metric, result: Result) -> tuple[str, float]:
    """Days or hours for a duration, as the reply shows its figure (``format.duration`` on the p50, the
    first number of "p50 9.0 d · p85 14.0 d"); a period with no figure goes by its weekly points."""
    value = result.value if isinstance(result.value, dict) else {}
    ref = value.get("p50")
    if ref is None:
        points = [p["value"] for p in result.series if isinstance(p.get("value"), int | float)]
        ref = max(points) if points else None
    if ref is not None and duration(ref).endswith(" d"):
        return "days", 24.0
    return "hours", 1.0


def statistic(metric: Metric, on_p85: bool) -> str:
    """The legend's name for the weekly series: the statistic it plots."""
    if on_p85 or metric.kind == DURATION:
        return "weekly p50"
    if metric.kind == COUNT or metric.unit.endswith("/week"):
        return metric.unit.replace("/week", " per week")
    if metric.kind == RATE or "%" in metric.unit:
        return "weekly %"
    return "weekly"


def _scaled(x: float | None, scale: float) -> float | None:
    if x is None or scale == 1.0:
        return x
    return round(x / scale, 4)


def drawing(metric: Metric, result: Result, target: float | None) -> Drawing:
    """The weekly points, the limits the verdict used, and the target against the statistic it is
    judged on (p85 for durations: a target met by the median can still be missed), all in the unit the
    reply shows the figure in."""
    shown = [p for p in result.series if isinstance(p.get("value"), int | float)]
    on_p85 = metric.judged_on_p85 and any("p85" in p for p in shown)
    unit, scale = duration_scale(metric, result) if metric.kind == DURATION else (metric.unit, 1.0)
    limits = result.limits
    if limits is not None and scale != 1.0:
        limits = limits | {k: _scaled(limits[k], scale) for k in ("centre", "upper", "lower")}
    partial = [p["week"] for p in shown if p.get("partial")]
    floor, ceiling = metric.bounds()
    return Drawing(
        title=f"{metric.name}: {result.team}, weekly, {result.window.label()}",
        unit=unit,
        weeks=[p["week"] for p in shown],
        complete=[not p.get("partial") for p in shown],
        series=Line(statistic(metric, on_p85), [_scaled(float(p["value"]), scale) for p in shown]),
        p85=Line("weekly p85", [_scaled(p.get("p85"), scale) for p in shown]) if on_p85 else None,
        limits=limits,
        target=_scaled(target, scale),
        target_label="target (judged on p85)" if metric.judged_on_p85 else "target",
        note=result.signal_note,
        partial_label=PARTIAL.format(day=_day(partial[-1])) if partial else None,
        scale=scale,
        y_range=(0.0 if floor else None, ceiling),
    )


def _day(week: str) -> str:
    d = date.fromisoformat(week)
    return f"{d.day} {d:%b}"


def figure(d: Drawing) -> Figure:
    """The drawing on a matplotlib Figure: weekly points (the unfinished week hollow, with its legend
    entry), the weekly p85 where the target is judged on it, the limits the verdict used, the target,
    and the note."""
    # Imported here: matplotlib takes a few hundred ms to load and most runs never draw. A bare
    # Figure (no pyplot) has no global state, so listeners in Bolt's thread pool can draw at once.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6), dpi=100)
    ax = fig.subplots()
    ax.plot(d.weeks, d.series.values, color="#1264a3", linewidth=1.8, zorder=2, label=d.series.label)
    for w, v, complete in zip(d.weeks, d.series.values, d.complete, strict=True):
        ax.plot([w], [v], "o", color="#1264a3", markerfacecolor="#1264a3" if complete else "white", zorder=3)
    if d.p85 is not None:
        ax.plot(d.weeks, d.p85.values, color="#e8912d", linewidth=1.4, marker=".", label=d.p85.label)
    if d.partial_label is not None:  # the legend's key for the hollow point: a marker, no line
        ax.plot([], [], "o", color="#1264a3", markerfacecolor="white", label=d.partial_label)
    if d.limits is not None:
        ax.axhline(d.limits["centre"], color="#888888", linewidth=1, label="average (baseline)")
        ax.axhline(d.limits["upper"], color="#bbbbbb", linestyle="--", linewidth=1, label="process limits")
        if d.limits["lower"] != 0:  # a limit floored at 0 says nothing: no count goes below it
            ax.axhline(d.limits["lower"], color="#bbbbbb", linestyle="--", linewidth=1)
    if d.target is not None:
        ax.axhline(d.target, color="#e01e5a", linewidth=1.4, label=d.target_label)
    low, high = ax.get_ylim()
    floor, ceiling = d.y_range
    ax.set_ylim(
        low if floor is None else max(floor, low),
        high if ceiling is None else min(ceiling, high),
    )
    ax.set_title(d.title, fontsize=11, loc="left")
    if d.note:
        ax.set_title(d.note, fontsize=8, loc="right", color="#555555")
    ax.set_ylabel(d.unit)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def png(metric: Metric, result: Result, target: float | None) -> bytes:
    """The chart as PNG bytes."""
    out = io.BytesIO()
    figure(drawing(metric, result, target)).savefig(out, format="png")
    return out.getvalue()


def upload(
    client: WebClient, channel: str, metric: Metric, result: Result, target: float | None
) -> str | None:
    """Upload the chart to ``channel`` (an id; the bot must be a member). Returns None when posted,
    else a short reason the user can act on (Slack's error code, never a token)."""
    try:
        client.files_upload_v2(
            channel=channel,
            content=png(metric, result, target),
            filename=f"{metric.id}-{result.team}.png".replace(" ", "-"),
            title=f"{metric.name} ({result.team})",
            initial_comment=f"{metric.name}, weekly, {result.window.label()}",
        )
    except SlackApiError as exc:
        code = exc.response.get("error") or "error"
        hint = " (invite the bot to the channel)" if code in ("not_in_channel", "channel_not_found") else ""
        return f"the chart could not be posted: {code}{hint}"
    return None
