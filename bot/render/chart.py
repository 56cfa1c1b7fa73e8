"""A metric's weekly series as a PNG (matplotlib), with the team's target and the process limits,
uploaded to the channel with ``files_upload_v2`` (``files.upload`` is retired).

The limits are the ones the figure's signal was judged against (``Result.limits``: the XmR limits of
its baseline, docs/metrics.md "Any chart of the series draws these same limits"), never limits of the weeks
shown: a chart that drew other lines than the verdict used could show a point outside its limits next
to "within normal variation". A target judged on p85 (durations, PR size) is drawn against the weekly
p85, its own labelled line, beside the weekly median the limits are about.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from metrics.catalogue.base import DURATION, Metric, Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Line:
    label: str
    values: list[float | None]  # one per week of ``Drawing.weeks``


@dataclass(frozen=True)
class Drawing:
    """What the chart draws, decided apart from matplotlib so that it can be checked."""

    title: str
    unit: str
    weeks: list[str]
    complete: list[bool]  # the unfinished current week is drawn hollow
    series: Line  # the weekly points the signal rules test (median for durations)
    p85: Line | None  # the weekly p85, for a metric whose target is judged on it
    limits: dict | None  # the Result's: centre, upper, lower
    target: float | None
    target_label: str
    note: str | None  # why there are no limits, e.g. "not enough history for a signal (7 weeks)"


def drawing(metric: Metric, result: Result, target: float | None) -> Drawing:
    """The weekly points, the limits the verdict used, and the target against the statistic it is
    judged on (p85 for durations: a target met by the median can still be missed)."""
    shown = [p for p in result.series if isinstance(p.get("value"), int | float)]
    on_p85 = metric.judged_on_p85 and any("p85" in p for p in shown)
    median = "weekly median" if on_p85 else "weekly"
    return Drawing(
        title=f"{metric.name}: {result.team}, weekly",
        unit="hours" if metric.kind == DURATION else metric.unit,
        weeks=[p["week"] for p in shown],
        complete=[not p.get("partial") for p in shown],
        series=Line(median, [float(p["value"]) for p in shown]),
        p85=Line("weekly p85", [p.get("p85") for p in shown]) if on_p85 else None,
        limits=result.limits,
        target=target,
        target_label="target (on p85)" if on_p85 else "target",
        note=result.signal_note,
    )


def figure(d: Drawing) -> Figure:
    """The drawing on a matplotlib Figure: weekly points (the unfinished week hollow), the weekly p85
    where the target is judged on it, the limits the verdict used, the target, and the note."""
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
    if d.limits is not None:
        ax.axhline(d.limits["centre"], color="#888888", linewidth=1, label="average (baseline)")
        ax.axhline(d.limits["upper"], color="#bbbbbb", linestyle="--", linewidth=1, label="process limits")
        if d.limits["lower"] != 0:  # a limit floored at 0 says nothing: no count goes below it
            ax.axhline(d.limits["lower"], color="#bbbbbb", linestyle="--", linewidth=1)
    if d.target is not None:
        ax.axhline(d.target, color="#e01e5a", linewidth=1.4, label=d.target_label)
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
