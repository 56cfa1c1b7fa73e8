"""The org digest preview's "Post to channel": the organisation's digest as it stands now, posted to
``[org] channel`` by a member of that channel, once per org digest cycle however often it is pressed.

Exactly the team digest's rules (``bot.listeners.actions.digest``, whose steps it shares): a cycle
runs from one org digest day to the next; the post is claimed exclusively under the cycle's
``org_manual_key``; once the cycle's scheduled org digest is in the channel (or being posted), a
press posts nothing; pressed on the digest day before its time, it stands for that day's scheduled
one. The presser must be in the org channel at the moment of the press, and the press must come
from the preview in the org channel: when ``[org] channel`` has moved since, the old preview posts
nothing.
"""

from __future__ import annotations

from bot.authz import allowed
from bot.listeners.actions.digest import Press, settle
from bot.payload import message_channel, tell, user_id
from bot.render.org_digest import message
from bot.schedule.scheduler import org_cycle_day, org_key, org_manual_key, org_tz
from metrics.org import org_window
from metrics.org_digest import build_org_digest
from metrics.teams import get_org


def post_org_digest(ack, body, client, respond, context) -> None:
    ack()
    deps = context["deps"]
    db = deps.store.db
    org = get_org(db, ws=deps.ws)
    channel, user = org.get("channel"), user_id(body)
    if not channel or message_channel(body) != channel:
        tell(
            respond,
            replace_original=False,
            text="This channel is not the organisation digest's channel any more.",
        )
        return
    # Whoever clicks must be in the org channel now, not only when the preview was made.
    refusal = f"Only members of <#{channel}> can post the organisation digest there."
    if not allowed(deps, client, channel, user, respond, refusal):
        return
    now = deps.clock()
    day = org_cycle_day(org, now)

    def compose() -> dict:
        return message(
            build_org_digest(db, now, window=org_window(org, now), ws=deps.ws), now, channel=channel
        )

    keys = org_key(day, ws=deps.ws), org_manual_key(day, ws=deps.ws)
    press = Press("organisation digest", channel, org_tz(org), *keys, compose)
    settle(db, client, respond, press)
