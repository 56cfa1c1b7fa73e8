"""The org digest preview's "Post to channel"."""

from __future__ import annotations


def post_org_digest(ack, body, client, respond, context) -> None:
    """(Issue 13: not built yet.)"""
    ack()
