"""``/vsm digest`` in the org channel: a preview of the organisation's digest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from metrics.teams import get_org

if TYPE_CHECKING:
    from bot.app import Deps


def is_org_channel(deps: Deps, channel: str) -> bool:
    """Whether ``channel`` is ``[org] channel`` (where the org digest goes)."""
    return bool(channel) and get_org(deps.store.db).get("channel") == channel


def preview_reply(deps: Deps) -> dict:
    """The org digest as it stands now, ephemeral, with a button to post it. (Issue 13: not built yet.)"""
    return {"response_type": "ephemeral", "text": "The organisation digest is not built yet."}
