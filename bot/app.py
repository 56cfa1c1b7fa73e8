"""The Bolt app: built by ``create_app``, with one ``register(app)`` per listener module."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

from bot import actions, commands, home, north_star
from bot.store import Store

log = logging.getLogger("vsm.bot")


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


def create_app(
    store: Store,
    client: WebClient,
    *,
    signing_secret: str | None = None,
    process_before_response: bool = False,
    clock: Callable[[], datetime] | None = None,
    admins: list[str] | None = None,
    on_team_saved: Callable | None = None,
) -> App:
    """The app on ``store``. ``clock`` pins "now" (tests); ``admins`` may set the North Star besides
    workspace admins."""
    app = App(
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
    commands.register(app, ctx)
    actions.register(app, ctx)
    home.register(app, ctx)
    north_star.register(app, ctx)
    return app
