"""Exactly-once delivery of digests and nudges, through a ledger and Slack message metadata.

Every message has a key, ``team/kind/period`` (``T…:team/kind/period`` in an installed workspace:
see ``Key``). ``deliver`` records the key as ``sending`` *before*
posting and as ``sent`` (with the message ``ts``) *after*. A crash leaves one of two states, both
seen as a ``sending`` row at the next attempt:

- it died before the post landed: the channel holds no message with the key, so it posts now;
- it died after the post landed but before recording it: the message carries the key in its
  metadata (``event_type = vsm_message``), so the channel's recent history finds it and the row is
  completed without posting again.

History is read only in that case (Slack's ``conversations.history`` limits are low for new apps),
never on the normal path. A channel that refuses the message (archived, bot removed) is recorded as
``failed`` with Slack's error code and reported; it never blocks other channels.

The scheduler runs each job once at a time, so a ``sending`` row it finds is its own crashed attempt,
taken over at once (its check and its write are still one transaction: see ``stand_for``). A message that
people trigger (the digest preview's "Post to channel": a double click, two people, a retried
request, several replicas) may be attempted by several threads at once, so ``deliver(...,
exclusive=True)`` *claims* the key instead: one write transaction (SQLite's write lock, across threads
and processes) reads the row and writes ``sending`` only if the key is neither settled nor claimed
by an attempt younger than ``CLAIM_S``; everyone else gets ``already-sent`` or ``in-flight`` and
posts nothing. A claim older than that is a crashed attempt, taken over with the history check above.
So an exclusive attempt must end well within ``CLAIM_S``: its Slack calls are made without the app
client's rate-limit retries (which sleep as long as Slack says) and share ``EXCLUSIVE_S`` in all; a
rate limit or a slow Slack is a failure the person is told about, and they may press again.

An exclusive message may ``stand_for`` a scheduled one (a digest posted from the preview before the
day's scheduled digest). The claim then settles the scheduled key in the same transaction, as
``skipped`` with a note, so the schedule, whose own check-and-write is one transaction too, cannot
slip a second copy in while the post is on its way; the mark is lifted if the post fails. A scheduled
key already sent, or being sent right now, is answered as such and nothing is posted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlite_utils
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.authz import before_ack
from bot.logline import slack_error
from metrics.store.tx import transaction
from metrics.timeutil import now_iso, parse_instant
from metrics.workspace import SINGLE, Workspace

log = logging.getLogger("vsm.delivery")

EVENT_TYPE = "vsm_message"
HISTORY_SLACK = 120.0  # seconds before the first attempt that the history search starts
DEAD_TOKEN = frozenset({"account_inactive", "invalid_auth", "token_revoked", "not_authed"})
"""Slack's error codes for a bot token that will never work again: the workspace uninstalled the app,
revoked the token, or was deleted (``not_authed``: no token at all). Any call made with it says one of
these; the scheduler takes it as Slack's uninstall (``Scheduler(on_dead_token=)``)."""
CLAIM_S = 120.0  # an exclusive attempt's claim: younger, another attempt is at work; older, it died
EXCLUSIVE_S = 30.0  # all of an exclusive attempt's Slack calls (history check, post): well under CLAIM_S


def dead_token(error: str | None) -> bool:
    """Whether a failure's ``error`` (``slack_error``'s code, or ``history check: <code>``) is one of
    ``DEAD_TOKEN``: the message failed because the token is dead, not because of its channel."""
    return bool(error) and error.rsplit(": ", 1)[-1] in DEAD_TOKEN


@dataclass(frozen=True)
class Key:
    team: str  # the team's name, or ``*org*`` for the org digest (no team name has a ``*``)
    # digest | digest-posted (Post to channel, once a digest cycle) | nudge-<kind> | org-digest |
    # org-digest-posted | experiment-verdict (one per experiment, however it ended)
    kind: str
    # the local date (digests: the day due; *-posted: the cycle's digest day; item nudges), the digest
    # period (target nudges) or the experiment's id (verdicts)
    period: str
    # The workspace the message belongs to (metrics.workspace): SINGLE in single-workspace mode.
    workspace: Workspace = SINGLE

    def __str__(self) -> str:
        """The ledger's primary key and the metadata tag ``find_posted`` looks for. SINGLE's is the
        key every ledger row before workspaces has (a changed key would send that day's digest
        again); an installed workspace's is prefixed ``T…:`` (or ``E…:``), which no single-mode key
        can start with: a team name holds no ``:`` and the org's is ``*org*``."""
        base = f"{self.team}/{self.kind}/{self.period}"
        return f"{self.workspace}:{base}" if self.workspace else base

    def tag(self) -> dict:
        """The message metadata's ``event_payload``: the key and its parts (the workspace only when
        there is one, so a single-mode message carries what it always did)."""
        out = {"key": str(self), "team": self.team, "kind": self.kind, "period": self.period}
        return (out | {"workspace": self.workspace}) if self.workspace else out


