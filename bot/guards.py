"""What stands between a request and the listeners: payloads Bolt cannot read, and what no
listener caught. Each ends in one log line and an answer Slack can show, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk.signature import SignatureVerifier

from bot.payload import obj, tell
from metrics.errors import error_line

log = logging.getLogger("vsm.bot")
SORRY = "Sorry, that failed on our side; it has been logged."


def last_resort(signing_secret: str | None) -> Callable[..., BoltResponse]:
    """Bolt's global error handler, for what no listener caught (each listener validates its input,
    so this is a bug or a forged payload nobody foresaw): one log line, and an answer Slack can show
    instead of "dispatch_failed". A request that fails the signature check (a malformed timestamp
    header, say) stays refused: 401, not the 200 the listeners' answer would be."""
    verifier = SignatureVerifier(signing_secret) if signing_secret else None

    def handle(error: Exception, request: BoltRequest, body: dict, respond=None) -> BoltResponse:
        body = obj(body)
        kind = str(body.get("type") or ("command" if "command" in body else "request"))
        log.error("%s failed: %s", kind, error_line(error))
        if verifier is not None:
            try:
                stamp = (request.headers.get("x-slack-request-timestamp") or ["0"])[0]
                signature = (request.headers.get("x-slack-signature") or [""])[0]
                signed = verifier.is_valid(request.raw_body, stamp, signature)
            except (ValueError, TypeError):
                signed = False
            if not signed:
                return BoltResponse(status=401, body="")
        if "command" in body:
            return BoltResponse(
                status=200,
                body={"response_type": "ephemeral", "text": SORRY},
            )
        if body.get("type") == "view_submission":  # keep the form open, with the message on it
            blocks = obj(body.get("view")).get("blocks")
            blocks = blocks if isinstance(blocks, list) else []
            inputs = [obj(b).get("block_id") for b in blocks if obj(b).get("type") == "input"]
            if inputs and isinstance(inputs[0], str):
                return BoltResponse(
                    status=200, body={"response_action": "errors", "errors": {inputs[0]: SORRY[:150]}}
                )
        if respond is not None and isinstance(body.get("response_url"), str):
            tell(respond, SORRY)  # a click already acknowledged: say so where it was clicked
        return BoltResponse(status=200, body="")  # a click: acknowledged, nothing done

    return handle


def malformed(body: dict) -> str | None:
    """What makes a signed payload one Bolt itself cannot read, or ``None``. Bolt indexes some parts
    before any listener runs (``actions[0]`` of a click, ``view.type``, ``event.type``) and again when
    it calls the error handler, so such a payload must be stopped before it reaches them."""
    kind = body.get("type")
    if kind in ("block_actions", "interactive_message"):
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
            return "no actions"
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not isinstance(view, dict) or not all(
            isinstance(view.get(k), str) for k in ("type", "callback_id")
        ):
            return "no view"
    if kind == "event_callback" and not isinstance(obj(body.get("event")).get("type"), str):
        return "no event type"
    if kind == "workflow_step_edit" and not isinstance(body.get("workflow_step"), dict):
        return "no workflow step"
    return None


class PayloadShape(Middleware):
    """Acknowledges and drops a payload of the wrong shape (``malformed``), with one log line. Slack
    never sends one; a signed forgery gets an ack and nothing else, like any other refused click."""

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]):
        why = malformed(obj(req.body))
        if why is None:
            return next()
        log.warning("ignored a malformed %s payload: %s", str(obj(req.body).get("type"))[:40], why)
        return BoltResponse(status=200, body="")


class VsmApp(App):
    """Bolt's App, whose ``dispatch`` never raises: an error inside Bolt itself (its error handler
    reading a payload it cannot parse, say) is one log line and a 400, not a traceback and a 500."""

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        try:
            return super().dispatch(req)
        except Exception as error:  # noqa: BLE001 - the last line of defence
            log.error("request failed in Bolt: %s", error_line(error))
            return BoltResponse(status=400, body="")
