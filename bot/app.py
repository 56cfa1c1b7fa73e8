"""The Bolt app: ``create_app`` builds it, with its dependencies (``Deps``) in every listener's context."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_bolt.oauth import OAuthFlow
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

from bot import listeners
from bot.authz import MemberCache
from bot.guards import PayloadShape, VsmApp, last_resort
from bot.listeners.events.app_home import SeenEvents
from bot.store import Store
from metrics.errors import VsmError
from metrics.teams import Team
from metrics.workspace import SINGLE, Workspace, shown, workspace_of

log = logging.getLogger("vsm.bot")


@dataclass
class Deps:
    """What every listener needs besides the request, found in Bolt's context as ``context["deps"]``."""

    store: Store
    clock: Callable[[], datetime]
    # The workspace the request came from (metrics.workspace): every team, setting and experiment a
    # listener reads or writes is this workspace's. SINGLE in single-workspace mode; in OAuth mode
    # ``WithDeps`` sets it from the request, on a copy of the app's ``Deps``.
    ws: Workspace = SINGLE
    # Org admins besides the database's ``[org] admins`` (``bot.authz.org_admins``): tests pass some;
    # ``vsm serve`` passes none, so the database, seeded from vsm.toml on first start, decides.
    admins: list[str] = field(default_factory=list)
    # Called with the saved team and its workspace after every settings change (the scheduler
    # re-plans its jobs).
    on_team_saved: Callable[[Team, Workspace], None] = field(default=lambda team, ws: None)
    # Called with the workspace after every change to its org settings (the scheduler re-plans the
    # org digest).
    on_org_saved: Callable[[Workspace], None] = field(default=lambda ws: None)
    # Called with the workspace and the event's time (Slack's ``event_time``; None when it sent none)
    # when Slack says the app was uninstalled there or its bot token was revoked: its tokens installed
    # by then are removed (OAuth mode) and its digests, nudges and verdicts stop at once. Returns how
    # many installations were removed (None in single-workspace mode, where none are stored).
    # ``create_app`` builds it from its ``on_uninstalled`` (the scheduler's).
    on_uninstalled: Callable[[Workspace, float | None], int | None] = field(default=lambda ws, at: None)
    # Channel members, re-read at most once a minute: every change is authorised against them.
    members: MemberCache = field(default_factory=MemberCache)
    # Event ids seen in the last hour: Slack retries an event it thinks we missed.
    seen_events: SeenEvents = field(default_factory=SeenEvents)


class WithDeps(Middleware):
    """Puts the app's ``Deps`` in the context of every request, before any listener runs.

    ``per_workspace`` (OAuth mode): each request gets its own copy with ``ws`` set to the workspace
    Slack says it came from (the signed body's team and enterprise ids), so no listener can reach
    another workspace's rows by forgetting to ask. A request that names no workspace is answered
    200 with nothing done (Slack would retry anything else)."""

    def __init__(self, deps: Deps, *, per_workspace: bool = False) -> None:
        self.deps = deps
        self.per_workspace = per_workspace

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]):
        if not self.per_workspace:
            req.context["deps"] = self.deps
            return next()
        c = req.context
        try:
            ws = workspace_of(c.enterprise_id, c.team_id, c.is_enterprise_install)
        except VsmError:
            log.warning("a request from no known workspace was ignored")
            return BoltResponse(status=200, body="")
        req.context["deps"] = replace(self.deps, ws=ws)
        return next()


class _InstallableApp(VsmApp):
    """The app installable in many workspaces: a request from a workspace with no usable installation
    is answered in the shape its kind takes (``installs.not_installed_answer``: a modal's submission
    cannot take the text body Bolt answers it with). Done on ``dispatch``'s answer: Bolt's middlewares
    cannot rewrite the authorisation's answer, which ends the chain."""

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        from bot.installs import not_installed_answer

        return not_installed_answer(req, super().dispatch(req))