@dataclass
class Outcome:
    key: Key
    state: str  # sent | already-sent | recovered | failed | skipped | in-flight
    ts: str | None = None
    error: str | None = None
    at: str | None = None  # already-sent: when it was recorded sent; in-flight: when the claim began
    compose_ms: float | None = None  # time spent computing and rendering the message, sending apart


class ChannelPacer:
    """At most one message per channel per ``interval`` seconds (Slack's ~1/s per channel), across
    threads; other channels are not held up."""

    def __init__(
        self,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval, self.clock, self.sleep = interval, clock, sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, channel: str) -> None:
        with self._lock:
            now = self.clock()
            at = max(now, self._next.get(channel, now))
            self._next[channel] = at + self.interval
        if at > now:
            self.sleep(at - now)


def ledger_row(db: sqlite_utils.Database, key: Key) -> dict | None:
    return next(db.query("select * from deliveries where key = ?", [str(key)]), None)


def settled(db: sqlite_utils.Database, key: Key) -> Outcome | None:
    """The outcome of a message already sent or deliberately skipped; None while it is still due."""
    row = ledger_row(db, key)
    if row is None or row["state"] not in ("sent", "skipped"):
        return None
    return Outcome(
        key, "already-sent" if row["state"] == "sent" else "skipped", row["ts"], at=row["finished"]
    )


def _write(db: sqlite_utils.Database, key: Key, channel: str, **fields) -> None:
    with transaction(db):
        db["deliveries"].upsert(
            {
                "key": str(key),
                "workspace": key.workspace,
                "team": key.team,
                "kind": key.kind,
                "period": key.period,
                "channel": channel,
            }
            | fields,
            pk="key",
        )


def record_skipped(db: sqlite_utils.Database, key: Key, channel: str, note: str) -> None:
    """A message deliberately not sent (missed beyond the grace period): logged, never sent later."""
    if ledger_row(db, key) is None:
        _write(db, key, channel, state="skipped", note=note, finished=now_iso(), attempts=0)
        log.warning("skipped %s: %s", key, note)


def _within(client: WebClient, deadline: float | None) -> WebClient:
    """``client`` itself, or by a ``deadline`` (``time.monotonic``) a copy without retries whose
    timeout is the time left (``bot.authz.before_ack``); none left raises ``TimeoutError``."""
    if deadline is None:
        return client
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"Slack did not answer within {EXCLUSIVE_S:.0f} s")
    return before_ack(client, timeout=left)


def find_posted(
    client: WebClient, channel: str, key: Key, since: float, deadline: float | None = None
) -> str | None:
    """The ts of a message in ``channel`` carrying ``key`` in its metadata, posted after ``since``;
    every page by ``deadline`` (``time.monotonic``) when one is given."""
    cursor = None
    while True:
        resp = _within(client, deadline).conversations_history(
            channel=channel, oldest=f"{since:.6f}", include_all_metadata=True, limit=200, cursor=cursor
        )
        for message in resp.get("messages", []):
            meta = message.get("metadata") or {}
            if meta.get("event_type") == EVENT_TYPE and (meta.get("event_payload") or {}).get("key") == str(
                key
            ):
                return message.get("ts")
        cursor = (resp.get("response_metadata") or {}).get("next_cursor")
        if not resp.get("has_more") or not cursor:
            return None


def deliver(
    db: sqlite_utils.Database,
    client: WebClient,
    key: Key,
    payload: dict,
    *,
    pacer: ChannelPacer | None = None,
    exclusive: bool = False,
    stand_for: Key | None = None,
) -> Outcome:
    """Post ``payload`` (a ``chat.postMessage`` body with its ``channel``) once for ``key``.

    ``exclusive``: the key is claimed first, atomically, for callers that may run at the same time
    as another attempt at the same key, and its Slack calls share ``EXCLUSIVE_S`` without sleeping
    retries; ``stand_for``: the scheduled key this post takes the place of (see the module's
    docstring)."""
    channel = payload["channel"]
    deadline = time.monotonic() + EXCLUSIVE_S if exclusive else None
    if exclusive:
        held, row, marked = claim(db, key, channel, stand_for=stand_for)
        if held is not None:
            return held
    else:
        held, row = _take(db, key, channel)
        if held is not None:
            return held
        marked = False
    outcome = _post(db, client, key, payload, row, deadline, pacer)
    if marked and outcome.state == "failed":
        _unmark(db, stand_for, key)
    return outcome


