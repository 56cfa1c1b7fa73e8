"""The North Star modal's submission: the organisation's North Star metrics, set by workspace admins
(or the users named in the config's ``[org] admins``) and shown to every team."""

from __future__ import annotations

import logging

from bot.authz import before_ack, may_set
from bot.payload import obj, private_metadata, state_values, text, user_id
from metrics.catalogue import CATALOGUE
from metrics.errors import VsmError
from metrics.teams import check_org, set_org

log = logging.getLogger("vsm.bot")


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


def submit(ack, body, view, client, context) -> None:
    """The North Star form submitted: saved when its opener is still an admin and the choice is valid."""
    deps = context["deps"]
    view, user = obj(view), user_id(body)
    # Checked again at the moment of the write: an admin demoted since the form opened may not
    # save it. One users.info call, with the short pre-ack client (no retries, 2 s).
    if not user or private_metadata(view).get("by") != user or not may_set(before_ack(client), deps, user):
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
