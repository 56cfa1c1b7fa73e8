"""Every Bolt listener, grouped by Slack surface as in Slack's bolt-python starter template.

Each package registers plain module-level functions in a short ``register(app)``; a listener finds
the app's dependencies in Bolt's context (``context["deps"]``, put there by ``bot.app``), so it can
be imported, read and tested alone.
"""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, events, views


def register(app: App) -> None:
    commands.register(app)
    actions.register(app)
    events.register(app)
    views.register(app)
