"""Installing vsm-bot in any workspace: Slack's OAuth v2 through Bolt, installations and OAuth states
kept in the project's database (issue 14).

Served by ``vsm serve --http`` when ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` are set (bot/serve.py):
the flow, its pages and its two stores (tests/test_oauth_flow.py), and what the rest of the app asks of
an installation by workspace (``metrics.workspace``): which workspaces are installed
(:meth:`Installations.workspaces`, the scheduler's list), a workspace's bot token for work no request
started (:meth:`Authorize.bot_token`, the scheduler's digests, renewed as a request's would be), and
its tokens forgotten when Slack says it uninstalled (:func:`uninstaller`: the ``app_uninstalled`` event,
or a scheduled job's call refused with a dead token when the event was missed; :func:`token_dead` asks
Slack the same for ``vsm forget-workspace``).

Why our own stores and not slack_sdk's ``SQLite3InstallationStore``/``SQLite3OAuthStateStore`` on the
same file (they would have worked as far as WAL, the file's 0600 mode and the read-only commands go):

- Their ``consume`` reads a state, then deletes it in a second statement: two redirects carrying the
  same state at once can both pass. Ours is one ``DELETE`` whose row count says whether it was there,
  so a state is consumed exactly once.
- Their stores append a row per save and read the newest: every token rotation (every 12 hours per
  workspace) leaves the replaced token and refresh token in the file for ever, and an uninstall must
  find them all. Ours keeps one row per workspace; a rotation replaces the token in place.
- Their tables are created on first use, outside the project's migrations, and a store error (a busy
  database) is logged and read as "not installed". Ours are migration m011, opened through
  ``bot.store.Store`` (WAL, busy timeout, one connection per thread), and an error is an error.

No user token is stored: vsm-bot asks for bot scopes only (manifest.yml), so an installation is a
workspace's bot token, its refresh token and when it expires.

Token rotation: Slack revokes a refresh token once it is used, so a workspace's token is renewed once,
however many requests find it expiring at the same moment (:class:`Authorize`: a lock per app and
workspace, the stored row read again inside it; a request that waited uses the token the first one
stored). The lock is this process's: one ``vsm serve`` serves a database. If Slack renews but the new
tokens cannot be saved, they are kept in this process's memory, used, and saved again on the
workspace's next request (the old refresh token no longer works: losing them would lose the workspace).

Slack unreachable or in trouble (a 5xx, rate limited, its own error codes): the code exchange ends on a
page saying to try again in a minute (:class:`Flow`), not on one blaming the credentials, which is kept
for Slack refusing them; a renewal that cannot reach Slack goes on with the current token while it is
still valid (renewal starts two hours early).

A request from a workspace with no usable installation (uninstalled, a renewal refused) is told so in
the shape its kind takes (:func:`not_installed_answer`: under a modal's first field, say). Every page
of the flow is ``Cache-Control: no-store``.

The install page writes a one-time state for each ``GET``, from anyone: it waits at most
``STATE_BUSY_MS`` for the database (not the store's 30 s) and, if a long write holds it, answers a page
asking to try again in a minute (HTTP 503) rather than holding a server thread.
"""

from __future__ import annotations

import html
import http.client
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils
from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_bolt.error import BoltError
from slack_bolt.oauth import OAuthFlow
from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackTokenRotationError
from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore

from bot.payload import obj
from bot.store import Store
from metrics import workspace_rows
from metrics.errors import VsmError, error_line
from metrics.store.tx import transaction
from metrics.workspace import Workspace, shown, workspace_of
from metrics.workspace_rows import INSTALLED_AS

log = logging.getLogger("vsm.installs")

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
SOURCE_MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"
"""The app manifest at the top of a checkout, the file an operator pastes into Slack."""
STATE_SECONDS = 600
"""An install link is good for ten minutes (Bolt's default, and the life of Slack's own code)."""
ROTATE_MINUTES = 120
"""A rotating token is renewed when it has less than this left (Slack's tokens live 12 hours): Bolt
renews it on the request that finds it so, before the listener runs."""
API_TIMEOUT_S = 10
"""The code exchange and a token's renewal wait this long for Slack. The client has no rate-limit
retry: a renewal runs before a request's ack, where no sleep belongs (SLACK.md)."""
STATE_BUSY_MS = 2000
"""The install page waits this long for the database to write its state, then says it is busy."""
NO_STORE = "no-store"
"""``Cache-Control`` of the install page (its link carries a one-time state) and of the pages the flow
ends on (what happened to one install): no browser or proxy keeps them."""
NOT_INSTALLED = (
    "vsm-bot cannot act in this workspace: it is not installed here any more, or could not renew its "
    "access with Slack just now. Try again in a minute; if it goes on, ask whoever runs vsm-bot for the "
    "install link and install it again."
)
"""What Slack shows a user whose workspace has no installation (``App(user_facing_authorize_error_message=...)``)."""
NOT_INSTALLED_SHORT = (
    "vsm-bot is not installed here any more, or could not renew its access with Slack. Try again in a "
    "minute, or ask for its install link."
)
"""The same, under a form's field (Slack shows at most about 150 characters there)."""


def manifest_path() -> Path:
    """manifest.yml: in an installed wheel, the copy inside the package (``bot.app_manifest``, see
    pyproject.toml), since nothing beside the package is installed; in a checkout, the top-level one
    (``bot/app_manifest/manifest.yml`` is a symbolic link to it, which a checkout without symbolic
    links holds as a line of text)."""
    from importlib.resources import files

    try:
        packaged = files("bot.app_manifest") / "manifest.yml"
    except ModuleNotFoundError:  # a checkout whose editable install predates the packaged copy
        return SOURCE_MANIFEST
    if not packaged.is_file() or "oauth_config" not in packaged.read_text(encoding="utf-8"):
        return SOURCE_MANIFEST  # no copy, or a checkout without symbolic links: the link's text only
    return Path(str(packaged))


