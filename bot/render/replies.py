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


def _figure(team: Team, result: Result) -> dict:
    """One figure as the reply templates show it."""
    metric = CATALOGUE[result.metric]
    target = team.targets.get(metric.id)
    status = target_status(metric, result.value, target)
    return dict(
        team=team.name,
        id=metric.id,
        name=metric.name,
        definition=metric.definition,
        period=result.window.label(),
        value=fmt.value(metric, result.value),
        n=result.sample_size,
        previous=fmt.value(metric, result.previous),
        change=fmt.change(metric, result.value, result.previous),
        spark=fmt.sparkline(result.series),
        target=target_line(metric, target, status),
        target_status=status,
        signal=result.signal,
        signal_note=result.signal_note,
        notes=result.notes,
        explain={
            "metric": metric.id,
            "team": team.name,
            "since": iso(result.window.start),
            "until": iso(result.window.end),
        },
    )


def metric_message(team: Team, result: Result) -> dict:
    return render_json("metric.json.j2", f=_figure(team, result))


def north_star_message(team: Team, results: list[Result]) -> dict:
    """The organisation's North Star figures for the team, with the admins' button to change them."""
    return render_json("north_star.json.j2", figures=[_figure(team, r) for r in results])


def forecast_message(team: Team, answer: dict, items: int, now: datetime) -> dict:
    return render_json("forecast.json.j2", team=team.name, items=items, answer=answer)
