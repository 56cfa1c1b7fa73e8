"""Who may do what, checked at the moment it happens.

A team's settings, its digest preview's "Post to channel", its chart menu and its nudges' snooze belong
to the members of the team's channel; the North Star belongs to workspace admins and the org admins
stored in the database (``[org] admins``, copied from vsm.toml on first start). Forms and buttons are checked again when submitted or clicked, not only when shown:
someone who left the channel, or lost admin, since cannot use a form they still hold.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.logline import slack_error
from bot.payload import tell
from metrics.teams import get_org
from metrics.workspace import SINGLE, Workspace, is_org_wide

log = logging.getLogger("vsm.bot")

MEMBERS_TTL = 60.0
PRE_ACK_S = 2.0
"""The most a membership check made before a 3-second acknowledgement may take, all of it: waiting
for another click's fetch of the same channel, and every page of ``conversations.members``."""
BEFORE_OPEN_S = PRE_ACK_S
"""The most the Slack calls before ``views.open`` may take together (the membership check, then the
creator's time zone): the ``trigger_id`` that opens a form lives 3 seconds, and the form must still
be drawn and sent in what is left."""
MEMBERS_UNKNOWN = "Could not check the channel's members just now; try again in a minute."
NOT_ADMIN = "Only workspace admins and the organisation's admins can change the organisation settings."
ADMIN_UNKNOWN = "Slack could not say whether you are a workspace admin just now; try again in a minute."
NOT_IN_CHANNEL = "Invite @vsm-bot to that channel first: the organisation digest is posted there."
CHANNEL_UNKNOWN = "Slack could not say whether vsm-bot can post in that channel just now; try again."


