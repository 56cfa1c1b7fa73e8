"""The one exception type that reaches a user as a short message instead of a traceback."""


class VsmError(Exception):
    """Bad input or configuration. The message is shown as-is: one line, no secrets."""
