"""The experiment modal's submission: a team starts an improvement experiment."""

from __future__ import annotations


def submit(ack, body, view, client, context) -> None:
    """(Issue 13: not built yet.)"""
    ack()
