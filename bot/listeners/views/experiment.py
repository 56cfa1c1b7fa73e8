"""The experiment modal's submission: a team starts an improvement experiment.

Checked at the moment of the write, not when the form was opened: the submitter opened this form
(``private_metadata``) and is a member of the team's channel now; the team still exists, in that
channel; and every field is checked by ``metrics.experiments.start`` itself, which refuses on the
field at fault (``Refused``): too long a text, weeks outside 2–12 (or under 10 for a metric compared
week by week), a metric the team does not have or a verdict could not judge (a forged option), a
second experiment on a metric that already runs one. A refusal is answered on its field and stores
nothing. A start is announced in the team's channel with a Stop early button.
"""

from __future__ import annotations

import logging
import re

from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.authz import form_refused
from bot.logline import slack_error
from bot.payload import obj, private_metadata, selected_value, state_values, text, user_id
from bot.render.experiment import started_message
from bot.render.templates import cut
from bot.settings_form import ERROR_CHARS
from metrics import experiments as ex
from metrics.errors import VsmError
from metrics.teams import get_team

log = logging.getLogger("vsm.bot")

_WEEKS = re.compile(r"[0-9]{1,2}")


def _fields(view: dict) -> tuple[str, str, object]:
    """(what the team will try, the metric id, the weeks) as submitted; anything malformed is passed
    on as it is, for ``experiments.start`` to refuse on its field."""
    values = state_values(view)
    change = text(obj(values.get("change", {}).get("v")).get("value"))
    metric = selected_value(obj(values.get("metric", {}).get("v")))
    weeks: object = selected_value(obj(values.get("weeks", {}).get("v")))
    if isinstance(weeks, str) and _WEEKS.fullmatch(weeks):
        weeks = int(weeks)
    return change, metric, weeks


def submit(ack, body, view, client, context) -> None:
    """An experiment submitted: checked, stored and announced, or answered on its fields."""
    deps = context["deps"]
    view = obj(view)
    meta, user = private_metadata(view), user_id(body)
    # The submitter opened this form and is in the team's channel now (leaving it since takes the right away).
    if form_refused(
        ack,
        deps,
        client,
        meta,
        user,
        field="change",
        not_theirs="Only the member of the team's channel who opened this form can submit it.",
        not_member="Only members of the team's channel can start its experiments, and you are not in it now.",
    ):
        return
    db = deps.store.db
    try:
        team = get_team(db, text(meta.get("team")), ws=deps.ws)
    except VsmError:
        team = None
    if team is None or team.channel != meta.get("channel"):
        ack(
            response_action="errors",
            errors={"change": "This channel's team changed. Close this form and run /vsm experiment again."},
        )
        return
    change, metric, weeks = _fields(view)
    try:
        exp = ex.start(db, team, metric, change, weeks, who=user, now=deps.clock(), ws=deps.ws)  # type: ignore[arg-type]
    except ex.Refused as exc:
        log.info("experiment for %s not started, %s: %s", team.name, exc.field, exc)
        ack(response_action="errors", errors={exc.field: cut(str(exc), ERROR_CHARS)})
        return
    except VsmError as exc:
        ack(response_action="errors", errors={"change": cut(str(exc), ERROR_CHARS)})
        return
    ack()
    try:
        client.chat_postMessage(**started_message(exp, team, user))
    except (SlackApiError, SlackRequestError, OSError) as exc:  # started: the digest shows it still
        log.warning("experiment #%s started, not announced in %s: %s", exp.id, team.channel, slack_error(exc))