def _post(
    db: sqlite_utils.Database,
    client: WebClient,
    key: Key,
    payload: dict,
    row: dict | None,
    deadline: float | None,
    pacer: ChannelPacer | None,
) -> Outcome:
    """The history check a crashed attempt calls for, then the post, for a key already taken."""
    channel = payload["channel"]
    if row is not None and row["state"] in ("sending", "failed"):
        # An earlier attempt may have posted before it could record: look before posting again.
        since = (parse_instant(row["started"]) or time.time()) - HISTORY_SLACK
        try:
            ts = find_posted(client, channel, key, since, deadline)
        except (SlackApiError, SlackRequestError, OSError) as exc:
            return _failed(db, key, channel, row, f"history check: {slack_error(exc)}")
        if ts is not None:
            _write(db, key, channel, state="sent", ts=ts, error=None, finished=now_iso())
            log.info("recovered %s: already in %s at %s", key, channel, ts)
            return Outcome(key, "recovered", ts)
    attempts = (row["attempts"] or 0) + 1 if row else 1
    metadata = {"event_type": EVENT_TYPE, "event_payload": key.tag()}
    if pacer is not None:
        pacer.wait(channel)
    try:
        resp = _within(client, deadline).chat_postMessage(**payload, metadata=metadata)
    except (SlackApiError, SlackRequestError, OSError) as exc:
        return _failed(db, key, channel, {"attempts": attempts}, slack_error(exc))
    ts = resp.get("ts")
    _write(db, key, channel, state="sent", ts=ts, finished=now_iso())
    return Outcome(key, "sent", ts)


def _live(row: dict | None, now: float) -> bool:
    """Whether ``row`` is an attempt at work: ``sending``, begun less than ``CLAIM_S`` ago."""
    return (
        row is not None
        and row["state"] == "sending"
        and now - (parse_instant(row["started"]) or 0.0) < CLAIM_S
    )


def claim(
    db: sqlite_utils.Database,
    key: Key,
    channel: str,
    now: float | None = None,
    stand_for: Key | None = None,
) -> tuple[Outcome | None, dict | None, bool]:
    """Take ``key`` for one attempt, or learn why not, in one write transaction.

    Returns ``(outcome, None, False)`` when the key is settled (``already-sent``, ``skipped``) or
    claimed by a live attempt (``in-flight``, ``at`` its start), or when ``stand_for`` is sent or
    being sent (that outcome, under ``stand_for``); else ``(None, row, marked)``, with the ledger row
    as it was before this claim (a row means an earlier attempt may have posted, so history is
    checked) and whether ``stand_for``, never attempted, was marked ``skipped`` in its place."""
    now = time.time() if now is None else now
    scheduled = None
    with transaction(db):  # BEGIN IMMEDIATE: claimants queue on the write lock, one reads at a time
        if stand_for is not None:
            scheduled = ledger_row(db, stand_for)
            if scheduled is not None and scheduled["state"] == "sent":
                return settled(db, stand_for), None, False
            if _live(scheduled, now):
                return Outcome(stand_for, "in-flight", at=scheduled["started"]), None, False
        row = ledger_row(db, key)
        if row is not None and row["state"] in ("sent", "skipped"):
            return settled(db, key), None, False
        if _live(row, now):
            return Outcome(key, "in-flight", at=row["started"]), None, False
        attempts = (row["attempts"] or 0) + 1 if row else 1
        _write(db, key, channel, state="sending", attempts=attempts, started=now_iso(), error=None)
        marked = stand_for is not None and scheduled is None
        if marked:
            _write(
                db, stand_for, channel, state="skipped", note=_stood_for(key), finished=now_iso(), attempts=0
            )
    return None, row, marked


def _stood_for(key: Key) -> str:
    return f"posted in its place as {key}"


def _unmark(db: sqlite_utils.Database, scheduled: Key, key: Key) -> None:
    """``key``'s post failed: the scheduled message it stood for is due again (unless it was sent)."""
    with transaction(db):
        db.execute(
            "delete from deliveries where key = ? and state = 'skipped' and note = ?",
            [str(scheduled), _stood_for(key)],
        )


def _take(db: sqlite_utils.Database, key: Key, channel: str) -> tuple[Outcome | None, dict | None]:
    """The scheduler's take of ``key``: settled (``sent``, ``skipped``), it is that outcome; else it is
    written ``sending`` in the same transaction, so an exclusive claim that settles it in between
    (``stand_for``) is seen. A ``sending`` row is this job's own crashed attempt (the scheduler runs a
    job once at a time), taken over with the history check."""
    with transaction(db):
        done = settled(db, key)
        if done is not None:
            return done, None
        row = ledger_row(db, key)
        attempts = (row["attempts"] or 0) + 1 if row else 1
        _write(db, key, channel, state="sending", attempts=attempts, started=now_iso(), error=None)
    return None, row


def _failed(db: sqlite_utils.Database, key: Key, channel: str, row: dict, error: str) -> Outcome:
    """Recorded as failed: a later run (``catch_up`` within the grace period) tries again, with a
    history check first, since a timeout may have hidden a message that did land."""
    _write(
        db, key, channel, state="failed", error=error, finished=now_iso(), attempts=row.get("attempts") or 1
    )
    log.warning("could not deliver %s to %s: %s", key, channel, error)
    return Outcome(key, "failed", error=error)
