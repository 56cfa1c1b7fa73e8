"""The Bolt app: built by ``create_app``, with one ``register(app)`` per listener module."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier

from bot import actions, commands, home, north_star
from bot.command_parse import obj
from bot.settings_modal import MemberCache, tell
from bot.store import Store

log = logging.getLogger("vsm.bot")
SORRY = "Sorry, that failed on our side; it has been logged."


def web_client(
    token: str, base_url: str | None = None, *, server_error_backoff: float = 0.5, rate_limit_retries: int = 3
) -> WebClient:
    """A WebClient that rides out rate limits (Retry-After), 500/503 bursts and dropped connections.
    Its retries sleep in the calling thread: only use it after an ``ack``."""
    client = WebClient(token=token, base_url=base_url or "https://slack.com/api/")
    client.retry_handlers.extend(
        [
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
            ServerErrorRetryHandler(
                max_retry_count=3,
                interval_calculator=BackoffRetryIntervalCalculator(backoff_factor=server_error_backoff),
            ),
        ]
    )
    return client


def last_resort(signing_secret: str | None) -> Callable[..., BoltResponse]:
    """Bolt's global error handler, for what no listener caught (each listener validates its input,
    so this is a bug or a forged payload nobody foresaw): one log line, and an answer Slack can show
    instead of "dispatch_failed". A request that fails the signature check (a malformed timestamp
    header, say) stays refused: 401, not the 200 the listeners' answer would be."""
    verifier = SignatureVerifier(signing_secret) if signing_secret else None

    def handle(error: Exception, request: BoltRequest, body: dict, respond=None) -> BoltResponse:
        body = obj(body)
        kind = str(body.get("type") or ("command" if "command" in body else "request"))
        log.error("%s failed: %s", kind, commands.error_line(error))
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
            log.error("request failed in Bolt: %s", commands.error_line(error))
            return BoltResponse(status=400, body="")


def create_app(
    store: Store,
    client: WebClient,
    *,
    signing_secret: str | None = None,
    process_before_response: bool = False,
    clock: Callable[[], datetime] | None = None,
    admins: list[str] | None = None,
    on_team_saved: Callable | None = None,
    members: MemberCache | None = None,
) -> App:
    """The app on ``store``. ``clock`` pins "now" (tests); ``admins`` may set the North Star besides
    workspace admins; ``members`` caches channel membership (tests pass one with their own clock)."""
    app = VsmApp(
        client=client,
        signing_secret=signing_secret or "not-used-in-socket-mode",
        process_before_response=process_before_response,
        token_verification_enabled=False,
        request_verification_enabled=signing_secret is not None,
        logger=log,
    )
    ctx = commands.Deps(store=store, clock=clock or (lambda: datetime.now(UTC)), admins=list(admins or []))
    if on_team_saved is not None:
        ctx.on_team_saved = on_team_saved
    if members is not None:
        ctx.members = members
    app.error(last_resort(signing_secret))
    app.use(PayloadShape())
    commands.register(app, ctx)
    actions.register(app, ctx)
    home.register(app, ctx)
    north_star.register(app, ctx)
    return app
