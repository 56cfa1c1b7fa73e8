"""``/vsm``: acknowledged at once; anything that reads metrics runs after the acknowledgement."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.listeners.actions.experiment import open_experiment
from bot.listeners.actions.settings import open_settings
from bot.listeners.commands import org, org_digest
from bot.listeners.commands.parse import Command, parse
from bot.payload import tell, text
from bot.render import chart, replies, usage
from bot.render.digest import preview
from metrics import catalogue
from metrics.catalogue.base import Result
from metrics.catalogue.forecast import when
from metrics.dataset import TeamData
from metrics.digest import build_digest, digest_window
from metrics.errors import VsmError, error_line
from metrics.teams import Team, team_for_channel
from metrics.timeutil import parse_period

if TYPE_CHECKING:
    from bot.app import Deps

log = logging.getLogger("vsm.bot")


def metric_result(deps: Deps, team: Team, metric_id: str, period: str | None) -> Result:
    """One figure for the team: over ``period`` when one was typed, else over the team's digest
    period (the last ``period_days`` complete local days), so that `/vsm cycle-time`, App Home and
    the digest show the same number for the same window."""
    now = deps.clock()
    window = parse_period(period, team.tz, now) if period else digest_window(team, now)
    return catalogue.compute(deps.store.db, team, metric_id, window, now)


def answer(deps: Deps, team: Team, cmd: Command, client=None) -> dict:
    """The final reply to a parsed command that needs the team's data (slow: after the ack)."""
    now = deps.clock()
    if cmd.name == "metric":
        result = metric_result(deps, team, cmd.metric, cmd.period)
        reply = replies.metric_message(team, result)
        if cmd.chart and client is not None:
            problem = chart.upload(
                client, team.channel, catalogue.get(cmd.metric), result, team.targets.get(cmd.metric)
            )
            reply["text"] += f" ({problem})" if problem else " (chart posted to the channel)"
        return reply
    if cmd.name == "forecast":
        result = when(TeamData(deps.store.db, team, now), cmd.items)
        return replies.forecast_message(team, result, cmd.items, now)
    if cmd.name == "digest":
        return preview(build_digest(deps.store.db, team, now, ws=deps.ws), now, team)
    raise VsmError(f"unexpected command {cmd.name}")


def vsm(ack, command, respond, client, context) -> None:
    deps = context["deps"]
    cmd = parse(text(command.get("text")))
    if cmd.name in ("help", "error"):
        ack(usage.help_message(cmd.error))
        return
    if cmd.name == "metrics":
        ack(usage.catalogue_message(cmd.family))
        return
    channel = text(command.get("channel_id"))
    if cmd.name in ("northstar", "teams"):  # the levels above the team: any channel
        ack(replies.working_message())
        if cmd.name == "northstar":
            _reply(respond, cmd, lambda: org.northstar_reply(deps, channel))
        else:
            _reply(respond, cmd, lambda: org.teams_reply(deps))
        return
    team = team_for_channel(deps.store.db, channel, ws=deps.ws)
    if team is None:
        if not org_digest.is_org_channel(deps, channel):
            ack(replies.no_team_message(channel))
        elif cmd.name == "digest":
            ack(replies.working_message())
            _reply(respond, cmd, lambda: org_digest.preview_reply(deps))
        else:  # a team's command in the org channel, which no team may use: say where it works
            ack(replies.org_channel_message())
        return
    if cmd.name == "settings":
        ack()
        open_settings(client, deps, command.get("trigger_id"), command.get("user_id"), team.channel, respond)
        return
    if cmd.name == "experiment":
        ack()
        open_experiment(client, deps, command.get("trigger_id"), command.get("user_id"), team, respond)
        return
    ack(replies.working_message())
    _reply(respond, cmd, lambda: answer(deps, team, cmd, client))


def _reply(respond, cmd: Command, make: Callable[[], dict]) -> None:
    """Replace "Working on it…" with ``make()``'s reply: bad input as help, a failure as one line."""
    try:
        reply = make()
    except VsmError as exc:
        reply = usage.help_message(str(exc))
    except Exception as exc:  # noqa: BLE001 - the user gets a short answer, the log one line
        log.error("/vsm %s failed: %s", cmd.name, error_line(exc))
        reply = {
            "response_type": "ephemeral",
            "text": "Sorry, that failed on our side; it has been logged.",
        }
    tell(respond, replace_original=True, **reply)
