"""``/vsm experiment`` opens the experiment form; "Stop early" ends a running experiment.

Both belong to the members of the team's channel, checked when they happen: the form is opened only
for a member (within the 3 seconds its ``trigger_id`` lives, as the settings form is), and a click on
Stop early is checked against the channel of the experiment's own team, wherever the button was
clicked (the announcement, the digest, a digest preview in App Home). The verdict a stop produces is
posted through the delivery ledger under the experiment's one verdict key (``bot.schedule.verdicts``),
so a second click, another member's click, or the scheduled end arriving at the same moment posts
nothing more.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.authz import BEFORE_OPEN_S, allowed
from bot.logline import slack_error
from bot.payload import first_action, tell, text, user_id
from bot.render.experiment import choices, modal, nothing_to_judge
from bot.render.templates import escape_mrkdwn
from bot.schedule.delivery import Outcome
from bot.schedule.verdicts import post_verdict
from metrics import experiments as ex
from metrics.errors import VsmError
from metrics.teams import get_team

if TYPE_CHECKING:
    from bot.app import Deps
    from metrics.teams import Team

log = logging.getLogger("vsm.bot")

_ID = re.compile(r"[0-9]{1,18}")


def open_experiment(client, deps: Deps, trigger_id: object, user: object, team: Team, respond) -> None:
    """Open the experiment form for a member of the team's channel; a team none of whose metrics
    a verdict could judge is told why instead, and no form opens."""
    who = text(user)
    refusal = f"Only members of <#{team.channel}> can start an experiment for its team."
    if not allowed(deps, client, team.channel, who, respond, refusal, within=BEFORE_OPEN_S):
        return
    judged, _ = choices(team)
    if not judged:
        tell(respond, nothing_to_judge(team))
        return
    try:
        client.views_open(trigger_id=text(trigger_id), view=modal(team, who))
    except SlackApiError as exc:  # an expired or forged trigger_id
        log.info("experiment modal not opened for %s: %s", who, slack_error(exc))
        tell(respond, "Slack would not open the experiment form; run `/vsm experiment` again.")


def _sentence(message: str) -> str:
    said = escape_mrkdwn(message)
    return said[:1].upper() + said[1:] + "."


def _answer(done: ex.Experiment, channel: str, outcome: Outcome) -> str:
    """What the clicker is told once the experiment is over: where its verdict is, or why not yet."""
    what = f"experiment #{done.id} on {escape_mrkdwn(done.metric_name)}"
    head = f"Stopped {what} early" if done.stopped_early else f"The {what} had run its course"
    where = f"<#{channel}>"
    if outcome.state in ("sent", "recovered"):
        return f"{head}: the verdict ({escape_mrkdwn(done.verdict)}) is in {where}."
    if outcome.state == "already-sent":
        return f"{head}: its verdict is already in {where}."
    if outcome.state == "in-flight":
        return f"{head}: its verdict is being posted to {where} right now."
    error = escape_mrkdwn(outcome.error or "unknown error")
    return f"{head}, but its verdict could not be posted to {where} ({error}); it is tried again within 15 minutes."


def stop_early(ack, body, client, respond, context) -> None:
    """The "Stop early" button on a running experiment (value: its id), behind Slack's confirm: the
    verdict on the data so far, marked stopped early, posted to the team's channel once. Pressed
    after the end (the announcement's button lives on), it is no stop: the verdict on the whole run
    is posted now if its data is in, else the presser is told what it waits for, nothing changed."""
    ack()
    deps = context["deps"]
    db = deps.store.db
    user = user_id(body)
    value = text(first_action(body).get("value")).strip()
    exp = ex.get(db, int(value), ws=deps.ws) if _ID.fullmatch(value) else None
    if exp is None:
        log.info("stop early refused for %r: no experiment %r", user, value[:40])
        tell(respond, "That experiment is not known here.")
        return
    try:
        team = get_team(db, exp.team, ws=deps.ws)
    except VsmError:
        tell(respond, f"{escape_mrkdwn(exp.team)} is no longer a team here.")
        return
    if not team.channel:
        tell(
            respond, f"{escape_mrkdwn(team.name)} has no channel: nobody can stop its experiments from Slack."
        )
        return
    refusal = f"Only members of <#{team.channel}> can stop its team's experiments."
    if not allowed(deps, client, team.channel, user, respond, refusal):
        return
    try:
        done = ex.stop(db, exp.id, team, who=user, now=deps.clock(), ws=deps.ws)
    except ex.Waiting as exc:  # an old button pressed after the end: its verdict waits for the data
        log.info("stop of #%s by %r after its end: waiting for its data", exp.id, user)
        tell(respond, _sentence(str(exc)).replace("the team's channel", f"<#{team.channel}>"))
        return
    except VsmError as exc:  # over already (a second click), or not started yet
        log.info("stop early of #%s by %r: %s", exp.id, user, exc)
        tell(respond, _sentence(str(exc)))
        return
    outcome = post_verdict(db, client, done)
    log.info("experiment #%s stopped by %s: verdict %s", done.id, user, outcome.state)
    tell(respond, _answer(done, team.channel, outcome))
