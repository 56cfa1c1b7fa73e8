"""App Home: the teams the user belongs to, each with its current figures and a settings button."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from slack_bolt import App

from bot import format as fmt
from bot.command_parse import text
from bot.render import render_json
from bot.settings_modal import user_channels
from metrics.catalogue import CATALOGUE
from metrics.dataset import TeamData
from metrics.teams import Team, list_teams
from metrics.timeutil import default_window

log = logging.getLogger("vsm.bot")
MAX_TEAMS = 15  # 6 blocks a team keeps the view under Slack's 100


class SeenEvents:
    """Event ids seen in the last hour: Slack retries an event it thinks we missed (docs/slack.md)."""

    def __init__(self, ttl: float = 3600) -> None:
        self.ttl = ttl
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def first_time(self, event_id: str | None) -> bool:
        if not event_id:
            return True
        now = time.monotonic()
        with self.lock:
            self.seen = {k: t for k, t in self.seen.items() if now - t < self.ttl}
            if event_id in self.seen:
                return False
            self.seen[event_id] = now
            return True


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


def register(app: App, deps) -> None:
    seen = SeenEvents()

    @app.event("app_home_opened")
    def opened(event, body, client):
        user = text(event.get("user"))
        if not user or event.get("tab", "home") != "home" or not seen.first_time(text(body.get("event_id"))):
            return
        client.views_publish(user_id=user, view=home_view(deps.store.db, client, user, deps.clock()))
