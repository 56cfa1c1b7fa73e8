"""The organisation's North Star metrics: shown to every team, set by workspace admins (or the users
named in the config's ``[org] admins``)."""

from __future__ import annotations

import json
import logging

from slack_bolt import App
from slack_sdk.errors import SlackApiError

from bot.command_parse import obj, private_metadata, state_values, text, user_id
from bot.render import render_json
from bot.settings_modal import before_ack, tell
from metrics.catalogue import CATALOGUE
from metrics.errors import VsmError
from metrics.teams import check_org, get_org, set_org

CALLBACK = "north_star"
log = logging.getLogger("vsm.bot")


def may_set(client, deps, user: str) -> bool | None:
    """Whether ``user`` may set the North Star now: named in ``[org] admins``, or a workspace admin
    or owner; None when Slack cannot say (the change is refused, never guessed)."""
    if user in deps.admins:
        return True
    try:
        info = client.users_info(user=user).get("user") or {}
    except (SlackApiError, OSError) as exc:
        log.info("could not read %s's admin status: %s", user, type(exc).__name__)
        return None
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
        try:
            client.views_open(trigger_id=text(body.get("trigger_id")), view=view)
        except SlackApiError as exc:  # an expired or forged trigger_id
            log.info("north star modal not opened for %s: %s", user, exc.response.get("error"))
            tell(respond, "Slack would not open the North Star form; click the button again.")

    @app.view(CALLBACK)
    def submit(ack, body, view, client):
        view, user = obj(view), user_id(body)
        # Checked again at the moment of the write: an admin demoted since the form opened may not
        # save it. One users.info call, with the short pre-ack client (no retries, 2 s).
        if (
            not user
            or private_metadata(view).get("by") != user
            or not may_set(before_ack(client), deps, user)
        ):
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
