"""The one exception type that reaches a user as a short message instead of a traceback, and the one
line a log gives any other failure."""

import traceback


class VsmError(Exception):
    """Bad input or configuration. The message is shown as-is: one line, no secrets."""


def error_line(error: BaseException) -> str:
    """``Type: message (file.py:42)`` on one line: what failed and where, found again from one log
    line; the traceback would spread a user's request over many lines of the server's log."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
    said = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {said} ({where})"
