"""App Home's portfolio: a team's "Full digest" button shows the team's digest preview."""

from __future__ import annotations


def preview_team_digest(ack, body, client, respond, context) -> None:
    """(Issue 13: not built yet.)"""
    ack()
