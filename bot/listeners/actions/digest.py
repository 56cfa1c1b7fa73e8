"""The digest preview's "Post to channel": the digest as it stands now, posted by a channel member,
once per digest cycle however often it is pressed.

A digest cycle runs from one scheduled digest day to the next. A double click, two members pressing
their own previews, or Slack retrying a slow request would each post the digest again, so the post
goes through the delivery ledger (``bot.schedule.delivery``) under the cycle's ``manual_key``, claimed
exclusively: the first press posts, every later one in the cycle (or one arriving while the first is
still posting) is told so and posts nothing. Once the cycle's scheduled digest has been posted, or
while the schedule is posting it, a press posts nothing either: the channel has this period's digest.
A press on the digest day before the scheduled time posts, and takes the place of that day's
scheduled digest (it covers the same days): the claim marks the scheduled key skipped, when the
schedule has not begun it, in the same transaction, so the schedule cannot post a second copy while the press's post is on its way, and the
mark is lifted if the post fails, so the digest still arrives on time. The next cycle's digest
arrives on its day as usual.

The post is made without the app client's rate-limit retries and within ``EXCLUSIVE_S`` in all
(``bot.schedule.delivery``): a post slower than its claim could be taken over by another press and
posted twice. A rate limit is answered "try again in a minute".

The organisation digest's "Post to channel" (``bot.listeners.actions.org_digest``) takes the same
steps with its own keys and channel: ``Press`` says what differs, ``post_once`` and ``answer`` are
shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

import sqlite_utils

from bot.authz import allowed
from bot.payload import message_channel, tell, user_id
from bot.render.digest import message as digest_message
from bot.render.templates import escape_mrkdwn
from bot.schedule.delivery import Key, Outcome, deliver, settled
from bot.schedule.scheduler import manual_key, scheduled_key
from metrics.digest import build_digest, digest_window
from metrics.nudges import last_digest_day
from metrics.teams import Team, team_for_channel
from metrics.timeutil import parse_instant

POSTED = ("sent", "recovered")


def cycle_day(team: Team, now: datetime) -> date:
    """The scheduled digest day the current digest cycle began on (today, on a digest day)."""
    return last_digest_day(team, now.astimezone(team.tz).date())


@dataclass
class Press:
    """One press of a preview's "Post to channel": what it posts, where, and under which keys. The
    team's digest and the organisation's share every step (``post_once``) and every answer
    (``answer``); only these differ."""

    what: str  # "digest", "organisation digest": how the answers name it
    channel: str
    tz: tzinfo  # the answers' times
    scheduled: Key  # the cycle's scheduled digest: sent, a press posts nothing; not yet, it stands for it
    manual: Key  # this cycle's post by hand: once
    compose: Callable[[], dict]  # the chat.postMessage payload, composed only when it will be posted


def post_once(db: sqlite_utils.Database, client, press: Press) -> Outcome:
    """Post ``press``'s digest once a cycle: nothing when the cycle's scheduled digest is in the
    channel or a press already posted (neither costs a figure), else an exclusive claim standing for
    the scheduled digest (``bot.schedule.delivery``)."""
    outcome = settled(db, press.scheduled)  # a press after the schedule's digest costs no figures
    if outcome is None or outcome.state != "already-sent":
        outcome = settled(db, press.manual)  # nor does a repeat press
        if outcome is None:
            outcome = deliver(
                db, client, press.manual, press.compose(), exclusive=True, stand_for=press.scheduled
            )
    return outcome


def _when(stamp: str | None, tz: tzinfo) -> str:
    at = parse_instant(stamp)
    if at is None:
        return ""
    return datetime.fromtimestamp(at, tz).strftime(" at %H:%M %Z on %a %d %b")


def answer(outcome: Outcome, press: Press) -> str:
    """What the presser is told, in one line."""
    where, what = f"<#{press.channel}>", press.what
    if outcome.key == press.scheduled and outcome.state == "in-flight":  # the schedule, posting it now
        return f"The schedule is posting this period's {what} to {where} right now."
    if outcome.key == press.scheduled:  # the cycle's scheduled digest, already in the channel
        return f"This period's {what} was posted to {where} by the schedule{_when(outcome.at, press.tz)}."
    if outcome.state in POSTED:
        return f"Posted the {what} to {where}."
    if outcome.state == "already-sent":
        return (
            f"Already posted to {where}{_when(outcome.at, press.tz)}; this period's {what} goes there once."
        )
    if outcome.state == "in-flight":
        return f"The {what} is being posted to {where} right now (pressed{_when(outcome.at, press.tz)})."
    return f"Could not post the {what} to {where}: {escape_mrkdwn(outcome.error)}. Try again in a minute."


def settle(db: sqlite_utils.Database, client, respond, press: Press) -> Outcome:
    """Post once and tell the presser: the preview gives way to "Posted"; any other answer leaves
    it, as a new ephemeral line."""
    outcome = post_once(db, client, press)
    tell(respond, replace_original=outcome.state in POSTED, text=answer(outcome, press))
    return outcome


def post_digest(ack, body, client, respond, context) -> None:
    ack()
    deps = context["deps"]
    channel, user = message_channel(body), user_id(body)
    team = team_for_channel(deps.store.db, channel, ws=deps.ws)
    if team is None:
        tell(respond, replace_original=False, text="This channel has no team any more.")
        return
    # Whoever clicks must be in the channel now, not only when the preview was made.
    refusal = f"Only members of <#{team.channel}> can post its digest there."
    if not allowed(deps, client, team.channel, user, respond, refusal):
        return
    now = deps.clock()
    db = deps.store.db
    day = cycle_day(team, now)

    def compose() -> dict:
        window = digest_window(team, now)
        return digest_message(
            build_digest(db, team, now, window=window, ws=deps.ws), now, channel=team.channel
        )

    keys = scheduled_key(team, day, ws=deps.ws), manual_key(team, day, ws=deps.ws)
    press = Press("digest", team.channel, team.tz, *keys, compose)
    settle(db, client, respond, press)