def manifest_scopes(path: Path | None = None) -> list[str]:
    """The bot scopes of ``oauth_config.scopes.bot`` in manifest.yml: the one list, shared by the app
    Slack runs and the install link, so neither asks for more or less than the other.

    Read line by line, as the tests read the manifest (no YAML library is a dependency): the ``bot:``
    key under ``scopes:`` under ``oauth_config:``, then its ``- scope  # why`` items."""
    path = manifest_path() if path is None else path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise VsmError(f"cannot read the app manifest {path}: {exc.strerror}") from exc
    keys = ["oauth_config", "scopes", "bot"]
    scopes: list[str] = []
    depth = -1  # the indentation of the last key matched
    for line in lines:
        text = line.split("#", 1)[0].rstrip()
        if not text.strip():
            continue
        indent = len(text) - len(text.lstrip())
        if not keys:  # inside bot:
            item = re.fullmatch(r"\s*-\s*([a-z:._-]+)", text)
            if indent <= depth or item is None:
                break
            scopes.append(item.group(1))
        elif text.strip() == f"{keys[0]}:" and indent > depth:
            keys.pop(0)
            depth = indent
    if not scopes:
        raise VsmError(f"the app manifest {path} lists no bot scopes under oauth_config.scopes.bot")
    return scopes


KEY = ("client_id", "enterprise_id", "team_id")
"""The primary key of the ``installations`` table (m011)."""
_WHERE = " and ".join(f"{k} = :{k}" for k in KEY)
"""One workspace's row, with :meth:`Installations._key` as its parameters."""


