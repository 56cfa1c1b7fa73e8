"""``/vsm``: acknowledged at once; anything that reads metrics runs after the acknowledgement."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from slack_bolt import App

from bot import chart, replies
from bot.command_parse import parse, text
from bot.digest_view import message as digest_message
from bot.settings_modal import MemberCache, tell
from bot.store import Store
from metrics import catalogue
from metrics.catalogue.forecast import when
from metrics.dataset import TeamData
from metrics.digest import build_digest
from metrics.errors import VsmError
from metrics.teams import Team, get_org, team_for_channel
from metrics.timeutil import default_window, parse_period

log = logging.getLogger("vsm.bot")


def error_line(error: BaseException) -> str:
    """``Type: message (file.py:42)`` on one line: what failed and where, found again from one log
    line; the traceback would spread a user's request over many lines of the server's log."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
    said = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {said} ({where})"


@dataclass
class Deps:
    store: Store
    clock: Callable[[], datetime]
    admins: list[str] = field(default_factory=list)
    # Called with the saved team after every settings change (the scheduler re-plans its jobs).
    on_team_saved: Callable[[Team], None] = field(default=lambda team: None)
    # Channel members, re-read at most once a minute: every change is authorised against them.
    members: MemberCache = field(default_factory=MemberCache)


def metric_result(deps: Deps, team: Team, metric_id: str, period: str | None):
    now = deps.clock()
    window = parse_period(period, team.tz, now) if period else default_window(team.tz, now)
    return catalogue.compute(deps.store.db, team, metric_id, window, now)


def answer(deps: Deps, team: Team, cmd, client=None) -> dict:
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
    if cmd.name == "northstar":
        org = get_org(deps.store.db)
        ids = [m for m in org.get("north_star", []) if m in catalogue.CATALOGUE]
        if not ids:
            return {
                "response_type": "ephemeral",
                "text": "No North Star metrics are set for the organisation yet.",
            }
        return replies.north_star_message(team, [metric_result(deps, team, mid, None) for mid in ids])
    if cmd.name == "digest":
        d = build_digest(deps.store.db, team, now)
        payload = digest_message(d, now)
        payload.pop("channel", None)
        payload["response_type"] = "ephemeral"
        payload["blocks"] = payload["blocks"][:49] + [
            {
                "type": "actions",
                "block_id": "preview_actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "post_digest",
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Post to channel"},
                        "value": team.name[:150],
                    }
                ],
            }
        ]
        return payload
    raise VsmError(f"unexpected command {cmd.name}")


def register(app: App, deps: Deps) -> None:
    @app.command("/vsm")
    def vsm(ack, command, respond):
        cmd = parse(text(command.get("text")))
        if cmd.name in ("help", "error"):
            ack(replies.help_message(cmd.error))
            return
        if cmd.name == "metrics":
            ack(replies.catalogue_message())
            return
        channel = text(command.get("channel_id"))
        team = team_for_channel(deps.store.db, channel)
        if team is None:
            ack(replies.no_team_message(channel))
            return
        if cmd.name == "settings":
            ack()
            from bot.actions import open_settings

            open_settings(
                app.client, deps, command.get("trigger_id"), command.get("user_id"), team.channel, respond
            )
            return
        ack(replies.working_message())
        try:
            reply = answer(deps, team, cmd, app.client)
        except VsmError as exc:
            reply = replies.help_message(str(exc))
        except Exception as exc:  # noqa: BLE001 - the user gets a short answer, the log one line
            log.error("/vsm %s failed: %s", cmd.name, error_line(exc))
            reply = {
                "response_type": "ephemeral",
                "text": "Sorry, that failed on our side; it has been logged.",
            }
        tell(respond, replace_original=True, **reply)
