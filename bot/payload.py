"""Reading Slack's interaction payloads without trusting them, and answering them (``tell``).

A button click or a modal submission is only a signed request: its JSON can be any shape (an empty
``actions`` list, no ``state``, ``private_metadata`` that is not JSON). These readers never raise; a
missing or mistyped part comes back empty and the listener refuses it.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger("vsm.bot")


def obj(value: object) -> dict:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def text(value: object) -> str:
    """``value`` if it is a string, else ``""``."""
    return value if isinstance(value, str) else ""


def user_id(body: dict) -> str:
    return text(obj(body.get("user")).get("id"))


def first_action(body: dict) -> dict:
    """The clicked element (Slack sends exactly one); ``{}`` when the list is empty or not a list."""
    actions = body.get("actions")
    return obj(actions[0]) if isinstance(actions, list) and actions else {}


def selected_value(action: dict) -> str:
    """A select's or overflow's chosen value, ``""`` when there is none."""
    return text(obj(action.get("selected_option")).get("value"))


def message_channel(body: dict) -> str:
    """The channel the clicked message is in."""
    return text(obj(body.get("channel")).get("id")) or text(obj(body.get("container")).get("channel_id"))


def private_metadata(view: dict) -> dict:
    """A modal's ``private_metadata`` as the object we stored in it, ``{}`` when forged."""
    try:
        return obj(json.loads(text(view.get("private_metadata")) or "{}"))
    except ValueError:
        return {}


def state_values(view: dict) -> dict[str, dict]:
    """``view.state.values`` (block id -> action id -> element state), keeping only well-formed parts."""
    values = obj(obj(view.get("state")).get("values"))
    return {
        k: {a: v for a, v in obj(actions).items() if isinstance(v, dict)}
        for k, actions in values.items()
        if isinstance(actions, dict)
    }


def tell(respond, message: str = "", **payload) -> None:
    """Answer a click through its ``response_url``, when it has one: a click in App Home (or a forged
    one) has none, and then the log line is all the answer there is."""
    try:
        if message:
            payload = {"replace_original": False, "text": message, **payload}
        respond(**payload)
    except Exception as exc:  # noqa: BLE001 - see above; respond raises ValueError or a network error
        log.info("could not answer (%s): %s", type(exc).__name__, message or payload.get("text", ""))