class Installations(InstallationStore):
    """slack_sdk's ``InstallationStore`` on the ``installations`` table: one row per app (client id)
    and workspace (enterprise id, team id; ``""`` for none, as slack_sdk's own stores key them)."""

    def __init__(self, store: Store, client_id: str) -> None:
        self.store = store
        self.client_id = client_id

    @property
    def logger(self) -> logging.Logger:
        return log

    def _key(self, enterprise_id: str | None, team_id: str | None, org_wide: bool | None) -> dict:
        return {
            "client_id": self.client_id,
            "enterprise_id": enterprise_id or "",
            "team_id": "" if org_wide else team_id or "",
        }

    def save(self, installation: Installation) -> None:
        """A new installation or a renewed token: the workspace's row is replaced, the old token with
        it. A failure is Bolt's ``BoltError``, which its flow answers with the failure page."""
        if not installation.bot_token:
            raise BoltError("the installation has no bot token (vsm-bot asks for bot scopes only)")
        row = {
            **self._key(installation.enterprise_id, installation.team_id, installation.is_enterprise_install),
            "app_id": installation.app_id,
            "enterprise_name": installation.enterprise_name,
            "enterprise_url": installation.enterprise_url,
            "team_name": installation.team_name,
            "user_id": installation.user_id,
            "is_enterprise_install": int(bool(installation.is_enterprise_install)),
            "token_type": installation.token_type,
            "installed_at": float(installation.installed_at),
            **self._bot_columns(installation.to_bot()),
        }
        self._write(lambda db: db["installations"].upsert(row, pk=KEY))

    def save_bot(self, bot: Bot) -> None:
        """A renewed bot token where Bolt reads bots only (``installation_store_bot_only``): the
        workspace's token columns, on its row (a bot with no installation row is not stored)."""
        key = self._key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        columns = self._bot_columns(bot)
        sets = ", ".join(f"{k} = :{k}" for k in columns)
        self._write(
            lambda db: db.execute(f"update installations set {sets} where {_WHERE}", {**columns, **key})
        )

    @staticmethod
    def _bot_columns(bot: Bot) -> dict:
        return {
            "bot_token": bot.bot_token,
            "bot_id": bot.bot_id,
            "bot_user_id": bot.bot_user_id,
            "bot_scopes": ",".join(bot.bot_scopes or []),
            "bot_refresh_token": bot.bot_refresh_token,
            "bot_token_expires_at": bot.bot_token_expires_at,
        }

    def _write(self, write: Callable[[Any], object]) -> None:
        try:
            with transaction(self.store.db):
                write(self.store.db)
        except sqlite3.Error as exc:
            raise BoltError(f"the installation could not be saved: {type(exc).__name__}: {exc}") from exc

    def _row(self, enterprise_id: str | None, team_id: str | None, org_wide: bool | None) -> dict | None:
        key = self._key(enterprise_id, team_id, org_wide)
        rows = list(self.store.db.query(f"select * from installations where {_WHERE}", key))
        return rows[0] if rows else None

    # A workspace (metrics.workspace) and its rows: ``T…`` is a workspace installed on its own (its
    # team id; an enterprise id too on a Grid), ``E…`` an org-wide Grid installation (no team id). The
    # one SQL spelling of ``workspace_of`` (metrics.workspace_rows, which vsm's commands read too).
    _OF_WORKSPACE = f"client_id = :client_id and {INSTALLED_AS} = :ws"

    def workspaces(self) -> list[Workspace]:
        """Every workspace installed now, by its key: the workspaces the scheduler serves. A row whose
        ids make no workspace (none is written so) is left out, with a log line."""
        found: set[Workspace] = set()
        rows = self.store.db.query(
            "select enterprise_id, team_id, is_enterprise_install from installations where client_id = ?",
            [self.client_id],
        )
        for row in rows:
            try:
                found.add(
                    workspace_of(
                        row["enterprise_id"] or None,
                        row["team_id"] or None,
                        bool(row["is_enterprise_install"]),
                    )
                )
            except VsmError as exc:
                log.error("an installation row names no workspace: %s", exc)
        return sorted(found)

    def find_workspace(self, ws: Workspace) -> Installation | None:
        """The installation that serves ``ws``, or None when it is not installed (the newest, should a
        workspace have been installed both before and after joining a Grid)."""
        rows = list(
            self.store.db.query(
                f"select enterprise_id, team_id, is_enterprise_install from installations "
                f"where {self._OF_WORKSPACE} order by installed_at desc limit 1",
                {"client_id": self.client_id, "ws": ws},
            )
        )
        if not rows:
            return None
        r = rows[0]
        return self.find_installation(
            enterprise_id=r["enterprise_id"] or None,
            team_id=r["team_id"] or None,
            is_enterprise_install=bool(r["is_enterprise_install"]),
        )

    def forget(self, ws: Workspace, *, before: float | None = None, token: str | None = None) -> int:
        """Slack says ``ws`` uninstalled the app or revoked its bot token: its tokens go (every row of
        it), so nothing is sent there with them again. Its teams and history are not here and stay.
        ``before``: only rows installed at or before that time (the uninstall event's ``event_time``),
        so a late redelivery of an old event after a quick reinstall leaves the new tokens alone.
        ``token``: only the row still holding that bot token (the one Slack called dead). Returns how
        many rows went; one log line either way."""
        deleted = 0
        where = self._OF_WORKSPACE
        if before is not None:
            # Slack stamps event_time in whole seconds (rounded down): an install within that second
            # is one the event may be about.
            where += " and installed_at < :before + 1"
        if token is not None:
            where += " and bot_token = :token"
        args = {"client_id": self.client_id, "ws": ws, "before": before, "token": token}

        def delete(db: Any) -> None:
            nonlocal deleted
            deleted = db.execute(f"delete from installations where {where}", args).rowcount

        self._write(delete)
        if deleted:
            log.info(
                "%s: tokens removed (%d installation%s)", shown(ws), deleted, "" if deleted == 1 else "s"
            )
        elif self.find_workspace(ws) is not None:
            log.info("%s: no tokens removed: installed again since (its installation is newer)", shown(ws))
        else:
            log.info("%s: no tokens removed: none stored", shown(ws))
        return deleted

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The workspace's installation; asked for one user's, the installer's only (no other user
        ever installed: vsm-bot has no user scopes)."""
        row = self._row(enterprise_id, team_id, is_enterprise_install)
        if row is None or (user_id is not None and user_id != row["user_id"]):
            return None
        return Installation(
            app_id=row["app_id"],
            enterprise_id=row["enterprise_id"] or None,
            enterprise_name=row["enterprise_name"],
            enterprise_url=row["enterprise_url"],
            team_id=row["team_id"] or None,
            team_name=row["team_name"],
            bot_token=row["bot_token"],
            bot_id=row["bot_id"],
            bot_user_id=row["bot_user_id"],
            bot_scopes=row["bot_scopes"] or "",
            bot_refresh_token=row["bot_refresh_token"],
            bot_token_expires_at=row["bot_token_expires_at"],
            user_id=row["user_id"],
            is_enterprise_install=bool(row["is_enterprise_install"]),
            token_type=row["token_type"],
            installed_at=row["installed_at"],
        )

    def find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        found = self.find_installation(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        return found.to_bot() if found is not None else None

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """slack_sdk's ``InstallationStore`` interface (Bolt's token revocation listeners call it; vsm-bot
        does not enable them: its own listener, bot/listeners/events/uninstall.py, calls
        :func:`uninstaller`). Routed through :meth:`forget`: the workspace's own row, or, for a Grid
        workspace with none, its enterprise's org-wide row, which Slack's ids alone do not tell apart
        (a row without its bot token serves nothing)."""
        removed = self.forget(Workspace(team_id)) if team_id else 0
        if not removed and enterprise_id:
            self.forget(Workspace(enterprise_id))

    def delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """slack_sdk's interface, as :meth:`delete_bot`: the workspace's installation; one user's (a
        revoked user token) is nothing to delete, since no user token is stored."""
        if user_id is None:
            self.delete_bot(enterprise_id=enterprise_id, team_id=team_id)


def uninstaller(installations: Installations, stop: Callable[[Workspace], None]) -> Callable[..., int]:
    """What Slack's uninstall means to an installable vsm-bot, whoever learns of it: the
    ``app_uninstalled``/``tokens_revoked`` listener (``before``: the event's time) or the scheduler
    finding the workspace's token dead (``token``: the one Slack refused; the event was missed).
    ``ws``'s installations go (:meth:`Installations.forget`), then ``stop(ws)`` (the scheduler's
    ``unplan_workspace``), which runs even when the removal fails. When nothing was removed because
    ``ws`` is installed again since, its jobs stay: the reinstall planned them. Returns the rows
    removed."""

    def uninstalled(ws: Workspace, *, before: float | None = None, token: str | None = None) -> int:
        try:
            removed = installations.forget(ws, before=before, token=token)
        except Exception:
            stop(ws)
            raise
        if removed == 0 and installations.find_workspace(ws) is not None:
            return 0  # forget said so
        stop(ws)
        return removed

    return uninstalled


def not_installed_answer(
    req: BoltRequest, answer: BoltResponse, message: str = NOT_INSTALLED
) -> BoltResponse:
    """Bolt's answer to a request from a workspace with no usable installation, in the shape Slack
    accepts for the request's kind; any other ``answer`` unchanged.

    Bolt's authorisation (``MultiTeamsAuthorization``) sends ``message`` to the request's
    ``response_url`` when it has one (a command, a click in a message: kept), and otherwise answers it
    as a 200 ``text/plain`` body, which a modal's submission cannot take: Slack wants an empty or JSON
    body there, and showed the user a generic error. So, for the request Bolt did not authorise:

    - ``view_submission``: the message under the form's first input (what the user typed stays, to
      submit again in a minute), or, for a form with no input, the form replaced by the message;
    - ``view_closed``: an empty 200 (Slack reads no answer);
    - ``block_suggestion`` (an external select's options): no options.

    Bolt's middlewares cannot rewrite an answer on its way back (``next()`` runs nothing), so the app
    applies this to what its ``dispatch`` returns (bot.app)."""
    if req.context.authorize_result is not None or answer.status != 200 or answer.body != message:
        return answer  # authorised (a listener answered), told at its response_url, or not Bolt's refusal
    body = obj(req.body)
    kind = body.get("type")
    if kind == "view_submission":
        return BoltResponse(status=200, body=_on_form(obj(body.get("view")), message))
    if kind == "view_closed":
        return BoltResponse(status=200, body="")
    if kind == "block_suggestion":
        return BoltResponse(status=200, body={"options": []})
    return answer


def _on_form(view: dict, message: str) -> dict:
    blocks = view.get("blocks")
    for block in blocks if isinstance(blocks, list) else []:
        block = obj(block)
        if block.get("type") == "input" and isinstance(block.get("block_id"), str):
            return {"response_action": "errors", "errors": {block["block_id"]: NOT_INSTALLED_SHORT}}
    return {
        "response_action": "update",
        "view": {
            "type": "modal",
            "title": {"type": "plain_text", "text": "vsm-bot"},
            "close": {"type": "plain_text", "text": "Close"},
            "blocks": [{"type": "section", "text": {"type": "plain_text", "text": message}}],
        },
    }


class Busy(Exception):
    """The database stayed locked longer than the install page waits (``STATE_BUSY_MS``)."""


class OAuthStates(OAuthStateStore):
    """slack_sdk's ``OAuthStateStore`` on the ``oauth_states`` table: a state is issued with the
    install page and consumed once by the redirect that carries it."""

    def __init__(self, store: Store, expiration_seconds: int = STATE_SECONDS) -> None:
        self.store = store
        self.expiration_seconds = expiration_seconds

    @property
    def logger(self) -> logging.Logger:
        return log

    def issue(self, *args: Any, **kwargs: Any) -> str:
        """A new unguessable state. Expired ones are cleared on the way: anyone may open the install
        page, so the table holds at most the states of the last ten minutes."""
        state = secrets.token_urlsafe(24)
        now = time.time()
        db = self.store.db
        # Anyone may GET the install page: a long write elsewhere must not hold one server thread per
        # GET for the store's 30 s busy wait. A short wait, then Busy (the flow's "try again" page).
        waited = db.execute("pragma busy_timeout").fetchone()[0]
        db.execute(f"pragma busy_timeout = {int(STATE_BUSY_MS)}")
        try:
            with transaction(db):
                db.execute("delete from oauth_states where expires <= ?", [now])
                db.execute(
                    "insert into oauth_states (state, expires) values (?, ?)",
                    [state, now + self.expiration_seconds],
                )
        except sqlite3.OperationalError as exc:
            raise Busy(f"the database is busy: {exc}") from exc
        finally:
            db.execute(f"pragma busy_timeout = {int(waited)}")
        return state

    def consume(self, state: str) -> bool:
        """True once for a state issued and not expired: one ``DELETE``, so two redirects racing
        with the same state cannot both pass."""
        db = self.store.db
        with transaction(db):
            cursor = db.execute(
                "delete from oauth_states where state = ? and expires > ?", [state, time.time()]
            )
        return cursor.rowcount == 1


# The pages a browser sees at the end of the flow: what happened, and what to do next.
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vsm-bot: {title}</title>
<link rel="icon" href="data:,"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto; line-height: 1.5">
<h1>{title}</h1>
{body}
</body></html>
"""
_AGAIN = f'<p><a href="{INSTALL_PATH}">Start the installation again</a>.</p>'
_FAILURES: dict[str, tuple[str, str]] = {
    "access_denied": (
        "Installation cancelled",
        "<p>You cancelled the installation in Slack: nothing was installed.</p>" + _AGAIN,
    ),
    "invalid_browser": (
        "This install link did not start here",
        "<p>The installation did not start in this browser (or the browser refused its cookie), so it "
        "cannot be finished here: nothing was installed.</p>" + _AGAIN,
    ),
    "invalid_state": (
        "This install link has expired",
        "<p>This install link was already used, or is more than ten minutes old: nothing was "
        "installed.</p>" + _AGAIN,
    ),
    "missing_code": (
        "Slack sent no authorisation",
        "<p>Slack came back without an authorisation code: nothing was installed.</p>" + _AGAIN,
    ),
    "invalid_code": (
        "This authorisation has expired",
        "<p>Slack did not accept the authorisation it sent back: it was already used, or it is more "
        "than ten minutes old. Nothing was installed.</p>" + _AGAIN,
    ),
    "app_settings": (
        "vsm-bot is not set up to be installed",
        "<p>Slack refused vsm-bot's own settings (its client id or secret, or its redirect URL, do not "
        "match its Slack app): nothing was installed, and trying again will not help until they are "
        "put right. Tell whoever runs vsm-bot.</p>",
    ),
    "slack_trouble": (
        "Slack could not complete the install just now",
        "<p>Slack could not complete the install just now: try again in a minute. Nothing was "
        "installed.</p>" + _AGAIN,
    ),
    "slack_unreachable": (
        "Slack could not be reached",
        "<p>vsm-bot could not reach Slack to finish the installation: nothing was installed. "
        "Start again; if it fails again, tell whoever runs vsm-bot.</p>" + _AGAIN,
    ),
    "storage_error": (
        "The installation could not be saved",
        "<p>Slack authorised vsm-bot, but it could not save the installation: nothing was installed. "
        "Try again; if it fails again, tell whoever runs vsm-bot.</p>" + _AGAIN,
    ),
}


def _page(
    status: int, title: str, body: str, args: SuccessArgs | FailureArgs, **headers: str
) -> BoltResponse:
    return BoltResponse(
        status=status,
        body=_PAGE.format(title=html.escape(title), body=body),
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": NO_STORE,
            # The one-time state's cookie has done its work, whichever way it went.
            "Set-Cookie": args.settings.state_utils.build_set_cookie_for_deletion(),
            **headers,
        },
    )


