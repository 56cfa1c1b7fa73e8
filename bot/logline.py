"""What a log line says about a failure: enough to find it again, never a token or a request.

A Slack API error's request carries the bot token, and a traceback spreads one user's request over many
lines of the server's log; these give one short line instead.
"""

from __future__ import annotations

import traceback

from slack_sdk.errors import SlackApiError


def slack_error(exc: Exception) -> str:
    """Slack's error code (``is_archived``, ``ratelimited``...) or the exception's class."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return type(exc).__name__


def error_line(error: BaseException) -> str:
    """``Type: message (file.py:42)`` on one line: what failed and where, found again from one log
    line; the traceback would spread a user's request over many lines of the server's log."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
    said = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {said} ({where})"