class MemberCache:
    """Who is in each channel, as ``conversations.members`` said at most ``ttl`` seconds ago.

    Every change (a settings save, a team set up, a digest posted, nudges snoozed) is authorised
    against the channel's members when it happens, not only when its form was opened: someone who left
    the channel since cannot use a form or a preview they still hold. The check sits before a modal's
    3-second acknowledgement, so it must be quick, and a burst of clicks (a preview posted by several
    people, a double click) must not cost a call each: one paged fetch per channel serves them all for
    ``ttl`` seconds. 60 s bounds how long someone removed from a channel keeps its rights, and keeps a
    busy channel far below ``conversations.members``' tier-4 limit (100+ calls a minute).
    """

    def __init__(self, ttl: float = MEMBERS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def is_member(self, client, channel: str, user: str, *, within: float | None = None) -> bool | None:
        """Whether ``user`` is in ``channel``; ``None`` when Slack could not say (the caller refuses).

        ``within``: seconds the whole check may take (``PRE_ACK_S`` before an acknowledgement). The
        wait for another click's fetch and every page share it, each call is made without retries
        (``before_ack``) in the time left, and running out is ``None``, as when Slack fails."""
        if not channel or not user:
            return False
        deadline = None if within is None else self.clock() + within
        with self._lock:
            lock = self._locks.setdefault(channel, threading.Lock())
        # Concurrent clicks on one channel wait for one fetch (a check with a deadline, only so long).
        if not lock.acquire(timeout=-1 if deadline is None else max(deadline - self.clock(), 0)):
            log.warning("membership of %s unknown: another read of it is still running", channel)
            return None
        try:
            cached = self._members.get(channel)
            if cached is None or self.clock() - cached[0] >= self.ttl:
                try:
                    cached = (self.clock(), frozenset(self._fetch(client, channel, deadline)))
                except (SlackApiError, SlackClientError, OSError) as exc:
                    log.warning("membership of %s unknown: %s", channel, slack_error(exc))
                    return None
                self._members[channel] = cached
        finally:
            lock.release()
        return user in cached[1]

    def _fetch(self, client, channel: str, deadline: float | None) -> set[str]:
        """Every member of ``channel`` (paged ``conversations.members``), by ``deadline`` if given:
        each page then gets the time left, and none left raises ``TimeoutError``."""
        members: set[str] = set()
        cursor = None
        while True:
            page = client
            if deadline is not None:
                left = deadline - self.clock()
                if left <= 0:
                    raise TimeoutError(f"{len(members)} members read when the time ran out")
                page = before_ack(client, timeout=left)
            resp = page.conversations_members(channel=channel, cursor=cursor, limit=1000)
            members |= {m for m in resp.get("members") or [] if isinstance(m, str)}
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return members


def before_ack(client, timeout: float = PRE_ACK_S) -> WebClient:
    """``client`` without retries and with a short timeout (2 s), for a call made before a 3-second
    acknowledgement: the app's client sleeps through rate limits, which Slack would not wait for."""
    return WebClient(token=client.token, base_url=client.base_url, timeout=timeout, retry_handlers=[])


def user_channels(client, user: str) -> set[str]:
    """Every channel ``user`` is in that the bot can see (paged ``users.conversations``): one call
    for all of a user's teams instead of a membership check per team."""
    channels: set[str] = set()
    cursor = None
    while True:
        resp = client.users_conversations(
            user=user,
            types="public_channel,private_channel",
            exclude_archived=True,
            limit=1000,
            cursor=cursor,
        )
        channels |= {c["id"] for c in resp.get("channels", [])}
        cursor = (resp.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return channels


def allowed(
    deps, client, channel: str, user: str, respond, refusal: str, *, within: float | None = None
) -> bool:
    """Whether ``user`` is in ``channel`` now (``deps.members``), for a click made after its ack. When
    not, the refusal is logged and told to the clicker: ``refusal``, or ``MEMBERS_UNKNOWN`` when Slack
    could not say. ``within``: seconds the check may take (a form whose ``trigger_id`` expires)."""
    member = deps.members.is_member(client, channel, user, within=within)
    if not member:
        said = MEMBERS_UNKNOWN if member is None else refusal
        log.info("refused %r in %r: %s", user, channel, said)
        tell(respond, said)
    return bool(member)


def form_refused(
    ack, deps, client, meta: dict, user: str, *, field: str, not_theirs: str, not_member: str
) -> bool:
    """Whether ``user``'s submission of a team's form is refused, and if so it is answered: the
    refusal on ``field``, logged, nothing written. The form must be theirs (``meta``, its
    ``private_metadata``: ``by`` and ``channel``), and they must be in the team's channel now (leaving
    it since takes the right away). Checked before the modal's 3-second acknowledgement, so within
    ``PRE_ACK_S``; Slack not answering in time is ``MEMBERS_UNKNOWN``."""
    channel = meta.get("channel")
    if not user or not isinstance(channel, str) or not channel or meta.get("by") != user:
        said: str | None = not_theirs
    else:
        member = deps.members.is_member(client, channel, user, within=PRE_ACK_S)
        said = MEMBERS_UNKNOWN if member is None else None if member else not_member
    if said:
        log.info("form submission refused for %r in %r: %s", user, channel, said)
        ack(response_action="errors", errors={field: said})
    return said is not None


def bot_can_post(client, channel: str, *, within: float = PRE_ACK_S) -> bool | None:
    """Whether the bot is in ``channel`` (``conversations.info``'s ``is_member``), asked before a
    channel is saved as the place the bot posts to: a channel it is not in would lose every post to
    ``not_in_channel``. A private channel the bot is not in is ``channel_not_found`` to it: False too.
    None when Slack cannot say within ``within`` seconds (one call, no retries)."""
    if within <= 0:
        return None
    try:
        info = before_ack(client, timeout=within).conversations_info(channel=channel)
    except SlackApiError as exc:
        if exc.response.get("error") == "channel_not_found":
            return False
        log.info("could not read whether vsm-bot is in %s: %s", channel, slack_error(exc))
        return None
    except (SlackClientError, OSError) as exc:
        log.info("could not read whether vsm-bot is in %s: %s", channel, slack_error(exc))
        return None
    channel_info = info.get("channel")
    return isinstance(channel_info, dict) and channel_info.get("is_member") is True


def org_admins(deps) -> list[str]:
    """Who may set the org settings besides workspace admins: the ``[org] admins`` the database holds
    (seeded from vsm.toml on first start; the database wins, as for every other setting, and
    ``vsm serve`` notes where the file differs), and ``deps.admins`` (extra ones an embedding, a test,
    passes to ``create_app``)."""
    stored = get_org(deps.store.db, ws=deps.ws).get("admins")
    return (
        [*deps.admins, *(a for a in stored if isinstance(a, str))]
        if isinstance(stored, list)
        else deps.admins
    )


def may_set(client, deps, user: str) -> bool | None:
    """Whether ``user`` may set the North Star now: an org admin (``org_admins``), or an admin or
    owner of the workspace the settings belong to (``workspace_admin``); None when Slack cannot say
    (the change is refused, never guessed)."""
    if user in org_admins(deps):
        return True
    return workspace_admin(client, user, deps.ws)


def workspace_admin(client, user: str, ws: Workspace = SINGLE) -> bool | None:
    """Whether Slack says ``user`` is an admin or owner of ``ws`` (one ``users.info`` call); None when
    Slack cannot say. For an org-wide Enterprise Grid install (``E…``) the org settings are the whole
    Grid's, so only an admin or owner of the Grid org (``enterprise_user``) counts: an admin of one of
    its workspaces is not one of the org's."""
    try:
        info = client.users_info(user=user).get("user") or {}
    except (SlackApiError, OSError) as exc:
        log.info("could not read %s's admin status: %s", user, type(exc).__name__)
        return None
    if is_org_wide(ws):
        info = info.get("enterprise_user") or {}
    return bool(info.get("is_admin") or info.get("is_owner"))
