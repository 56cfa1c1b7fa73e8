"""The digest preview's "Post to channel": the digest as it stands now, posted by a channel member,
once per digest period however often it is pressed.

A double click, two members pressing their own previews, or Slack retrying a slow request would each
post the digest again. So the post goes through the delivery ledger (``bot.schedule.delivery``) under
``post_key``, claimed exclusively: the first press posts, every later one, or one arriving while the
first is still posting, is told so and posts nothing.

A manual post is *not* the period's scheduled digest: its key differs from the schedule's
(``team/digest-posted/<period>`` beside ``team/digest/<due date>``), so the digest still arrives on its
day. A team relies on that rhythm, and a post made mid-week covers a different run of days than the
scheduled one does.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.authz import allowed
from bot.payload import message_channel, tell, user_id
from bot.render.digest import message as digest_message
from bot.render.templates import escape_mrkdwn
from bot.schedule.delivery import Key, Outcome, deliver, settled
from metrics.digest import build_digest, digest_window
from metrics.teams import Team, team_for_channel
from metrics.timeutil import Window, parse_instant

KIND = "digest-posted"


def post_key(team: Team, window: Window) -> Key:
    """The ledger key of a manual post of the team's digest for ``window`` (its digest period)."""
    last = (window.until - timedelta(days=1)).date()
    return Key(team.name, KIND, f"{window.since.date().isoformat()}..{last.isoformat()}")


def _when(stamp: str | None, team: Team) -> str:
    at = parse_instant(stamp)
    if at is None:
        return ""
    return datetime.fromtimestamp(at, team.tz).strftime(" at %H:%M %Z on %a %d %b")


def _answer(outcome: Outcome, team: Team) -> str:
    if outcome.state in ("sent", "recovered"):
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
    window = digest_window(team, now)
    key = post_key(team, window)
    outcome = settled(deps.store.db, key)  # a repeat press costs no figures
    if outcome is None:
        payload = digest_message(
            build_digest(deps.store.db, team, now, window=window), now, channel=team.channel
        )
        outcome = deliver(deps.store.db, client, key, payload, exclusive=True)
    # The preview gives way to "Posted"; any other answer leaves it, as a new ephemeral line.
    tell(respond, replace_original=outcome.state in ("sent", "recovered"), text=_answer(outcome, team))