def _forgetting(
    oauth_flow: OAuthFlow, then: Callable[[Workspace], None]
) -> Callable[[Workspace, float | None], int]:
    """The installable app's uninstall: the workspace's tokens installed by the event's time removed,
    then ``then`` (``bot.installs.uninstaller``, the path the scheduler takes for a dead token too)."""
    from bot.installs import Installations, uninstaller

    installations = oauth_flow.settings.installation_store
    if not isinstance(installations, Installations):
        raise VsmError("the OAuth flow's installations are not vsm-bot's (bot.installs.oauth_settings)")
    uninstall = uninstaller(installations, then)
    return lambda ws, at: uninstall(ws, before=at)


def _stopping(then: Callable[[Workspace], None]) -> Callable[[Workspace, float | None], None]:
    """Single-workspace mode's uninstall: no tokens are stored (``SLACK_BOT_TOKEN`` is the operator's),
    so ``then`` alone: the workspace's jobs stop until ``vsm serve`` starts again."""

    def uninstalled(ws: Workspace, at: float | None) -> None:
        log.warning(
            "%s: its digests, nudges and verdicts stop until vsm serve is restarted (with a working "
            "SLACK_BOT_TOKEN, once the app is installed again)",
            shown(ws),
        )
        then(ws)

    return uninstalled


def web_client(
    token: str | None,
    base_url: str | None = None,
    *,
    server_error_backoff: float = 0.5,
    rate_limit_retries: int = 3,
) -> WebClient:
    """A WebClient that rides out rate limits (Retry-After), 500/503 bursts and dropped connections.
    Its retries sleep in the calling thread: only use it after an ``ack``. ``token`` None: the
    installable app's, whose requests each get their workspace's token from Bolt."""
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
    on_org_saved: Callable | None = None,
    members: MemberCache | None = None,
    per_workspace: bool = False,
    oauth_flow: OAuthFlow | None = None,
    on_uninstalled: Callable[[Workspace], None] | None = None,
) -> App:
    """The app on ``store``. ``clock`` pins "now" (tests); ``admins`` may set the North Star besides
    workspace admins and the org admins the database holds; ``members`` caches channel membership (tests
    pass one with their own clock); ``per_workspace`` serves many workspaces (``WithDeps``).

    ``oauth_flow`` (``bot.installs.oauth_flow``) makes it the app installable in many workspaces: each
    request is served with its workspace's bot token from the installations (``client`` has none), a
    workspace with no installation is told so (``installs.NOT_INSTALLED``, in the shape each kind of
    request takes: ``installs.not_installed_answer``), and it implies
    ``per_workspace``. A workspace's ``app_uninstalled``/``tokens_revoked`` then removes its tokens
    installed by the event's time before ``on_uninstalled`` (the scheduler's ``unplan_workspace``) is
    told: Bolt runs only the first listener matching an event, so the removal lives with the one
    listener that hears it (bot/listeners/events), through this hook. Without ``oauth_flow``,
    ``on_uninstalled`` is told and logged, nothing else."""
    flow: dict = {}
    if oauth_flow is not None:
        from bot.installs import NOT_INSTALLED

        flow = {"oauth_flow": oauth_flow, "user_facing_authorize_error_message": NOT_INSTALLED}
        per_workspace = True
    app = (VsmApp if oauth_flow is None else _InstallableApp)(
        client=client,
        signing_secret=signing_secret or "not-used-in-socket-mode",
        process_before_response=process_before_response,
        token_verification_enabled=False,
        request_verification_enabled=signing_secret is not None,
        logger=log,
        **flow,
    )
    deps = Deps(store=store, clock=clock or (lambda: datetime.now(UTC)), admins=list(admins or []))
    if on_team_saved is not None:
        deps.on_team_saved = on_team_saved
    if on_org_saved is not None:
        deps.on_org_saved = on_org_saved
    stop = on_uninstalled or (lambda ws: None)
    if oauth_flow is not None:
        deps.on_uninstalled = _forgetting(oauth_flow, stop)
    elif on_uninstalled is not None:
        deps.on_uninstalled = _stopping(stop)
    if members is not None:
        deps.members = members
    app.error(last_resort(signing_secret))
    app.use(PayloadShape())
    app.use(WithDeps(deps, per_workspace=per_workspace))
    listeners.register(app)
    return app
