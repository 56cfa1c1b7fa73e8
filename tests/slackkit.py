"""Driving the Bolt app as Slack does: signed requests, dispatched through the app."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from slack_bolt.request import BoltRequest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from slack_sdk.signature import SignatureVerifier

from bot.app import create_app, web_client
from bot.store import Store

SECRET = "test-signing-secret"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def slack_app(db_path, slack, clock=lambda: NOW, **kw):
    """The app on the database at ``db_path`` as these tests drive it: signed requests, each answered
    after its listener has run (``process_before_response``), "now" from ``clock`` (pinned at ``NOW``
    by default), the Web API on ``slack`` (a ``MockSlack``). ``kw`` goes to ``create_app``
    (``admins``, ``members``)."""
    return create_app(
        Store(db_path),
        web_client("xoxb-test", slack.base_url),
        signing_secret=SECRET,
        process_before_response=True,
        clock=clock,
        **kw,
    )


def signed(body: str, *, ts: int | None = None, secret: str = SECRET, content_type: str) -> dict:
    stamp = str(int(time.time()) if ts is None else ts)
    sig = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"content-type": [content_type], "x-slack-request-timestamp": [stamp], "x-slack-signature": [sig]}


def command_body(
    text: str, *, channel: str = "C1", user: str = "U1", response_url: str = "", team: str = "T1"
) -> str:
    """``/vsm text`` as Slack POSTs it (form-encoded), to sign and send to the app or a `vsm serve`;
    ``team``: the workspace it is typed in (``team_id``)."""
    return urlencode(
        {
            "command": "/vsm",
            "text": text,
            "team_id": team,
            "user_id": user,
            "channel_id": channel,
            "response_url": response_url,
            "trigger_id": "trig-1",
        }
    )


def command(
    app, text: str, *, channel: str = "C1", user: str = "U1", response_url: str = "", team: str = "T1", **kw
):
    body = command_body(text, channel=channel, user=user, response_url=response_url, team=team)
    return app.dispatch(
        BoltRequest(body=body, headers=signed(body, content_type="application/x-www-form-urlencoded", **kw))
    )


def command_reply(app, slack, text: str, *, channel: str = "C1", team: str = "T1") -> dict:
    """``/vsm text`` in ``channel`` (of workspace ``team``), and the final reply it sent to its response
    URL (checked against Slack's message limits), without ``replace_original``."""
    command(app, text, channel=channel, response_url=f"{slack.url}/response/1", team=team)
    reply = slack.responses()[-1]
    reply.pop("replace_original", None)
    assert_valid_message(reply)
    return reply


def interaction(app, payload: dict):
    body = urlencode({"payload": json.dumps(payload)})
    return app.dispatch(
        BoltRequest(body=body, headers=signed(body, content_type="application/x-www-form-urlencoded"))
    )


def click(app, actions, *, channel: str, user: str = "U1", response_url: str, team: str | None = None):
    """A click in ``channel`` by ``user``, as the ``block_actions`` payload Slack posts. ``actions``
    goes in as given: Slack sends a list of one, a forgery may send anything. ``team``: the workspace
    it is clicked in (``team.id``), for an app serving several."""
    payload = {
        **({"team": {"id": team, "domain": team.lower()}} if team else {}),
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": channel},
        "response_url": response_url,
        "trigger_id": "t",
        "actions": actions,
    }
    return interaction(app, payload)


def event(app, event: dict, event_id: str = "Ev1", retry: int | None = None, team: str = "T1"):
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": team,
            "api_app_id": "A1",
            "event_id": event_id,
            "event_time": 1,
            "event": event,
        }
    )
    headers = signed(body, content_type="application/json")
    if retry is not None:
        headers["x-slack-retry-num"] = [str(retry)]
        headers["x-slack-retry-reason"] = ["http_timeout"]
    return app.dispatch(BoltRequest(body=body, headers=headers))


def ack_json(resp) -> dict:
    return json.loads(resp.body) if resp.body else {}


def assert_valid_message(payload: dict) -> None:
    """slack_sdk's models round-trip every block; the message-level limits it does not check, we do."""
    blocks = payload.get("blocks", [])
    assert payload.get("text"), "a message needs fallback text"
    assert len(payload["text"]) < 4000
    assert len(blocks) <= 50
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids)), "block_ids must be unique"
    for b in blocks:
        parsed = Block.parse(b)
        assert parsed is not None, b
        assert parsed.to_dict() == b, b
        if b["type"] == "actions":
            action_ids = [e["action_id"] for e in b["elements"] if "action_id" in e]
            assert len(action_ids) == len(set(action_ids))


def assert_valid_view(view: dict) -> None:
    assert View(**view).to_dict() is not None
    assert 1 <= len(view["blocks"]) <= 100
    for b in view["blocks"]:
        parsed = Block.parse(b)
        assert parsed is not None and parsed.to_dict() == b, b


def initial_state(view: dict) -> dict:
    """A modal's ``state`` as Slack sends it when the user submits without changing anything."""
    state: dict = {"values": {}}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        el = block["element"]
        if el["type"] in ("multi_static_select", "checkboxes"):
            v = {"type": el["type"], "selected_options": el.get("initial_options", [])}
        elif el["type"] == "static_select":
            v = {"type": el["type"], "selected_option": el.get("initial_option")}
        elif el["type"] == "timepicker":
            v = {"type": el["type"], "selected_time": el.get("initial_time")}
        elif el["type"] == "multi_users_select":
            v = {"type": el["type"], "selected_users": el.get("initial_users", [])}
        elif el["type"] == "conversations_select":
            v = {"type": el["type"], "selected_conversation": el.get("initial_conversation")}
        else:
            v = {"type": el["type"], "value": el.get("initial_value")}
        state["values"][block["block_id"]] = {"v": v}
    return state


def wait_for(found, deadline_s: float = 60, why=lambda: ""):
    """``found()`` once it is truthy, polled every 20 ms until ``deadline_s``: what a test of a real
    `vsm serve` waits for (an answer at a response URL, a call in the mock's log) arrives after the
    request's ack, from another thread. ``why()`` says what was there instead when it never comes."""
    deadline = time.monotonic() + deadline_s
    while not (value := found()):
        assert time.monotonic() < deadline, f"nothing arrived in {deadline_s} s: {why()}"
        threading.Event().wait(0.02)  # polling the mock's log, with a deadline
    return value
