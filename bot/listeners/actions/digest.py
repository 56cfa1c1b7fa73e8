"""The digest preview's "Post to channel": the digest as it stands now, posted by a channel member."""

from __future__ import annotations

from bot.authz import allowed
from bot.payload import message_channel, tell, user_id
from bot.render.digest import message as digest_message
from metrics.digest import build_digest
from metrics.teams import team_for_channel


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
    client.chat_postMessage(
        **digest_message(build_digest(deps.store.db, team, now), now, channel=team.channel)
    )
    tell(respond, replace_original=True, text=f"Posted the digest to <#{team.channel}>.")
