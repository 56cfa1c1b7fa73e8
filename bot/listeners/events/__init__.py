"""Events Slack sends the app: one module per event type."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.events import app_home, uninstall


def register(app: App) -> None:
    app.event("app_home_opened")(app_home.app_home_opened)
    app.event("app_uninstalled")(uninstall.app_uninstalled)
    app.event("tokens_revoked")(uninstall.tokens_revoked)