def install_page_html(url: str) -> str:
    """The install page: what vsm-bot is, and Slack's "Add to Slack" button to ``url`` (Slack's
    authorize page, with this page's one-time state). Bolt's own page is titled "Slack App
    Installation", which names no app."""
    body = (
        "<p>vsm-bot posts each team's value-stream metrics, mined from the team's own tools, to the "
        "team's Slack channel: team-level only, never per person. Add it to your workspace:</p>"
        f'<p><a href="{html.escape(url)}"><img alt="Add to Slack" height="40" width="139" '
        'src="https://platform.slack-edge.com/img/add_to_slack.png" '
        'srcset="https://platform.slack-edge.com/img/add_to_slack.png 1x, '
        'https://platform.slack-edge.com/img/add_to_slack@2x.png 2x"></a></p>'
        "<p>This link works once, for ten minutes.</p>"
    )
    return _PAGE.format(title="Install vsm-bot", body=body)


def busy_page() -> BoltResponse:
    """The install page when the database is held by a long write: try again, nothing issued."""
    body = "<p>vsm-bot is busy for a moment and could not start the installation.</p>" + _AGAIN.replace(
        "Start the installation again", "Try again in a minute"
    )
    return BoltResponse(
        status=503,
        body=_PAGE.format(title="vsm-bot is busy", body=body),
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": NO_STORE, "Retry-After": "60"},
    )


