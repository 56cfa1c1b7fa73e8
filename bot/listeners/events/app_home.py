"""``app_home_opened``: App Home, published fresh each time the user opens it."""

from __future__ import annotations

import threading
import time

from bot.payload import text
from bot.render.home import home_view


class SeenEvents:
    """Event ids seen in the last hour: Slack retries an event it thinks we missed (docs/slack.md)."""

    def __init__(self, ttl: float = 3600) -> None:
        self.ttl = ttl
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def first_time(self, event_id: str | None) -> bool:
        if not event_id:
            return True
        now = time.monotonic()
        with self.lock:
            self.seen = {k: t for k, t in self.seen.items() if now - t < self.ttl}
            if event_id in self.seen:
                return False
            self.seen[event_id] = now
            return True


def app_home_opened(event, body, client, context) -> None:
    deps = context["deps"]
    user = text(event.get("user"))
    if (
        not user
        or event.get("tab", "home") != "home"
        or not deps.seen_events.first_time(text(body.get("event_id")))
    ):
        return
    client.views_publish(user_id=user, view=home_view(deps.store.db, client, user, deps.clock(), ws=deps.ws))
