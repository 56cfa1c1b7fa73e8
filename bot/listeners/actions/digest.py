"""The digest preview's "Post to channel": the digest as it stands now, posted by a channel member,
once per digest cycle however often it is pressed.

A digest cycle runs from one scheduled digest day to the next. A double click, two members pressing
their own previews, or Slack retrying a slow request would each post the digest again, so the post
goes through the delivery ledger (``bot.schedule.delivery``) under the cycle's ``manual_key``, claimed
exclusively: the first press posts, every later one in the cycle (or one arriving while the first is
still posting) is told so and posts nothing. Once the cycle's scheduled digest has been posted, a
press posts nothing either: the channel has this period's digest. A press on the digest day before
the scheduled time posts, and the scheduled digest of that day is then recorded as skipped (it would
cover the same days); the next cycle's digest arrives on its day as usual.
"""

from __future__ import annotations

from datetime import date, datetime

from bot.authz import allowed, before_ack
from bot.payload import message_channel, tell, user_id
from bot.render.digest import message as digest_message
from bot.render.templates import escape_mrkdwn
from bot.schedule.delivery import CLAIM_S, Key, Outcome, deliver, settled
from bot.schedule.scheduler import manual_key
from metrics.digest import build_digest, digest_window
from metrics.nudges import last_digest_day
from metrics.teams import Team, team_for_channel
from metrics.timeutil import parse_instant

POST_TIMEOUT_S = CLAIM_S / 4  # the whole post, well inside the claim

POSTED = ("sent", "recovered")


def cycle_day(team: Team, now: datetime) -> date:
    """The scheduled digest day the current digest cycle began on (today, on a digest day)."""
    return last_digest_day(team, now.astimezone(team.tz).date())


def _when(stamp: str | None, team: Team) -> str:
    at = parse_instant(stamp)
    if at is None:
        return ""
    return datetime.fromtimestamp(at, team.tz).strftime(" at %H:%M %Z on %a %d %b")


def _answer(outcome: Outcome, team: Team) -> str:
    if outcome.key.kind == "digest":  # the cycle's scheduled digest, already in the channel
        return (
            f"This period's digest was posted to <#{team.channel}> by the schedule{_when(outcome.at, team)}."
        )
    if outcome.state in POSTED:
        return f"Posted the digest to <#{team.channel}>."
    if outcome.state == "already-sent":
        return f"Already posted to <#{team.channel}>{_when(outcome.at, team)}; this period's digest goes there once."
    if outcome.state == "in-flight":
        return (
            f"The digest is being posted to <#{team.channel}> right now (pressed{_when(outcome.at, team)})."
        )
    return f"Could not post the digest to <#{team.channel}>: {escape_mrkdwn(outcome.error)}. Try again in a minute."


def post_digest(ack, body, client, respond, context) -> None:
    ack()
    deps = context["deps"]
    channel, user = message_channel(body), user_id(body)
    team = team_for_channel(deps.store.db, channel)
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
    scheduled = settled(db, Key(team.name, "digest", day.isoformat()))
    if scheduled is not None and scheduled.state == "already-sent":
        tell(respond, replace_original=False, text=_answer(scheduled, team))
        return
    key = manual_key(team, day)
    outcome = settled(db, key)  # a repeat press costs no figures
    if outcome is None:
        window = digest_window(team, now)
        payload = digest_message(build_digest(db, team, now, window=window), now, channel=team.channel)
        # No retries that sleep: a post slower than the claim (CLAIM_S) could be taken over and
        # posted twice; a failed post is said, and a press retries it.
        outcome = deliver(db, before_ack(client, timeout=POST_TIMEOUT_S), key, payload, exclusive=True)
    # The preview gives way to "Posted"; any other answer leaves it, as a new ephemeral line.
    tell(respond, replace_original=outcome.state in POSTED, text=_answer(outcome, team))