def _where(enterprise_id: str | None, team_id: str | None) -> str:
    return f"team {team_id or '-'}" + (f", enterprise {enterprise_id}" if enterprise_id else "")


def success_page(args: SuccessArgs) -> BoltResponse:
    """The workspace that was installed, and the next step there."""
    i = args.installation
    log.info("installed in %s", _where(i.enterprise_id, i.team_id))
    name = html.escape(i.team_name or i.enterprise_name or i.team_id or "your workspace")
    body = (
        f"<p>vsm-bot is installed in <b>{name}</b>.</p>"
        "<p>Next: invite <b>@vsm-bot</b> to your team's channel and type <code>/vsm settings</code> "
        "there to choose your team's metrics and digest.</p>"
    )
    return _page(200, "vsm-bot is installed", body, args)


def _installed(on_installed: Callable[[Workspace], None]) -> Callable[[SuccessArgs], BoltResponse]:
    """The success page, once ``on_installed`` was told the workspace (the scheduler plans its digests
    and nudges: a workspace installed again finds its teams as it left them). The installation is saved
    whatever it does: a failure there is one log line, and the page still says installed."""

    def success(args: SuccessArgs) -> BoltResponse:
        i = args.installation
        try:
            on_installed(workspace_of(i.enterprise_id, i.team_id, i.is_enterprise_install))
        except Exception as exc:  # noqa: BLE001 - the install itself succeeded
            log.error(
                "installed in %s, but its digests and nudges were not planned: %s",
                _where(i.enterprise_id, i.team_id),
                error_line(exc),
            )
        return success_page(args)

    return success


def failure_page(args: FailureArgs) -> BoltResponse:
    """Why nothing was installed, in words, with the way to start again. The log line has the reason
    only: never the code, the state or a token (the query string carries the first two)."""
    title, body = _FAILURES.get(
        args.reason,
        (
            "Slack stopped the installation",
            f"<p>Slack answered <code>{html.escape(args.reason[:100])}</code>: nothing was installed.</p>"
            + _AGAIN,
        ),
    )
    error = f": {type(args.error).__name__}" if args.error else ""
    log.warning("install failed (%s%s): HTTP %d", repr(args.reason[:100]), error, args.suggested_status_code)
    if args.reason == "slack_trouble":
        wait = getattr(args.error, "retry_after", None) or 60
        return _page(args.suggested_status_code, title, body, args, **{"Retry-After": str(wait)})
    return _page(args.suggested_status_code, title, body, args)


