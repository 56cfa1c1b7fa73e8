"""Experiments that ran their course: judged and the verdict posted to the team's channel, once."""

from __future__ import annotations

from datetime import datetime

import sqlite_utils
from slack_sdk import WebClient

from bot.schedule.delivery import ChannelPacer, Outcome


def run_verdicts(
    db: sqlite_utils.Database, client: WebClient, now: datetime, pacer: ChannelPacer | None = None
) -> list[Outcome]:
    """(Issue 13: not built yet.)"""
    return []
