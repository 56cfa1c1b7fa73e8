"""``vsm serve``: the Slack app in Socket Mode (default) or as an HTTP endpoint with signed requests,
serving one workspace on its bot token or, installable (OAuth, HTTP mode), every workspace that
installs it, each with its own token; and the one scheduler of the deployment (digests, nudges,
source syncs)."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.app import create_app, web_client
from bot.schedule.scheduler import Scheduler
from bot.store import Store
from metrics.config import Config
from metrics.errors import VsmError, error_line
from metrics.results import after_sync
from metrics.sources.sync import sync_sources
from metrics.store import open_db
from metrics.teams import list_teams, seed_from_config
from metrics.workspace import Workspace, shown

if TYPE_CHECKING:
    from slack_bolt import App
    from slack_sdk import WebClient

log = logging.getLogger("vsm.serve")

# HTTP mode's server (waitress, through Bolt's WSGI adapter). Why each value:
EVENTS_PATH = "/slack/events"  # the one request URL of the manifest: commands, interactivity, events
THREADS = 8
"""Threads that run the app. Reading and writing sockets is done by one event loop, so a slow or idle
client holds no thread; a thread is held only from a complete request to its answer. Bolt acknowledges
first and runs the work on its own pool, so an answer takes milliseconds; 8 lets a few slow ones
(a modal's ``views.open`` call to Slack, a busy database) overlap without queueing the rest."""
CHANNEL_TIMEOUT_S = 20
"""A connection with no byte in either direction for this long is closed: an idle connection, a
request line or headers never finished, a body shorter than its Content-Length. Slack sends a
request in one go and gives up on an answer after 3 s, so 20 s only ever cuts dead connections,
while leaving a reverse proxy's keep-alive connections (keep its idle timeout below this) open."""
CLEANUP_INTERVAL_S = 2
"""How often the timeout above is checked (waitress's default, 30 s, would let a dead connection live
up to 50 s)."""
CONNECTION_LIMIT = 500
"""Open connections at once; past this waitress stops accepting (the kernel's backlog queues the
rest) instead of failing. Dead ones cost a socket each until the timeout cuts them, so the limit is
high; it stays under the usual 1,024 open files a process may have, with room for the database and
the connections to Slack."""
MAX_BODY_BYTES = 1 << 20
"""Slack's payloads are small: a slash command is under 1 KB, the largest (a modal submission with
its view, 100 blocks at most) tens of KB. 1 MiB leaves room and refuses anything bigger with 413
before it is read into memory."""
MAX_HEADER_BYTES = 16 << 10
"""Slack sends a dozen short headers; a proxy adds a few ``X-Forwarded-*``. 16 KiB (waitress's default
is 256 KiB) bounds what a client can make the server hold for a request that has not started."""


def sync_job(sources: list[dict], db_path: str) -> None:
    """One scheduled sync of every source; failures are recorded per source and logged, never raised."""
    db = open_db(db_path)
    try:
        for result in sync_sources(db, sources):
            if result.ok:
                log.info("sync %s: %d changed", result.name, result.changed)
            else:
                log.warning("sync %s failed: %s", result.name, "; ".join(result.errors))
        try:  # a cache of what the reads would replay: its failure is no failed sync
            after_sync(db)  # every workspace's replayed flows, then the figures its digests read
        except Exception as exc:  # noqa: BLE001 - one log line; the next sync tries again
            log.warning("replayed flows not stored: %s", error_line(exc))
    finally:
        db.conn.close()


def _need(env: Mapping[str, str], name: str, why: str) -> str:
    value = env.get(name)
    if not value:
        raise VsmError(f"environment variable {name} is not set ({why})")
    return value


@dataclass(frozen=True)
class Slack:
    """How ``vsm serve`` talks to Slack, from the environment (docs/slack.md, "Run it").

    ``bot_token``: one workspace (``SLACK_BOT_TOKEN``, single-workspace mode). ``client_id`` and
    ``client_secret``: installable in any workspace (OAuth, HTTP mode only: Slack's install redirect is
    a browser coming to ``/slack/oauth_redirect``). ``signing_secret``: HTTP mode; ``app_token``:
    Socket Mode."""

    bot_token: str | None = field(default=None, repr=False)  # secrets never in a repr, so never logged
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    app_token: str | None = field(default=None, repr=False)

    @property
    def oauth(self) -> bool:
        return self.client_id is not None


OAUTH_VARS = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")


def slack_env(env: Mapping[str, str], *, http: bool) -> Slack:
    """The Slack settings ``vsm serve`` runs with, or one line saying what is missing or at odds.
    Checked before anything is opened or created: a refusal changes nothing."""
    oauth = [name for name in OAUTH_VARS if env.get(name)]
    if oauth and env.get("SLACK_BOT_TOKEN"):
        raise VsmError(
            f"both SLACK_BOT_TOKEN and {' and '.join(oauth)} are set: set SLACK_BOT_TOKEN to serve one "
            "workspace, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET without it to be installable in any"
        )
    if oauth and not http:
        raise VsmError(
            f"{' and '.join(oauth)} set: installing in other workspaces needs HTTP mode "
            "(`vsm serve --http`), where Slack sends the browser back to /slack/oauth_redirect"
        )
    if oauth:
        return Slack(
            client_id=_need(env, "SLACK_CLIENT_ID", "the app's client id, from Basic Information"),
            client_secret=_need(
                env, "SLACK_CLIENT_SECRET", "the app's client secret, from Basic Information"
            ),
            signing_secret=_need(env, "SLACK_SIGNING_SECRET", "HTTP mode verifies every request's signature"),
        )
    bot_token = _need(env, "SLACK_BOT_TOKEN", "the bot token, xoxb-…")
    if http:
        secret = _need(env, "SLACK_SIGNING_SECRET", "HTTP mode verifies every request's signature")
        return Slack(bot_token=bot_token, signing_secret=secret)
    return Slack(
        bot_token=bot_token, app_token=_need(env, "SLACK_APP_TOKEN", "Socket Mode's app-level token, xapp-…")
    )


def serve(
    cfg: Config,
    db_path: str,
    *,
    http: bool,
    port: int,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
) -> None:
    env = os.environ if env is None else env
    slack = slack_env(env, http=http)
    api_url = env.get("SLACK_API_URL") or cfg.slack_api_url
    scopes = _scopes() if slack.oauth else []  # before any file is touched: a bad manifest stops here
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = open_db(db_path)  # the bot may start before the first sync: it creates the database
    for warning in seed_from_config(db, cfg.teams, cfg.org):
        logging.getLogger("vsm").warning(warning)
    single = len(list_teams(db)) if slack.oauth else 0
    db.conn.close()
    if single:  # set up on SLACK_BOT_TOKEN, or from vsm.toml: no installed workspace's request reads them
        log.warning(
            "%d team(s) of single-workspace mode (SLACK_BOT_TOKEN, vsm.toml's [[team]]) are not served "
            "when installable: `vsm move-workspace T…` hands them to the workspace they belong to",
            single,
        )
    store = Store(db_path)
    client = web_client(slack.bot_token, api_url)  # installable: no token; each workspace's comes from Bolt
    grace, sync_minutes = timedelta(hours=cfg.grace_hours), int(cfg.sync_every_minutes)
    sync = partial(sync_job, cfg.sources, db_path) if cfg.sources else None
    scheduler, app = _build(store, db_path, client, slack, scopes, api_url, grace, sync, sync_minutes)
    # The address is taken before the scheduler starts: a second `vsm serve` on a port in use stops
    # here, before it plans or catches up work against the database the first one serves.
    server = http_server(app, slack.signing_secret or "", host=host, port=port) if http else None
    scheduler.start()
    if server is not None:
        server.run()
    else:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(app, slack.app_token).start()


def _scopes() -> list[str]:
    from bot.installs import manifest_scopes

    return manifest_scopes()


def _build(
    store: Store,
    db_path: str,
    client: WebClient,
    slack: Slack,
    scopes: list[str],
    api_url: str | None,
    grace: timedelta,
    sync: Callable[[], None] | None,
    sync_minutes: int,
) -> tuple[Scheduler, App]:
    """The deployment's one scheduler and its app. A settings save re-plans its team or org, and an
    uninstall stops the workspace's jobs (in single-workspace mode, SINGLE's, until a restart).
    Installable, each adds what :func:`_installable` gives."""
    scheduler_args: dict[str, Any] = {}
    app_args: dict[str, Any] = {}
    if slack.oauth:
        scheduler_args, app_args = _installable(store, db_path, slack, scopes, api_url, lambda: scheduler)
    scheduler = Scheduler(store, client, grace=grace, sync=sync, sync_minutes=sync_minutes, **scheduler_args)
    app = create_app(
        store,
        client,
        signing_secret=slack.signing_secret,
        on_team_saved=scheduler.plan_team,
        on_org_saved=scheduler.plan_org,
        on_uninstalled=scheduler.unplan_workspace,
        **app_args,
    )
    return scheduler, app


def _installable(
    store: Store,
    db_path: str,
    slack: Slack,
    scopes: list[str],
    api_url: str | None,
    scheduler: Callable[[], Scheduler],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What an installable vsm-bot adds to the scheduler's arguments and the app's: the workspaces
    served are those installed (the ``installations`` table), each workspace's digests and nudges go
    with its own bot token, a token Slack calls dead is the uninstall whose event was missed (its
    installation removed and its jobs stopped, as the event would), and an install plans its teams
    at once (a workspace installed again finds its teams and history as it left them). The app
    serves the OAuth flow, and an uninstall removes the workspace's tokens before its jobs stop.
    ``scheduler()``: the scheduler these are for, once built."""
    from bot import installs

    def installed(ws: Workspace) -> None:
        scheduler().plan_workspace(ws)
        teams = len(list_teams(store.db, ws=ws))
        log.info("%s installed: digests and nudges planned for its %d team(s)", shown(ws), teams)

    settings = installs.oauth_settings(
        db_path,
        slack.client_id or "",
        slack.client_secret or "",
        scopes,
        api_url=api_url,
        on_installed=installed,
    )
    authorize: installs.Authorize = settings.authorize
    installations: installs.Installations = settings.installation_store
    uninstall = installs.uninstaller(installations, lambda ws: scheduler().unplan_workspace(ws))

    def workspace_client(ws: Workspace) -> WebClient | None:
        """The workspace's bot client for a scheduled job, its token renewed if due; None when the
        workspace is not installed now (the scheduler then sends nothing). A renewal Slack refuses
        for good is the uninstall whose event was missed (with rotation on, no post meets the dead
        token): the event's path, for the token that expired."""
        try:
            token = authorize.bot_token(ws)
        except installs.TokenRefused as refused:
            log.warning(
                "%s: Slack refuses to renew its token (%s): taken as an uninstall whose event was "
                "missed; the token is removed and its jobs stop (its teams and history stay for a reinstall)",
                shown(ws),
                refused.said,
            )
            uninstall(ws, token=refused.token)
            return None
        return web_client(token, api_url) if token else None

    def dead_token(ws: Workspace, token: str | None) -> bool:
        """A post refused with a dead-token error is the uninstall whose event was missed only when
        Slack confirms it (``auth.test`` on the stored token): ``invalid_auth`` is also Slack's answer
        to an IP allowlist, or for a while in an incident, and removing a live workspace's tokens
        would make it reinstall by hand. False when not confirmed (the scheduler asks again on the
        next failure); nothing to do when the event's own path removed it already."""
        if installations.find_workspace(ws) is None:
            return True
        if installs.token_dead(store, ws, api_url) is not True:
            log.warning("%s: Slack's auth.test does not confirm its token dead: kept", shown(ws))
            return False
        log.warning(
            "%s: its bot token is dead: taken as an uninstall whose event was missed; the token is "
            "removed and its jobs stop (its teams and history stay for a reinstall)",
            shown(ws),
        )
        uninstall(ws, token=token)
        return True

    return (
        {"clients": workspace_client, "workspaces": installations.workspaces, "on_dead_token": dead_token},
        {"oauth_flow": installs.oauth_flow(settings, api_url)},
    )


def _timestamp_ok(value: str | None) -> bool:
    """Slack's ``X-Slack-Request-Timestamp`` is Unix seconds in ASCII digits. Bolt's verifier calls
    ``int()`` on it, so anything else (``abc``, ``²``, ``1e9``) raised inside Bolt and came back as a
    500 with a traceback; the front refuses it instead, as the unsigned request it is."""
    return value is not None and 0 < len(value) <= 12 and value.isascii() and value.isdigit()


def _one_line(text: str, limit: int = 100) -> str:
    """A client-chosen string (a path) as it may go into a log line: quoted, cut, no line breaks."""
    return repr(text[:limit])


_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def _signed(environ: dict, verifier: Any) -> bool:
    """Whether Slack signed the request's body; the body is put back for Bolt to read.

    Bolt parses a request's body (form, JSON payload, its team and enterprise ids) before it checks
    the signature, and some shapes no Slack request has (``payload=[1,2]``, ``"team": 5``) raise in
    that parsing: an unsigned request could make the server answer 500. Checked here first, nothing
    unsigned is parsed at all."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    signature = environ.get("HTTP_X_SLACK_SIGNATURE") or ""
    if not _SIGNATURE.fullmatch(signature):  # hmac.compare_digest raises on non-ASCII text
        return False
    return verifier.is_valid(body, environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"), signature)


def wsgi_app(app: App, signing_secret: str, path: str = EVENTS_PATH) -> Callable[..., Iterable[bytes]]:
    """The WSGI application HTTP mode serves: only ``POST path`` reaches the Bolt app, anything else
    is a 404, and only a request Slack signed is parsed. Every refusal is one log line with the
    client's address, never a header value or the body (a slash command's body carries Slack's
    legacy verification ``token``)."""
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk.signature import SignatureVerifier

    bolt = SlackRequestHandler(app, path=path)
    verifier = SignatureVerifier(signing_secret)
    # Bolt's verifier logs a refused request's signature, timestamp and whole body at INFO: the one
    # line below says what matters without them.
    logging.getLogger("slack_bolt.RequestVerification").setLevel(logging.WARNING)

    def answer(start_response: Callable[..., Any], status: str) -> list[bytes]:
        body = status.encode()
        start_response(
            status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        )
        return [body]

    def application(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, where = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        client = environ.get("REMOTE_ADDR", "?")
        if method != "POST" or where != path:
            log.info("404 %s %s from %s", _one_line(method, 10), _one_line(where), client)
            return answer(start_response, "404 Not Found")
        if not _timestamp_ok(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")):
            log.warning("401 from %s: X-Slack-Request-Timestamp missing or not a number", client)
            return answer(start_response, "401 Unauthorized")
        if not _signed(environ, verifier):
            log.warning("401 from %s: bad signature, or a timestamp more than 5 minutes off", client)
            return answer(start_response, "401 Unauthorized")
        try:
            return bolt(environ, start_response)
        except Exception as e:  # Bolt answers its listeners' errors itself: this is a signed body
            # whose shape Bolt's parser does not take (Slack sends none such)
            log.error("400 from %s: %s: %s", client, type(e).__name__, " ".join(str(e).split())[:200])
            return answer(start_response, "400 Bad Request")

    return application


def http_server(app: App, signing_secret: str, *, host: str, port: int) -> Any:
    """Waitress serving :func:`wsgi_app` on ``host:port`` (and, for an installable app, the install
    page and Slack's redirect: ``bot.installs.with_install_pages``); ``.run()`` serves until the process
    ends.
    Bolt's ``App.start`` is a development server that handles one connection at a time, so one idle
    or half-sent connection stalled every other request (docs/slack.md, "Run it")."""
    from waitress.server import create_server

    application = wsgi_app(app, signing_secret)
    paths = [EVENTS_PATH]
    if app.oauth_flow is not None:  # installable: the browser's install page and Slack's redirect too
        from bot.installs import with_install_pages

        application = with_install_pages(app, application)
        paths += [app.oauth_flow.install_path, app.oauth_flow.redirect_uri_path]
    try:
        server = create_server(
            application,
            host=host,
            port=port,
            threads=THREADS,
            channel_timeout=CHANNEL_TIMEOUT_S,
            cleanup_interval=CLEANUP_INTERVAL_S,
            connection_limit=CONNECTION_LIMIT,
            max_request_body_size=MAX_BODY_BYTES,
            max_request_header_size=MAX_HEADER_BYTES,
            asyncore_use_poll=True,  # select() cannot watch a descriptor numbered 1,024 or more
            expose_tracebacks=False,
            ident="vsm-bot",
        )
    except (OSError, ValueError) as exc:  # in use, not ours to bind, or a host that does not resolve
        raise VsmError(f"cannot listen on {host}:{port}: {exc}") from exc
    # A host that resolves to several addresses (localhost: IPv4 and IPv6) gets one socket each.
    where = ", ".join(
        f"{h}:{p}" for h, p in getattr(server, "effective_listen", [(host, server.effective_port)])
    )
    log.info(
        "serving Slack requests on %s, %s %s", where, "paths" if len(paths) > 1 else "path", ", ".join(paths)
    )
    return server
