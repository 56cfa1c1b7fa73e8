"""A metric's weekly series as a PNG (matplotlib), with the team's target and the process limits,
uploaded to the channel with ``files_upload_v2`` (``files.upload`` is retired).

The limits are the XmR natural process limits of the complete weeks shown (the same rule the digest
uses to call a signal): a point outside them is worth a look, a point inside is noise.
"""

from __future__ import annotations

import io

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from metrics import stats
from metrics.catalogue.base import DURATION, Metric, Result


def points(result: Result) -> list[tuple[str, float, bool]]:
    """(week, value, complete) of the numeric weekly points."""
    return [
        (p["week"], float(p["value"]), not p.get("partial"))
        for p in result.series
        if isinstance(p.get("value"), int | float)
    ]


def png(metric: Metric, result: Result, target: float | None) -> bytes:
    """The chart as PNG bytes: weekly points (the unfinished week hollow), target, limits."""
    # Imported here: matplotlib takes a few hundred ms to load and most runs never draw. A bare
    # Figure (no pyplot) has no global state, so listeners in Bolt's thread pool can draw at once.
    from matplotlib.figure import Figure

    pts = points(result)
    fig = Figure(figsize=(8, 3.6), dpi=100)
    ax = fig.subplots()
    weeks = [w for w, _v, _c in pts]
    values = [v for _w, v, _c in pts]
    ax.plot(weeks, values, color="#1264a3", linewidth=1.8, zorder=2)
    for w, v, complete in pts:
        ax.plot([w], [v], "o", color="#1264a3", markerfacecolor="#1264a3" if complete else "white", zorder=3)
    limits = stats.xmr_limits([v for _w, v, c in pts if c])
    if limits is not None:
        ax.axhline(limits.centre, color="#888888", linewidth=1, label="average")
        ax.axhline(limits.upper, color="#bbbbbb", linestyle="--", linewidth=1, label="process limits")
        if limits.lower > 0:
            ax.axhline(limits.lower, color="#bbbbbb", linestyle="--", linewidth=1)
    if target is not None:
        ax.axhline(target, color="#e01e5a", linewidth=1.4, label="target")
    unit = "hours" if metric.kind == DURATION else metric.unit
    ax.set_title(f"{metric.name}: {result.team}, weekly", fontsize=11)
    ax.set_ylabel(unit)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
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
