"""App Home's view: the teams the user belongs to, each with its current figures and a settings button."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.authz import user_channels
from bot.render import format as fmt
from bot.render.templates import render_json
from metrics.catalogue import CATALOGUE
from metrics.dataset import TeamData
from metrics.digest import digest_window
from metrics.teams import Team, list_teams
from metrics.timeutil import Window

MAX_TEAMS = 15  # 6 blocks a team keeps the view under Slack's 100


def period(window: Window) -> str:
    """How App Home names a team's window: "last 28 days to 24 Nov (2026-10-28 – 2026-11-24)". The
    dates in brackets are ``Window.label()``, word for word what `/vsm`, North Star and the digest
    show, so a reader can see the figures are the same ones."""
    end = (window.until - timedelta(days=1)).date()
    return f"last {window.days} days to {end.day} {end:%b} ({window.label()})"


def team_rows(db, team: Team, now: datetime) -> tuple[Window, list[dict]]:
    """The team's figures over its digest period (the window every surface uses unless a person asks
    for another), with that window."""
    data = TeamData(db, team, now)
    window = digest_window(team, now)
    rows = []
    for mid in team.metrics[:8]:
        metric = CATALOGUE.get(mid)
        if metric is None:
            continue
        figure, spark = fmt.shown(metric, metric.compute(data, window))
        rows.append({"name": metric.name, "value": figure, "spark": spark})
    return window, rows


def home_view(db, client, user: str, now: datetime) -> dict:
    channels = user_channels(client, user)
    mine = [t for t in list_teams(db) if t.channel in channels][:MAX_TEAMS]
    teams = []
    for t in mine:
        window, rows = team_rows(db, t, now)
        teams.append({"team": t, "period": period(window), "rows": rows})
    return render_json("home.json.j2", teams=teams)
