"""Slash commands: ``/vsm`` (``vsm.py``), whose text ``parse.py`` reads."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.commands import vsm


def register(app: App) -> None:
    app.command("/vsm")(vsm.vsm)
