"""Improvement experiments as a team sees them in Slack: the form that starts one, the message that
announces it, its line in the digest while it runs, and its verdict.

Every text the team typed (what it will try) and every name (team, metric) reaches the templates
as a plain value, which the Slack templates escape for mrkdwn (``bot.render.templates``): a change
called ``<!channel> pair more`` is shown, never sent as a ping. Figures are drawn by the same
formats as every other figure (``bot.render.format``), so "p50 15.5 h" in a verdict reads as it
does in the digest. A verdict shows the North Star over the same two windows beside it, under
``experiments.NORTH_STAR_NOTE``: context, never claimed as the experiment's effect.
"""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from bot.render import format as fmt
from bot.render.templates import Trusted, escape_mrkdwn, render_json
from metrics import experiments as ex
from metrics import stats
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Metric
from metrics.experiments import Experiment, Progress
from metrics.targets import words
from metrics.teams import USER_ID, Team
from metrics.timeutil import parse_instant, zone

DEFAULT_WEEKS = 6

MEANING = {
    ex.IMPROVED: "{metric} moved the better way, and the test says the change is real.",
    ex.WORSE: "{metric} moved the worse way, and the test says the change is real.",
    ex.NO_CHANGE: "the difference in {metric} is within what chance alone would give.",
    ex.NOT_ENOUGH: "too few observations of {metric} on one side to tell a real change from chance "
    f"(at least {stats.MIN_SIDE} a side).",
}
# Said instead of MEANING when the verdict waited for data that never came (``experiments.SYNC_WAIT``).
UNJUDGED = (
    "the data {metric} is counted from did not reach the end of the experiment, and a verdict on part "
    "of it would be a guess."
)
# Said instead of MEANING when it was stopped within ``experiments.MIN_RUN`` of its start.
TOO_SOON = "it was stopped within a day of its start, too soon to compare {metric} before and during it."
# A running experiment's figures so far are not a result: said beside them in the digest.
UNTESTED = "nothing is tested until it ends"
MARK = {ex.IMPROVED: "✅", ex.WORSE: "⚠️", ex.NO_CHANGE: "➖", ex.NOT_ENOUGH: "❔"}


def mention(user: str) -> Trusted | str:
    """``<@U…>`` for a Slack user id, which Slack shows as the name; anything else is plain text."""
    return Trusted(f"<@{user}>") if USER_ID.fullmatch(user or "") else escape_mrkdwn(user or "someone")


def _local(at: float | str | None, tz: ZoneInfo) -> datetime | None:
    ts = parse_instant(at) if isinstance(at, str) else at
    return None if ts is None else datetime.fromtimestamp(ts, tz)


def when(at: float | str | None, tz: ZoneInfo) -> str:
    """``Mon 2 Mar 2026 09:00 GMT``: an experiment starts at any minute, so its bounds carry the time."""
    t = _local(at, tz)
    return "–" if t is None else f"{t:%a} {t.day} {t:%b %Y %H:%M %Z}"


def span(since: float | str | None, until: float | str | None, tz: ZoneInfo) -> str:
    return f"{when(since, tz)} to {when(until, tz)}"


def metric_of(exp: Experiment) -> Metric | None:
    return CATALOGUE.get(exp.metric)


def figure(metric: Metric | None, side: dict | None) -> str:
    """One window's figure with what it counts, as every figure is shown (``fmt.shown``,
    ``fmt.counted``): ``p50 15.5 h · p85 19.4 h (12 PRs)``; without data, ``fmt.no_data``'s words
    with the reason when one is known."""
    side = side or {}
    result = SimpleNamespace(
        value=side.get("value"),
        sample_size=side.get("sample_size") or 0,
        no_data_reason=side.get("no_data_reason"),
        extra={},
        series=[],
    )
    if metric is None or not fmt.has_data(result):
        return fmt.no_data(result)
    text, _ = fmt.shown(metric, result)
    return f"{text} ({fmt.counted(metric, result.sample_size)})"


