"""Buttons: Explain, Post digest, Set up a team, Adjust metrics. Each is acknowledged at once."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from slack_bolt import App

from bot import chart, replies, settings_modal
from bot.digest_view import message as digest_message
from metrics import catalogue
from metrics.digest import build_digest
from metrics.errors import VsmError
from metrics.teams import get_team, save_team, team_for_channel
from metrics.timeutil import Window, dates_window, iso, parse_instant

log = logging.getLogger("vsm.bot")


def open_settings(client, deps, trigger_id: str | None, user: str | None, channel: str, respond) -> None:
    """The settings modal for the channel's team (or a new one), for channel members only."""
    settings_modal.open_modal(client, deps, trigger_id, user, channel, respond)


def register(app: App, deps) -> None:
    @app.action("explain")
    def explain(ack, body, respond):
        ack()
        try:
            spec = json.loads(body["actions"][0]["value"])
            team = get_team(deps.store.db, spec["team"])
            start, end = parse_instant(spec["since"]), parse_instant(spec["until"])
            from datetime import datetime

            window = Window(datetime.fromtimestamp(start, team.tz), datetime.fromtimestamp(end, team.tz))
            result = catalogue.compute(deps.store.db, team, spec["metric"], window, deps.clock())
            respond(replace_original=False, **replies.explain_message(team, result))
        except (VsmError, KeyError, ValueError, TypeError) as exc:
            respond(replace_original=False, **replies.help_message(f"Cannot explain that figure: {exc}"))

    @app.action("post_digest")
    def post_digest(ack, body, client, respond):
        ack()
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        team = team_for_channel(deps.store.db, channel or "")
        if team is None:
            respond(replace_original=False, text="This channel has no team any more.")
            return
        now = deps.clock()
        client.chat_postMessage(
            **digest_message(build_digest(deps.store.db, team, now), now, channel=team.channel)
        )
        respond(replace_original=True, text=f"Posted the digest to <#{team.channel}>.")

    @app.action("setup_team")
    def setup_team(ack, body, client, respond):
        ack()
        channel = body["actions"][0].get("value") or (body.get("channel") or {}).get("id", "")
        open_settings(client, deps, body.get("trigger_id"), body["user"]["id"], channel, respond)

    @app.action("adjust_metrics")
    def adjust_metrics(ack, body, client, respond):
        ack()
        # From a digest: the message's channel; from App Home: the team's channel in the button.
        channel = (body.get("channel") or {}).get("id") or body["actions"][0].get("value", "")
        open_settings(client, deps, body.get("trigger_id"), body["user"]["id"], channel, respond)

    @app.action("chart")
    def chart_action(ack, body, client, respond):
        ack()
        channel = (body.get("channel") or {}).get("id") or ""
        team = team_for_channel(deps.store.db, channel)
        try:
            if team is None:
                raise VsmError("this channel has no team")
            mid, since, until = body["actions"][0]["selected_option"]["value"].split("|")
            window = dates_window(since, until, team.tz)
            result = catalogue.compute(deps.store.db, team, mid, window, deps.clock())
            problem = chart.upload(client, team.channel, catalogue.get(mid), result, team.targets.get(mid))
            if problem:
                respond(replace_original=False, text=problem[0].upper() + problem[1:] + ".")
        except (VsmError, KeyError, ValueError) as exc:
            respond(replace_original=False, **replies.help_message(f"Cannot chart that: {exc}"))

    @app.action("snooze_nudges")
    def snooze(ack, body, client, respond):
        ack()
        channel = (body.get("channel") or {}).get("id") or ""
        user = body["user"]["id"]
        choice = body["actions"][0]["selected_option"]["value"]
        if choice == "settings":
            open_settings(client, deps, body.get("trigger_id"), user, channel, respond)
            return
        team = team_for_channel(deps.store.db, channel)
        if team is None or not settings_modal.is_member(client, channel, user):
            respond(replace_original=False, text="Only members of the team's channel can snooze its nudges.")
            return
        days = int(choice) if choice.isdigit() and int(choice) <= 30 else 0
        now = deps.clock()
        team.snooze_until = iso((now + timedelta(days=days)).timestamp()) if days else ""
        if save_team(deps.store.db, team, who=user, what="snoozed nudges" if days else "resumed nudges"):
            deps.on_team_saved(team)
            until = (now + timedelta(days=days)).astimezone(team.tz)
            said = f"snoozed nudges until {until:%a %d %b %H:%M %Z}" if days else "resumed nudges"
            client.chat_postMessage(channel=channel, text=f"<@{user}> {said}.")

    settings_modal.register(app, deps)
