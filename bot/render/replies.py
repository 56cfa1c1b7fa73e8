"""Slack replies to ``/vsm`` and its buttons, each rendered from a template in ``templates/``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from bot.render import format as fmt
from bot.render import teams as team_words
from bot.render.org_digest import as_result, more_teams, team_row
from bot.render.targets import target_line
from bot.render.templates import escape_mrkdwn, pack, render_json
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Result
from metrics.org import Rollup, TeamFigure
from metrics.targets import target_status
from metrics.teams import Team
from metrics.timeutil import iso

ORG = "all teams"  # whose figure the org's pooled one is, as a reply names it
NS_METRICS = 15  # [org] north_star holds up to five; 3 blocks a metric keep any reply under 50
NS_TEAM_BLOCKS = 2  # sections of team rows under each org figure: ~50 teams each
TEAMS_BLOCKS = 12  # sections of `/vsm teams`: ~20 teams each


def no_team_message(channel: str) -> dict:
    return render_json("no_team.json.j2", channel=channel)


def org_channel_message() -> dict:
    """A team's command typed in the organisation's channel, which no team may take: where it works
    and what works here, instead of an offer to set up a team the set-up would refuse."""
    return {
        "response_type": "ephemeral",
        "text": (
            "This is the organisation's channel: a team's figures, settings, forecasts and experiments "
            "are asked for in that team's channel. Here, `/vsm digest` previews the organisation's "
            "digest, `/vsm northstar` shows the North Star across teams and `/vsm teams` lists the teams."
        ),
    }


def working_message() -> dict:
    return {"response_type": "ephemeral", "text": "Working on it…"}


def _figure(team: Team, result: Result, explain_spread: bool = True) -> dict:
    """One figure of a team as the reply templates show it (see ``_figure_of``)."""
    return _figure_of(team.name, result, team.targets.get(result.metric), explain_spread)


def _figure_of(owner: str, result: Result, target: float | None, explain_spread: bool = True) -> dict:
    """One figure as the reply templates show it, a team's or the org's (``owner``: whose figure it
    is, as the reply names it): the value with what its n counts, what p50/p85 mean in this figure's
    numbers (``explain_spread``: only where they first appear in a reply), the change against the
    previous period marked better or worse, the signal rules' verdict, and, without data, why."""
    metric = CATALOGUE[result.metric]
    status = target_status(metric, result.value, target)
    data = fmt.has_data(result)
    figure, spark = fmt.shown(metric, result)
    return dict(
        team=owner,
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
            "team": owner,
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


def north_star_message(rollups: Sequence[Rollup], timezone: str, here: Team | None = None) -> dict:
    """``/vsm northstar`` from any channel: for each North Star metric the org figure pooled from
    every team (``metrics.org``), drawn as every reply draws a figure (``figure_section``), its
    signal in one line, then each team's own figure on the same window, by name and never ranked.
    In a team's channel (``here``), that team's row comes first, under its own heading, and the
    others follow by name. p50/p85 are put in words once, at the first figure that shows them; the
    admins' button to change the North Star stays last.

    Within Slack's limits for any org: at most ``NS_TEAM_BLOCKS`` sections of team rows a metric,
    each within a section's 3,000 characters (``pack``), the rest counted in a last line pointing at
    `vsm northstar`, which lists every team."""
    if not rollups:
        return render_json("north_star.json.j2", figures=[], label="", timezone=timezone, teams=0)
    figures, explained = [], False
    for r in rollups[:NS_METRICS]:
        f = _figure_of(ORG, as_result(r), r.target, explain_spread=not explained)
        explained = explained or bool(f["spread"])
        f["poolable"] = r.poolable
        if not r.poolable:  # a team-level figure (WIP...): no org figure, and not for want of data
            f["value"] = "not pooled across teams"
        f["teams"] = pack(_team_lines(r, here), partial(_team_line, r), NS_TEAM_BLOCKS, more_teams)
        figures.append(f)
    return render_json(
        "north_star.json.j2",
        figures=figures,
        label=rollups[0].window.label(),
        timezone=timezone,
        teams=len(rollups[0].teams),
    )


def _team_lines(r: Rollup, here: Team | None) -> list[TeamFigure | str]:
    """The team rows under one org figure, as ``pack`` takes them (a row, or a heading's mrkdwn):
    every team by name; in a team's channel, that team first under "This channel's team", then
    "Other teams, by name"."""
    mine = [t for t in r.teams if here is not None and t.team == here.name]
    if not mine:
        return list(r.teams)
    others = [t for t in r.teams if t.team != here.name]
    return ["_This channel's team_", *mine, *(["_Other teams, by name_"] if others else []), *others]


def _team_line(r: Rollup, row: TeamFigure | str) -> str:
    return row if isinstance(row, str) else team_row(r, row)


def teams_message(teams: Sequence[Team]) -> dict:
    """``/vsm teams``: every team by name with its channel, chosen metrics and digest schedule, in
    the words `vsm teams` uses (``bot.render.teams``). Within Slack's limits for any number of
    teams: at most ``TEAMS_BLOCKS`` sections, the rest counted in a last line pointing at `vsm teams`."""
    chunks = pack(teams, _team_facts_line, TEAMS_BLOCKS, _more_listed) if teams else []
    return render_json("teams.json.j2", chunks=chunks, count=len(teams), no_teams=team_words.NO_TEAMS)


def _team_facts_line(team: Team) -> str:
    """``• *payments* · <#C0123> · digest Mondays 09:00 Europe/London, last 28 days · metrics:
    cycle-time, throughput`` (escaped mrkdwn; the channel is a link only when it is a channel id)."""
    f = team_words.facts(team)
    return (
        f"• *{escape_mrkdwn(f['name'])}* · {team_words.channel_link(f['channel'])}"
        f" · digest {escape_mrkdwn(f['schedule'])}"
        f" · metrics: {escape_mrkdwn(f['metrics'])}"
    )


def _more_listed(n: int) -> str:
    return f"…and {n} more teams: `vsm teams` lists every team."


def forecast_message(team: Team, answer: dict, items: int, now: datetime) -> dict:
    return render_json("forecast.json.j2", team=team.name, items=items, answer=answer)