# -- the form -------------------------------------------------------------------------------------------
def choices(team: Team) -> tuple[list[Metric], list[str]]:
    """The team's metrics an experiment can be judged on, and for each of the others why not."""
    judged, not_judged = [], []
    for mid in team.metrics:
        metric = CATALOGUE.get(mid)
        if metric is None:
            continue
        if ex.judged_by(metric) is None:
            not_judged.append(ex.why_not(metric))
        else:
            judged.append(metric)
    return judged, not_judged


def weekly(metrics: list[Metric]) -> list[Metric]:
    """The metrics compared week by week, which need at least ``stats.MIN_SIDE`` weeks."""
    return [m for m in metrics if ex.judged_by(m) == ex.WEEKLY_COUNTS]


def nothing_to_judge(team: Team) -> str:
    """Why the team cannot start an experiment: none of its metrics can be judged."""
    _, why = choices(team)
    if not why:
        return (
            f"{escape_mrkdwn(team.name)} has no metrics chosen yet. Choose the metric you want to "
            "move in `/vsm settings`, then run `/vsm experiment` again."
        )
    reasons = "; ".join(escape_mrkdwn(w) for w in why)
    return (
        f"None of {escape_mrkdwn(team.name)}'s metrics can be judged by an experiment ({reasons}). "
        "Add one with a better direction, such as cycle time or deployment frequency, in "
        "`/vsm settings`, then run `/vsm experiment` again."
    )


def modal(team: Team, opener: str) -> dict:
    """The experiment form: what the team will try, the metric it should move (only those a verdict
    can judge; the others named in the hint, with why) and for how long. The team, its channel and
    the opener go in ``private_metadata``: only the opener may submit it, and only while a member."""
    judged, not_judged = choices(team)
    slow = weekly(judged)
    metric_hint = (
        "The verdict compares this metric during the experiment with the same length of time before it."
    )
    if not_judged:
        metric_hint += " Not offered: " + "; ".join(not_judged) + "."
    weeks_hint = f"{ex.MIN_WEEKS} to {ex.MAX_WEEKS} weeks."
    if slow:
        names = " and ".join(m.name for m in slow)
        weeks_hint += (
            f" {names} {'is' if len(slow) == 1 else 'are'} compared week by week and "
            f"{'needs' if len(slow) == 1 else 'need'} at least {stats.MIN_SIDE} weeks for a verdict."
        )
    weeks = list(range(ex.MIN_WEEKS, ex.MAX_WEEKS + 1))
    return render_json(
        "experiment_modal.json.j2",
        team=team.name,
        metrics=judged,
        metric_hint=metric_hint,
        weeks=weeks,
        initial_weeks=DEFAULT_WEEKS,
        weeks_hint=weeks_hint,
        max_change=ex.MAX_CHANGE,
        meta=json.dumps({"team": team.name, "channel": team.channel, "by": opener}),
    )


# -- the announcement -----------------------------------------------------------------------------------
def stop_button(exp: Experiment) -> dict:
    """What the template's Stop early button needs: the experiment's id and words for its confirm."""
    return {"id": str(exp.id), "metric": exp.metric_name, "change": exp.change}


def started_message(exp: Experiment, team: Team, who: str) -> dict:
    """Posted to the team's channel when an experiment starts: what the team is trying, on which
    metric, until when, the window it will be compared with, and a Stop early button."""
    tz = zone(exp.timezone)
    before, _ = ex.windows(exp, exp.ends)
    return render_json(
        "experiment_started.json.j2",
        channel=team.channel,
        by=mention(who),
        team=team.name,
        change=exp.change,
        metric=exp.metric_name,
        metric_words=words(exp.metric_name),
        weeks=exp.weeks,
        until=when(exp.ends, tz),
        before=span(before.start, before.end, tz),
        stop=stop_button(exp),
    )


# -- the verdict ----------------------------------------------------------------------------------------
def _north_star(exp: Experiment) -> list[dict]:
    rows = []
    for row in exp.north_star:
        metric = CATALOGUE.get(row.get("metric"))
        if metric is None:
            continue
        rows.append(
            {
                "name": metric.name,
                "before": figure(metric, row.get("before")),
                "during": figure(metric, row.get("during")),
            }
        )
    return rows