class _NoCode(logging.Filter):
    """Bolt's flow logs a failed code exchange with the code itself; the line is put in words here
    with Slack's error code only (the code is single-use, but a log is no place for credentials).
    :class:`Flow` keeps Slack's errors from that path (its own line names the call and what Slack
    said): this stays should a Bolt upgrade log the code elsewhere in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Failed to fetch oauth.v2.access result"):
            said = re.search(r"'error': '([A-Za-z0-9_.-]{1,80})'", message)
            record.msg, record.args = "oauth.v2.access failed: %s", (said.group(1) if said else "?",)
        return True


_FLOW_LOG = logging.getLogger("vsm.installs.flow")
_FLOW_LOG.addFilter(_NoCode())


class _Unreachable(logging.Filter):
    """slack_sdk logs each failed connection at ERROR; every caller here says what failed, in one line
    of its own (the exchange's page, a renewal going on with the current token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to send a request to Slack API server")


_API_LOG = logging.getLogger("vsm.installs.api")
_API_LOG.setLevel(logging.INFO)  # slack_sdk logs whole responses at DEBUG: here, new tokens
_API_LOG.addFilter(_Unreachable())

_NETWORK = (OSError, http.client.HTTPException, SlackClientError)
"""What a call to Slack raises when Slack cannot be reached, times out or answers garbage (URLError and
socket timeouts are OSErrors). ``SlackApiError`` is Slack's answer, handled where it is expected."""


class _SlackUnreachable(Exception):
    pass


CONFIRMED_DEAD = frozenset({"account_inactive", "token_revoked"})
"""What Slack answers only for a token that is gone (its app uninstalled, or the token revoked): what
confirms a dead token before anything is deleted. Not ``invalid_auth``, which is also Slack's answer to
a call from outside the workspace's IP allowlist (an operator's laptop, say) or, for a while, in an
incident; nor ``not_authed`` (no token sent)."""

REFRESH_REFUSED = frozenset({"invalid_refresh_token", *CONFIRMED_DEAD})
"""Slack's answers to a renewal that no retry will change: the refresh token was revoked with the app
(uninstalled, or its tokens revoked) or the workspace is gone. Every renewal is made once per
workspace under its lock, so a refresh token is never spent twice here."""


class TokenRefused(Exception):
    """``Authorize.bot_token``: Slack refused to renew ``ws``'s token for good (``REFRESH_REFUSED``):
    with token rotation on, the uninstall whose event was missed shows here, not on a post, since no
    post is made without a live token. ``token``: the stored (expired) bot token; never shown."""

    def __init__(self, ws: Workspace, token: str, said: str) -> None:
        super().__init__(f"{shown(ws)}: Slack refused to renew its token ({said})")
        self.ws, self.token, self.said = ws, token, said


def _said(exc: SlackTokenRotationError) -> str:
    """Slack's error code for a refused renewal: never the exception's text, which holds the response."""
    response = getattr(exc.api_error, "response", None)
    error = response.get("error") if hasattr(response, "get") else None  # a SlackResponse or a dict
    return str(error)[:80] if error else type(exc.api_error).__name__


class _SlackSaid(Exception):
    """Slack answered a call of the code exchange (``oauth.v2.access``, then ``auth.test`` on the new
    token) with an error. Raised by the exchange's client (:class:`_ExchangeClient`) in place of
    ``SlackApiError``, which Bolt's ``run_installation`` catches and turns into ``invalid_code``
    whatever Slack said: an HTTP 500 or ``ratelimited`` then blamed the app's credentials."""

    def __init__(self, method: str, response: Any) -> None:
        super().__init__(method)
        self.method = method
        self.status = int(getattr(response, "status_code", 0) or 0)
        error = response.get("error") if hasattr(response, "get") else None
        # Slack's codes are short snake_case words; a body that was no JSON comes back as a sentence
        # quoting it, which says nothing more than the status does.
        self.error = error if isinstance(error, str) and re.fullmatch(r"[a-z0-9_.]{1,60}", error) else None
        headers = getattr(response, "headers", None) or {}
        wait = next((str(v) for k, v in headers.items() if str(k).lower() == "retry-after"), "")
        self.retry_after = int(wait) if wait.isdigit() and 0 < int(wait) <= 3600 else None

    def said(self) -> str:
        """What Slack answered, for a log line: its error code, its HTTP status when not 200."""
        status = f"HTTP {self.status}" if self.status != 200 else ""
        if self.error and status:
            return f"{self.error} ({status})"
        return self.error or status or "no answer"


class _ExchangeClient(WebClient):
    """The code exchange's client: an error answer raised as :class:`_SlackSaid` (see there)."""

    def api_call(self, api_method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().api_call(api_method, *args, **kwargs)
        except SlackApiError as exc:
            raise _SlackSaid(api_method, exc.response) from exc


SLACK_TROUBLE = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
"""Slack's own trouble (with any HTTP 5xx or 429): the install is worth trying again in a minute."""
APP_SETTINGS = frozenset(
    {"bad_client_secret", "invalid_client_id", "bad_redirect_uri", "oauth_authorization_url_mismatch"}
)
"""Slack refusing vsm-bot's own settings: the client id or secret, or the redirect URL, do not match
the Slack app's. No installer can fix that; whoever runs vsm-bot must."""


def _refusal(said: _SlackSaid) -> tuple[str, int]:
    """The failure page's reason and HTTP status for what Slack answered the exchange."""
    if said.status >= 500 or said.status == 429 or said.error in SLACK_TROUBLE:
        busy = said.status in (429, 503) or said.error in ("ratelimited", "service_unavailable")
        return "slack_trouble", 503 if busy else 502
    if said.error == "invalid_code":
        return "invalid_code", 401
    if said.error in APP_SETTINGS:
        return "app_settings", 401
    return said.error or f"HTTP {said.status}", 401  # shown as what Slack answered


class Flow(OAuthFlow):
    """Bolt's flow, with the answers it lacks: what Slack answered the code exchange (Bolt reads every
    error as ``invalid_code``), Slack unreachable during it (Bolt catches only Slack's own errors;
    anything else was a raw 500 with a traceback), the database too busy to issue a state, and an
    install page of vsm-bot's that no cache keeps (it carries a one-time state).

    Its client is an :class:`_ExchangeClient` (:func:`oauth_flow` builds it so): with any other, Bolt
    would read Slack's every error as ``invalid_code`` again."""

    def __init__(self, *, client: WebClient, **kwargs: Any) -> None:
        if not isinstance(client, _ExchangeClient):
            raise TypeError("Flow needs the exchange's client: build it with bot.installs.oauth_flow")
        super().__init__(client=client, **kwargs)

    def handle_installation(self, request: BoltRequest) -> BoltResponse:
        try:
            response = super().handle_installation(request)
        except Busy as exc:
            log.warning("install page refused: %s", exc)
            return busy_page()
        response.headers["cache-control"] = [NO_STORE]
        return response

    def build_install_page_html(self, url: str, request: BoltRequest) -> str:
        return install_page_html(url)

    def run_installation(self, code: str) -> Installation | None:
        try:
            return super().run_installation(code)
        except _SlackSaid:
            raise  # handle_callback's
        except _NETWORK as exc:
            raise _SlackUnreachable(type(exc).__name__) from exc

    def handle_callback(self, request: BoltRequest) -> BoltResponse:
        try:
            return super().handle_callback(request)
        except _SlackUnreachable as exc:
            # The state was consumed and nothing was stored: the user starts again.
            return self._failed(request, "slack_unreachable", exc, 502)
        except _SlackSaid as said:
            reason, status = _refusal(said)
            if reason == "app_settings":
                log.error(
                    "%s failed: %s: SLACK_CLIENT_ID or SLACK_CLIENT_SECRET, or the redirect URL, do not "
                    "match the Slack app's (its Basic Information and OAuth & Permissions pages)",
                    said.method,
                    said.said(),
                )
            else:
                log.warning("%s failed: %s", said.method, said.said())
            return self._failed(request, reason, said, status)

    def _failed(self, request: BoltRequest, reason: str, error: Exception, status: int) -> BoltResponse:
        return self.failure_handler(
            FailureArgs(
                request=request,
                reason=reason,
                error=error,
                suggested_status_code=status,
                settings=self.settings,
                default=self.default_callback_options,
            )
        )


class Authorize(InstallationStoreAuthorize):
    """Bolt's authorisation from the installation store, with a workspace's token renewed once.

    Bolt renews an expiring rotating token on every request that finds it so, unlocked; Slack revokes a
    refresh token once used, so of two requests at once the second got ``invalid_refresh_token`` and
    its user was told vsm-bot is not installed. Here the renewal holds a lock per (client, enterprise,
    team) and reads the stored row again inside it."""

    def __init__(self, *, installation_store: Installations, **kwargs: Any) -> None:
        super().__init__(installation_store=installation_store, **kwargs)
        self.installations = installation_store
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._locks_lock = threading.Lock()
        # Renewed by Slack, not saved: key -> (the refresh token the store still holds, the renewal)
        self._unsaved: dict[tuple[str, str, str], tuple[str, Installation]] = {}

    def bot_token(self, ws: Workspace) -> str | None:
        """``ws``'s bot token for work no request started (a scheduled digest, a nudge, a verdict),
        renewed exactly as a request's is (once, under the workspace's lock); None when ``ws`` is not
        installed now, or its token expired and Slack will not renew it (the work is skipped and
        logged; the next run asks again)."""
        found = self.installations.find_workspace(ws)
        if found is None:
            return None
        try:
            renewed = self._rotate_and_save_tokens_if_necessary(found)
        except SlackTokenRotationError as exc:
            said = _said(exc)
            log.error("%s: token not renewed (%s)", shown(ws), said)
            if said in REFRESH_REFUSED:
                raise TokenRefused(ws, found.bot_token or "", said) from None
            return None
        return (renewed or found).bot_token

    def _lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())

    def _rotate_and_save_tokens_if_necessary(self, installation: Installation | None) -> Installation | None:
        if installation is None or installation.bot_refresh_token is None:
            return None
        i = installation
        org_wide = bool(i.is_enterprise_install)
        k = self.installations._key(i.enterprise_id, i.team_id, org_wide)
        key = (k["client_id"], k["enterprise_id"], k["team_id"])
        where = _where(i.enterprise_id, i.team_id)
        lock = self._lock(key)
        if not lock.acquire(blocking=False):
            log.debug("token renewal in flight for %s: waiting for it", where)
            lock.acquire()
        try:
            return self._renew(key, where, i.enterprise_id, i.team_id, org_wide)
        finally:
            lock.release()

    def _renew(
        self,
        key: tuple[str, str, str],
        where: str,
        enterprise_id: str | None,
        team_id: str | None,
        org_wide: bool,
    ) -> Installation:
        """Inside the workspace's lock: the stored (or kept) installation, renewed if it expires soon."""
        stored = self.installations.find_installation(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=org_wide
        )
        kept = self._unsaved.pop(key, None)
        if stored is None:
            # Uninstalled meanwhile: no token (Bolt answers NOT_INSTALLED); kept tokens go with it.
            return Installation(user_id="", enterprise_id=enterprise_id, team_id=team_id, bot_token=None)
        # What the store holds: kept tokens stay kept, whatever the renewals, until a save replaces it.
        held = stored.bot_refresh_token or ""
        current = stored
        if kept is not None and held == kept[0]:
            current = kept[1]  # the store still has the tokens Slack replaced: ours are the live ones
            self._save(key, where, held, current)
        if self.token_rotator is None:
            raise BoltError(self._config_error_message)
        try:
            renewed = self.token_rotator.perform_token_rotation(
                installation=current, minutes_before_expiration=self.token_rotation_expiration_minutes
            )
        except SlackTokenRotationError:
            raise  # Slack refused the refresh token: Bolt logs it and answers NOT_INSTALLED
        except _NETWORK as exc:
            if (current.bot_token_expires_at or 0) > time.time() + 60:
                log.warning(
                    "token renewal for %s: Slack not reached (%s); the current token serves",
                    where,
                    type(exc).__name__,
                )
                return current
            raise SlackTokenRotationError(
                SlackApiError(
                    f"Slack not reached ({type(exc).__name__})", {"ok": False, "error": "unreachable"}
                )
            ) from exc
        if renewed is None:
            return current  # fresh: renewed by the request this one waited for, or not yet due
        self._save(key, where, held, renewed)
        return renewed

    def _save(self, key: tuple[str, str, str], where: str, held: str, renewed: Installation) -> None:
        """Save ``renewed``; failing that, keep it while the store still holds refresh token ``held``
        (a reinstall or an uninstall meanwhile makes the kept tokens moot)."""
        try:
            self.installations.save(renewed)
        except BoltError as exc:
            self._unsaved[key] = (held, renewed)
            log.error(
                "token renewed by Slack for %s but not saved (%s): kept in memory and saved again on "
                "the next request; if vsm-bot stops first, the workspace must install again",
                where,
                exc.__cause__.__class__.__name__ if exc.__cause__ else type(exc).__name__,
            )


def api_client(
    api_url: str | None = None, token: str | None = None, *, kind: type[WebClient] = WebClient
) -> WebClient:
    """The client of the code exchange (``kind``: :class:`_ExchangeClient`), ``auth.test`` and token
    renewal: ``SLACK_API_URL`` honoured. Its log stops at INFO whatever the root logger's level: at
    DEBUG slack_sdk logs each response's body, and ``oauth.v2.access`` answers with the workspace's
    token and refresh token."""
    return kind(
        token=token, base_url=api_url or "https://slack.com/api/", timeout=API_TIMEOUT_S, logger=_API_LOG
    )


def token_dead(
    store_or_db: Store | sqlite_utils.Database,
    ws: Workspace,
    api_url: str | None,
    *,
    tokens: Collection[str] | None = None,
) -> bool | None:
    """Whether Slack says ``ws``'s stored bot token is dead, asked with ``auth.test`` at ``api_url``
    (``SLACK_API_URL``): True only when it answers one of ``CONFIRMED_DEAD`` (uninstalled, revoked:
    the uninstall event was missed), False when the token works, None when Slack could not say (not
    reached, rate limited, an expired rotating token that a renewal may revive) or nothing is stored
    for ``ws``. For ``vsm forget-workspace``, which refuses a workspace installed unless its token is
    dead. With several apps' rows for ``ws`` (client ids), dead only when every one is. No token is
    logged: one line with Slack's error code when it could not say. ``tokens``: the ones the caller
    read (``workspace_rows.bot_tokens``), so that what Slack is asked about is what it then deletes."""
    if tokens is None:
        tokens = workspace_rows.bot_tokens(
            store_or_db.db if isinstance(store_or_db, Store) else store_or_db, ws
        )
    said = {_auth_test(token, api_url) for token in tokens}
    if said == {True}:
        return True
    return False if False in said else None


def _auth_test(token: str, api_url: str | None) -> bool | None:
    """``token_dead`` for one token."""
    try:
        api_client(api_url, token).auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error") if hasattr(exc.response, "get") else None
        if error in CONFIRMED_DEAD:
            return True
        log.warning("auth.test could not say whether a token is dead: %s", str(error or "no error")[:80])
        return None
    except _NETWORK as exc:
        log.warning(
            "auth.test could not say whether a token is dead: Slack not reached (%s)", type(exc).__name__
        )
        return None
    return False


def oauth_settings(
    db_path: str | Path,
    client_id: str,
    client_secret: str,
    scopes: Sequence[str],
    redirect_uri: str | None = None,
    *,
    api_url: str | None = None,
    on_installed: Callable[[Workspace], None] | None = None,
) -> OAuthSettings:
    """Bolt's OAuth settings for vsm-bot: the install page at ``/slack/install``, Slack's redirect at
    ``/slack/oauth_redirect``, installations and states in the database at ``db_path``, our pages,
    and token renewal through ``api_url`` (Bolt's own renewal client would call slack.com whatever
    ``SLACK_API_URL`` says). ``scopes``: :func:`manifest_scopes`. ``on_installed`` is told each
    workspace installed, after its installation is saved. ``App(oauth_flow=oauth_flow(...))`` serves
    it."""
    store = Store(db_path)
    installations = Installations(store, client_id)
    settings = OAuthSettings(
        client_id=client_id,
        client_secret=client_secret,
        scopes=list(scopes),
        user_scopes=[],
        redirect_uri=redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        callback_options=CallbackOptions(
            success=success_page if on_installed is None else _installed(on_installed), failure=failure_page
        ),
        installation_store=installations,
        token_rotation_expiration_minutes=ROTATE_MINUTES,
        state_store=OAuthStates(store, STATE_SECONDS),
        state_expiration_seconds=STATE_SECONDS,
        logger=_FLOW_LOG,
    )
    settings.authorize = Authorize(
        logger=_FLOW_LOG,
        client_id=client_id,
        client_secret=client_secret,
        token_rotation_expiration_minutes=ROTATE_MINUTES,
        installation_store=installations,
        client=api_client(api_url),
        # Bolt asks Slack's auth.test about the stored token on every request, before its ack; the
        # answer (the bot's ids) is the same for the token's life, so it is kept per token. The token
        # itself is read from the store each time: an uninstalled workspace is refused at once.
        cache_enabled=True,
    )
    return settings


def oauth_flow(settings: OAuthSettings, api_url: str | None = None) -> Flow:
    """The flow ``App(oauth_flow=...)`` serves: the code exchange and ``auth.test`` at ``api_url``,
    its log lines through the filter that keeps the code out of them."""
    return Flow(client=api_client(api_url, kind=_ExchangeClient), logger=_FLOW_LOG, settings=settings)


def with_install_pages(app: App, events: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """A WSGI application: ``GET`` of the install page or the redirect goes to Bolt's flow (a
    browser's request, unsigned by nature: the state and its cookie are its check), anything else to
    ``events`` (``bot.serve.wsgi_app``, which lets only signed POSTs through)."""
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    flow = app.oauth_flow
    if flow is None:
        return events
    pages = SlackRequestHandler(app)
    paths = {flow.install_path, flow.redirect_uri_path}

    def application(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") in paths:
            return pages(environ, start_response)
        return events(environ, start_response)

    return application
