"""Slack replies to ``/vsm`` and its buttons, each rendered from a template in ``templates/``."""

from __future__ import annotations

from datetime import datetime

from bot.render import format as fmt
from bot.render.targets import target_line
from bot.render.templates import render_json
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Result
from metrics.targets import target_status
from metrics.teams import Team
from metrics.timeutil import iso


def no_team_message(channel: str) -> dict:
    return render_json("no_team.json.j2", channel=channel)


def working_message() -> dict:
    return {"response_type": "ephemeral", "text": "Working on it…"}


def _figure(team: Team, result: Result, explain_spread: bool = True) -> dict:
    """One figure as the reply templates show it: the value with what its n counts, what p50/p85
    mean in this figure's numbers (``explain_spread``: only where they first appear in a reply), the
    change against the previous period marked better or worse, and, without data, why."""
    metric = CATALOGUE[result.metric]
    target = team.targets.get(metric.id)
    status = target_status(metric, result.value, target)
    data = fmt.has_data(result)
    figure, spark = fmt.shown(metric, result)
    return dict(
        team=team.name,
        id=metric.id,
        name=metric.name,
        definition=metric.definition,
        period=result.window.label(),
        value=figure,
        has_data=data,
        counted=fmt.counted(metric, result.sample_size),
        spread=fmt.spread(metric, result.value, _horizon(result)) if data and explain_spread else "",
        comparison=fmt.comparison(metric, result),
        spark=spark,
        target=target_line(metric, target, status),
        target_status=status,
        signal=result.signal,
        verdict=fmt.verdict(result.signal, result.signal_note, result.sample_size),
        notes=result.notes,
        explain={
            "metric": metric.id,
            "team": team.name,
            "since": iso(result.window.start),
            "until": iso(result.window.end),
        },
    )


def _horizon(result: Result) -> str:
    """A forecast's horizon in words ("in the next 14 days"), from what it says it forecast."""
    days = result.extra.get("days") if isinstance(result.extra, dict) else None
    return f"in the next {days} days" if days else ""


def metric_message(team: Team, result: Result) -> dict:
    return render_json("metric.json.j2", f=_figure(team, result))


def north_star_message(team: Team, results: list[Result]) -> dict:
    """The organisation's North Star figures for the team, with the admins' button to change them.
    p50/p85 are put in words once, at the first figure that shows them."""
    figures, explained = [], False
    for r in results:
        f = _figure(team, r, explain_spread=not explained)
        explained = explained or bool(f["spread"])
        figures.append(f)
    return render_json("north_star.json.j2", figures=figures)


def forecast_message(team: Team, answer: dict, items: int, now: datetime) -> dict:
    return render_json("forecast.json.j2", team=team.name, items=items, answer=answer)