def possessive(name: str) -> str:
    """``pay's``, ``payments'``: a name ending in s takes an apostrophe only."""
    return f"{name}'" if name.endswith(("s", "S")) else f"{name}'s"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def verdict_words(exp: Experiment, team: str) -> dict:
    """A concluded experiment's verdict in words, as plain text: one wording for the Slack message
    (``verdict_message``, which escapes it) and ``vsm experiments`` (which prints it). The North
    Star figures are the team's own over the same windows (``experiments._north_star``), labelled
    as the team's, under ``NORTH_STAR_NOTE``."""
    tz = zone(exp.timezone)
    metric = metric_of(exp)
    verdict = exp.verdict or ex.NOT_ENOUGH
    before, during = exp.result.get("before") or {}, exp.result.get("during") or {}
    said = MEANING.get(verdict, "{metric}")
    if exp.result.get("unjudged"):
        said = UNJUDGED
    elif exp.result.get("too_soon"):
        said = TOO_SOON
    cut = exp.result.get("judged_to_sync") or {}
    how = f"stopped early at {when(exp.concluded_at, tz)}" if exp.stopped_early else "ran its course"
    return {
        "verdict": verdict,
        "mark": MARK.get(verdict, ""),
        "meaning": said.format(metric=words(exp.metric_name)),
        "early": exp.stopped_early,
        "how": how,
        "judged_to": (
            f"Judged on the data up to {when(cut.get('until'), tz)}, the last complete sync "
            f"({cut.get('reason')})"
            if cut
            else ""
        ),
        "windows": bool(before and during),
        "before_span": span(before.get("since"), before.get("until"), tz),
        "during_span": span(during.get("since"), during.get("until"), tz),
        "before": figure(metric, before),
        "during": figure(metric, during),
        "detail": exp.detail or "",
        "north_star": _north_star(exp),
        "north_star_label": f"{possessive(team)} North Star figures over the same windows",
        "north_star_note": _capital(ex.NORTH_STAR_NOTE),
    }


def verdict_message(exp: Experiment, team: Team) -> dict:
    """The verdict posted to the team's channel: the verdict in words, the two windows with their
    figures and n, the test's statistic in a context line, "stopped early" (and where the window
    judged was cut at the last complete sync) when so, and the team's North Star figures over the
    same windows beside it as context."""
    tz = zone(exp.timezone)
    return render_json(
        "experiment_verdict.json.j2",
        channel=team.channel,
        team=team.name,
        change=exp.change,
        metric=exp.metric_name,
        weeks=exp.weeks,
        started=when(exp.started, tz),
        v=verdict_words(exp, team.name),
    )


# -- the digest's lines ---------------------------------------------------------------------------------
def running_row(p: Progress) -> dict:
    """A running experiment in the digest: "Trying: <what> on <metric>, week 3 of 6: so far <figure>
    vs <figure> before", with whether the data so far would be enough for a verdict, and why the
    figures stop at a source's last sync when one lags. Past its end: that it ended and what its
    verdict waits for, with no "so far" figure."""
    exp = p.experiment
    metric = metric_of(exp)
    week = min(exp.weeks, int(p.days_done // 7) + 1)
    return {
        "id": str(exp.id),
        "change": exp.change,
        "metric": words(exp.metric_name),
        "week": week,
        "weeks": exp.weeks,
        "so_far": figure(metric, p.during),
        "before": figure(metric, p.before),
        "enough": p.enough,
        "untested": UNTESTED,
        "until": when(exp.ends, zone(exp.timezone)),
        "stop": stop_button(exp),
        "ended": p.ended,
        "waiting": p.waiting or "",
        "lag": _capital(p.lag) if p.lag else "",
    }


def concluded_row(exp: Experiment) -> dict:
    """A concluded experiment in the digest, in one line: what, on which metric, the verdict."""
    return {
        "id": str(exp.id),
        "change": exp.change,
        "metric": words(exp.metric_name),
        "metric_name": exp.metric_name,
        "verdict": exp.verdict or ex.NOT_ENOUGH,
        "early": exp.stopped_early,
    }
