"""Modal submissions: one module per modal, named by its callback id."""

from __future__ import annotations

from slack_bolt import App

from bot import ids
from bot.listeners.views import experiment, north_star, team_settings


def register(app: App) -> None:
    app.view(ids.TEAM_SETTINGS)(team_settings.submit)
    app.view(ids.NORTH_STAR)(north_star.submit)
    app.view(ids.EXPERIMENT)(experiment.submit)
