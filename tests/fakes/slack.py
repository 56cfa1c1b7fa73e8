"""A loopback mock of Slack's Web API (Slack's own testing advice; docs/layout.md "Conventions").

Every call is recorded with its method, auth header and decoded body (form or JSON). Replies are
``{"ok": true, ...}`` with canned fields per method; ``server.fail("/chat.postMessage", Fault(429,
{"Retry-After": "1"}))`` queues a fault, and ``errors["chat.postMessage"] = "channel_not_found"``
answers HTTP 200 ``{"ok": false, "error": ...}`` as Slack does; ``channel_errors[channel]`` does that
for one channel only (``is_archived``).

``conversations.info`` answers as Slack does for a bot token: the channel with ``is_member`` (whether
the bot, ``BOT_USER``, is among the channel's ``members``) and ``is_private``; a private channel
(``private``, or a ``G…`` id) the bot is not in is ``channel_not_found``, as Slack hides it.

Posted messages are kept per channel (``posted``) and ``conversations.history`` serves them back,
newest first, with their metadata when ``include_all_metadata`` is set. ``channel_interval`` turns on
a per-channel rate limit: a second ``chat.postMessage`` to a channel sooner than that is answered 429
with ``Retry-After``, as Slack does at about one message per second per channel.

Installing (OAuth v2): ``grant(code, Workspace(...))`` is what Slack's authorize page hands the app
when a user approves it; ``oauth.v2.access`` exchanges that code once for a bot token of that
workspace (``invalid_code`` for an unknown or used one), with a refresh token and ``expires_in`` when
the workspace's token rotates, and ``grant_type=refresh_token`` renews such a token
once (Slack revokes a refresh token when it is used: ``invalid_refresh_token`` for a used or unknown
one). ``refresh_gate``, when set to a ``threading.Event``, holds each renewal until the test sets it
(a renewal in flight, for concurrent requests). With ``app`` set, the client id and secret (HTTP Basic,
as slack_sdk sends them, or form fields) must match (``invalid_client_id``, ``bad_client_secret``).
``Workspace(enterprise_install=True)`` is an org-wide install on a Grid (``team`` null,
``is_enterprise_install`` true). ``revoke(team_id)`` is the workspace uninstalling the app or revoking
its tokens: its tokens and refresh tokens stop working (the test then sends the event Slack sends).
``auth.test`` answers for a token it issued with that token's workspace and ``token_revoked`` for a
revoked one (every other method too); any other token is T1's (the one-workspace tests' ``SLACK_BOT_TOKEN``), unless ``app`` is
set: a distributed app's mock knows every token it issued, so any other is ``invalid_auth``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import parse_qs

from fakes.server import FakeServer, Reply, Request

BOT_USER = "UBOT"  # the bot's own user id, as auth.test says
TOKEN_SECONDS = 43200  # a rotating token's life, as Slack gives it (12 hours)


@dataclass
class Workspace:
    """A workspace vsm-bot is installed into: what ``oauth.v2.access`` and ``auth.test`` say of it."""

    team_id: str
    team_name: str
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    rotating: bool = False  # the app has token rotation on: tokens expire and come with a refresh token
    installer: str = "UINSTALLER"
    scope: str = "commands,chat:write"  # the bot scopes granted
    enterprise_install: bool = False  # installed org-wide on a Grid (enterprise_id set, no one team)


@dataclass
class Call:
    method: str
    auth: str | None
    body: dict


def _decode(req: Request) -> dict:
    ctype = req.headers.get("content-type", "")
    if "json" in ctype:
        return json.loads(req.body or b"{}")
    out: dict = {k: v[0] for k, v in parse_qs(req.body.decode(), keep_blank_values=True).items()}
    for key in ("blocks", "view", "metadata", "files", "attachments"):
        if isinstance(out.get(key), str):
            with contextlib.suppress(ValueError):
                out[key] = json.loads(out[key])
    return out


class MockSlack(FakeServer):
    def __init__(self, members: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.errors: dict[str, str] = {}
        self.members = members or {}  # channel -> member user ids (conversations.members)
        self.channel_errors: dict[str, str] = {}
        self.private: set[str] = set()  # private channels (besides G… ids): hidden from a bot not in them
        self.posted: dict[str, list[dict]] = defaultdict(list)  # channel -> messages, oldest first
        self.uploads: list[bytes] = []
        self.channel_interval = 0.0  # seconds; 0 = no per-channel rate limit
        self.rate_limited = 0  # 429s answered by the per-channel limit
        self._last_post: dict[str, float] = {}
        self._ts = itertools.count(1)
        # Open views, id -> hash, as Slack keeps them: views.update names one (else ``not_found``) and,
        # with a ``hash``, only the current one (else ``hash_conflict``); every open or update makes a
        # new hash. A test that drives an open form it built registers it here.
        self.views: dict[str, str] = {}
        self.app: tuple[str, str] | None = None  # (client id, client secret) oauth.v2.access checks
        self.grants: dict[str, Workspace] = {}  # code -> workspace, until exchanged
        self.refreshers: dict[str, Workspace] = {}  # refresh token -> workspace
        self.tokens: dict[str, Workspace] = {}  # bot tokens issued by oauth.v2.access
        self.revoked: set[str] = set()  # tokens revoked (uninstalled, tokens_revoked)
        self.refresh_gate: threading.Event | None = None  # holds renewals while set to an unset Event
        self.route("POST", "/*", self._api)
        self.route("POST", "/upload/*", self._upload)

    def _upload(self, req: Request) -> Reply:
        with self.lock:
            self.uploads.append(req.body)
        return Reply(200, b"OK", {"Content-Type": "text/plain"})

    @property
    def base_url(self) -> str:
        return self.url + "/"

    def _api(self, req: Request) -> Reply:
        method = req.path.lstrip("/")
        body = _decode(req)
        with self.lock:
            self.calls.append(Call(method, req.headers.get("authorization"), body))
        if method in self.errors:
            return Reply(200, {"ok": False, "error": self.errors[method]})
        token = (req.headers.get("authorization") or "").removeprefix("Bearer ")
        if method not in ("oauth.v2.access", "auth.test") and token in self.revoked:
            return Reply(200, {"ok": False, "error": "token_revoked"})  # Slack's answer to a revoked token
        if method == "oauth.v2.access":
            return Reply(200, self._oauth_access(req, body))
        if method == "auth.test":
            return Reply(200, self._auth_test(req))
        if method == "views.update":
            with self.lock:
                current = self.views.get(str(body.get("view_id") or ""))
            if current is None:
                return Reply(200, {"ok": False, "error": "not_found"})
            if body.get("hash") and body.get("hash") != current:
                return Reply(200, {"ok": False, "error": "hash_conflict"})
        if method == "chat.postMessage":
            channel = body.get("channel")
            if channel in self.channel_errors:
                return Reply(200, {"ok": False, "error": self.channel_errors[channel]})
            with self.lock:
                now = time.monotonic()
                last = self._last_post.get(channel)
                if self.channel_interval and last is not None and now - last < self.channel_interval:
                    self.rate_limited += 1
                    wait = math.ceil(self.channel_interval - (now - last))
                    return Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)})
                self._last_post[channel] = now
        return Reply(200, {"ok": True, **self._canned(method, body)})

    def _history(self, body: dict) -> dict:
        oldest = float(body.get("oldest") or 0)
        with_meta = str(body.get("include_all_metadata")).lower() in ("1", "true")
        with self.lock:
            messages = [
                dict(m) for m in reversed(self.posted.get(body.get("channel"), [])) if float(m["ts"]) > oldest
            ]
        if not with_meta:
            for m in messages:
                m.pop("metadata", None)
        return {"messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _info(self, channel: str) -> dict:
        with self.lock:
            member = BOT_USER in self.members.get(channel, [])
            private = channel in self.private or channel.startswith("G")
        if private and not member:
            return {"ok": False, "error": "channel_not_found"}
        return {
            "channel": {
                "id": channel,
                "name": "team-channel",
                "is_channel": not private,
                "is_group": private,
                "is_private": private,
                "is_archived": False,
                "is_member": member,
            }
        }

    def grant(self, code: str, workspace: Workspace) -> None:
        """A user approved the install in ``workspace``: Slack redirects with ``code``."""
        with self.lock:
            self.grants[code] = workspace

    def _client_ok(self, req: Request, body: dict) -> str | None:
        """Slack's error for the app's credentials, or None when they match (or are not checked)."""
        if self.app is None:
            return None
        client_id, secret = body.get("client_id"), body.get("client_secret")
        auth = req.headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if client_id != self.app[0]:
            return "invalid_client_id"
        return None if secret == self.app[1] else "bad_client_secret"

    def _oauth_access(self, req: Request, body: dict) -> dict:
        """``oauth.v2.access`` as Slack documents it: a code (single use) or a refresh token."""
        error = self._client_ok(req, body)
        if error:
            return {"ok": False, "error": error}
        gate = self.refresh_gate
        if body.get("grant_type") == "refresh_token" and gate is not None:
            assert gate.wait(30), "the test never let the renewal through (refresh_gate)"
        with self.lock:
            if body.get("grant_type") == "refresh_token":
                # used once: Slack revokes a refresh token when it is exchanged
                workspace = self.refreshers.pop(str(body.get("refresh_token")), None)
                if workspace is None:
                    return {"ok": False, "error": "invalid_refresh_token"}
            else:
                workspace = self.grants.pop(str(body.get("code")), None)
                if workspace is None:
                    return {"ok": False, "error": "invalid_code"}
            n = next(self._ts)
            token = (
                f"xoxe.xoxb-1-{workspace.team_id}-{n}"
                if workspace.rotating
                else f"xoxb-{workspace.team_id}-{n}"
            )
            self.tokens[token] = workspace
            answer: dict = {
                "ok": True,
                "app_id": "A1",
                "access_token": token,
                "token_type": "bot",
                "scope": workspace.scope,
                "bot_user_id": BOT_USER,
                "team": (
                    None
                    if workspace.enterprise_install
                    else {"id": workspace.team_id, "name": workspace.team_name}
                ),
                "enterprise": (
                    {"id": workspace.enterprise_id, "name": workspace.enterprise_name}
                    if workspace.enterprise_id
                    else None
                ),
                "is_enterprise_install": workspace.enterprise_install,
            }
            if body.get("grant_type") != "refresh_token":
                answer["authed_user"] = {"id": workspace.installer}
            if workspace.rotating:
                refresh = f"xoxe-1-{workspace.team_id}-{n}"
                self.refreshers[refresh] = workspace
                answer.update(refresh_token=refresh, expires_in=TOKEN_SECONDS)
        return answer

    def revoke(self, team_id: str) -> None:
        """``team_id`` uninstalled the app or revoked its tokens: none of them works any more."""
        with self.lock:
            for token, workspace in list(self.tokens.items()):
                if workspace.team_id == team_id:
                    self.revoked.add(token)
            for refresh, workspace in list(self.refreshers.items()):
                if workspace.team_id == team_id:
                    del self.refreshers[refresh]

    def _auth_test(self, req: Request) -> dict:
        """``auth.test`` for the token it is called with: its workspace's ids, ``token_revoked`` for a
        revoked one, or ``invalid_auth`` for one it never issued."""
        token = req.headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            workspace = self.tokens.get(token)
            revoked = token in self.revoked
        if revoked:  # Slack's answer for a token revoked with its app (uninstalled) or by itself
            return {"ok": False, "error": "token_revoked"}
        if workspace is None and self.app is not None:
            return {"ok": False, "error": "invalid_auth"}
        if workspace is None:
            return {
                "ok": True,
                "team_id": "T1",
                "user_id": BOT_USER,
                "bot_id": "B1",
                "url": "https://x.slack.com/",
            }
        answer = {
            "ok": True,
            "url": f"https://{workspace.team_id.lower()}.slack.com/",
            "team": workspace.team_name,
            "user": "vsm-bot",
            "team_id": workspace.team_id,
            "user_id": BOT_USER,
            "bot_id": f"B{workspace.team_id}",
            "is_enterprise_install": workspace.enterprise_install,
        }
        if workspace.enterprise_id:
            answer["enterprise_id"] = workspace.enterprise_id
        return answer

    def _canned(self, method: str, body: dict) -> dict:
        if method in ("chat.postMessage", "chat.postEphemeral", "chat.update"):
            ts = f"{time.time():.0f}.{next(self._ts):06d}"
            if method == "chat.postMessage":
                with self.lock:
                    self.posted[body.get("channel")].append(
                        {
                            "ts": ts,
                            "text": body.get("text"),
                            "blocks": body.get("blocks"),
                            "metadata": body.get("metadata"),
                        }
                    )
            return {"channel": body.get("channel"), "ts": ts, "message": body}
        if method == "conversations.history":
            return self._history(body)
        if method in ("views.open", "views.publish", "views.update", "views.push"):
            view_id = str(body.get("view_id") or f"V{next(self._ts)}")
            new_hash = f"{time.time():.0f}.h{next(self._ts)}"
            with self.lock:
                self.views[view_id] = new_hash
            return {"view": {**(body.get("view") or {}), "id": view_id, "hash": new_hash}}
        if method == "conversations.members":
            return {
                "members": self.members.get(body.get("channel"), []),
                "response_metadata": {"next_cursor": ""},
            }
        if method == "users.conversations":
            user = body.get("user")
            return {
                "channels": [{"id": c} for c, members in self.members.items() if user in members],
                "response_metadata": {"next_cursor": ""},
            }
        if method == "conversations.info":
            return self._info(str(body.get("channel") or ""))
        if method == "users.info":
            return {"user": {"id": body.get("user"), "is_admin": body.get("user", "").startswith("UADMIN")}}
        if method == "files.getUploadURLExternal":
            return {"upload_url": f"{self.url}/upload/{next(self._ts)}", "file_id": f"F{next(self._ts)}"}
        if method == "files.completeUploadExternal":
            return {"files": [{"id": f["id"]} for f in body.get("files", [])]}
        return {}

    def calls_to(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def responses(self) -> list[dict]:
        """Bodies POSTed to response URLs (``/response/...``)."""
        with self.lock:
            return [json.loads(r.body) for r in self.log if r.path.startswith("/response/")]
