"""The organisation's North Star metrics: shown to every team, set by workspace admins (or the users
named in the config's ``[org] admins``)."""

from __future__ import annotations

import json
import logging

from slack_bolt import App

from bot.command_parse import obj, private_metadata, state_values, text, user_id
from bot.render import render_json
from bot.settings_modal import tell
from metrics.catalogue import CATALOGUE
from metrics.errors import VsmError
from metrics.teams import check_org, get_org, set_org

CALLBACK = "north_star"
log = logging.getLogger("vsm.bot")


def may_set(client, deps, user: str) -> bool:
    if user in deps.admins:
        return True
    info = client.users_info(user=user).get("user") or {}
    return bool(info.get("is_admin") or info.get("is_owner"))


def _problem(ids: list) -> str | None:
    """What is wrong with a submitted choice, checked as the config's ``[org] north_star`` is: a
    forged id is refused, not silently dropped (the admin would believe it was saved)."""
    if not 1 <= len(ids) <= 5:
        return "Choose one to five metrics."
    try:
        check_org("north_star", ids)
    except VsmError:
        unknown = next((m for m in ids if m not in CATALOGUE), None)
        return f"Unknown metric “{str(unknown)[:40]}”." if unknown else "Choose each metric once."
    return None


def register(app: App, deps) -> None:
    @app.action("set_north_star")
    def open_modal(ack, body, client, respond):
        ack()
        user = user_id(body)
        if not user or not may_set(client, deps, user):
            tell(
                respond, replace_original=False, text="Only workspace admins can set the North Star metrics."
            )
            return
        chosen = get_org(deps.store.db).get("north_star", [])
        view = render_json(
            "north_star_modal.json.j2",
            metrics=list(CATALOGUE.values()),
            chosen=chosen,
            meta=json.dumps({"by": user}),
        )
        client.views_open(trigger_id=text(body.get("trigger_id")), view=view)

    @app.view(CALLBACK)
    def submit(ack, body, view, client):
        view, user = obj(view), user_id(body)
        # Checked (users.info) when the modal opened; no Web API call before the 3-second ack.
        if not user or private_metadata(view).get("by") != user:
            log.info("north star submission refused for %r", user)
            ack(response_action="errors", errors={"metrics": "Only workspace admins can set the North Star."})
            return
        chosen = state_values(view).get("metrics", {}).get("v", {}).get("selected_options")
        ids = [text(obj(o).get("value")) for o in chosen] if isinstance(chosen, list) else []
        problem = _problem(ids)
        if problem:
            log.info("north star from %s not saved: %s", user, problem)
            ack(response_action="errors", errors={"metrics": problem})
            return
        ack()
        set_org(deps.store.db, "north_star", ids, who=user)
