"""App Home's view: the teams the user belongs to, each with its current figures and a settings button."""

from __future__ import annotations

from datetime import datetime

from bot.authz import user_channels
from bot.render import format as fmt
from bot.render.templates import render_json
from metrics.catalogue import CATALOGUE
from metrics.dataset import TeamData
from metrics.teams import Team, list_teams
from metrics.timeutil import default_window

MAX_TEAMS = 15  # 6 blocks a team keeps the view under Slack's 100


def team_rows(db, team: Team, now: datetime) -> list[dict]:
    data = TeamData(db, team, now)
    window = default_window(team.tz, now)
    rows = []
    for mid in team.metrics[:8]:
        metric = CATALOGUE.get(mid)
        if metric is None:
            continue
        result = metric.compute(data, window)
        rows.append(
            {
                "name": metric.name,
                "value": fmt.value(metric, result.value),
                "spark": fmt.sparkline(result.series),
            }
        )
    return rows


def home_view(db, client, user: str, now: datetime) -> dict:
    channels = user_channels(client, user)
    mine = [t for t in list_teams(db) if t.channel in channels][:MAX_TEAMS]
    teams = [{"team": t, "rows": team_rows(db, t, now)} for t in mine]
    return render_json("home.json.j2", teams=teams)
