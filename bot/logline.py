"""What a log line says about a failure: enough to find it again, never a token or a request.

A Slack API error's request carries the bot token, and a traceback spreads one user's request over many
lines of the server's log; these give one short line instead.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError


def slack_error(exc: Exception) -> str:
    """Slack's error code (``is_archived``, ``ratelimited``...) or the exception's class."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return type(exc).__name__
