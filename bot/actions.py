"""Buttons: Explain, Post digest, Set up a team, Adjust metrics. Each is acknowledged at once."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from slack_bolt import App

from bot import chart, replies, settings_modal
from bot.command_parse import first_action, message_channel, obj, selected_value, text, user_id
from bot.digest_view import message as digest_message
from bot.settings_modal import allowed, tell
from metrics import catalogue
from metrics.digest import build_digest
from metrics.errors import VsmError
from metrics.teams import save_team, team_for_channel
from metrics.timeutil import dates_window, iso, parse_instant, window_between

log = logging.getLogger("vsm.bot")


def open_settings(client, deps, trigger_id: str | None, user: str | None, channel: str, respond) -> None:
    """The settings modal for the channel's team (or a new one), for channel members only."""
    settings_modal.open_modal(client, deps, trigger_id, user, channel, respond)


def _spec(value: str) -> dict:
    """An Explain button's value (``replies._figure``): JSON with metric, team, since and until."""
    try:
        return obj(json.loads(value))
    except ValueError:
        return {}


def _refused(kind: str, body: dict, why: str) -> None:
    """A click the bot will not act on: acknowledged, answered where it can be, and one log line."""
    log.info("%s refused for %r: %s", kind, user_id(body), why)


def register(app: App, deps) -> None:
    @app.action("explain")
    def explain(ack, body, respond):
        ack()
        spec = _spec(text(first_action(body).get("value")))
        try:
            # The channel decides the team, as for /vsm: a button's value is the clicker's to forge,
            # and must not show another team's items in this channel.
            team = team_for_channel(deps.store.db, message_channel(body))
            if team is None or team.name != text(spec.get("team")):
                raise VsmError("this button belongs to another channel's team")
            start, end = parse_instant(text(spec.get("since"))), parse_instant(text(spec.get("until")))
            if start is None or end is None:
                raise VsmError("the button does not say which period")
            window = window_between(start, end, team.tz, "the period")
            result = catalogue.compute(deps.store.db, team, text(spec.get("metric")), window, deps.clock())
        except (VsmError, ValueError) as exc:  # parse_instant: ValueError on a malformed time
            _refused("explain", body, str(exc))
            tell(
                respond, replace_original=False, **replies.help_message(f"Cannot explain that figure: {exc}")
            )
            return
        tell(respond, replace_original=False, **replies.explain_message(team, result))

    @app.action("post_digest")
    def post_digest(ack, body, client, respond):
        ack()
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

    @app.action("setup_team")
    def setup_team(ack, body, client, respond):
        ack()
        channel = text(first_action(body).get("value")) or message_channel(body)
        open_settings(client, deps, text(body.get("trigger_id")), user_id(body), channel, respond)

    @app.action("adjust_metrics")
    def adjust_metrics(ack, body, client, respond):
        ack()
        # From a digest: the message's channel; from App Home: the team's channel in the button.
        channel = message_channel(body) or text(first_action(body).get("value"))
        open_settings(client, deps, text(body.get("trigger_id")), user_id(body), channel, respond)

    @app.action("chart")
    def chart_action(ack, body, client, respond):
        ack()
        team = team_for_channel(deps.store.db, message_channel(body))
        try:
            if team is None:
                raise VsmError("this channel has no team")
            parts = selected_value(first_action(body)).split("|")
            if len(parts) != 3:
                raise VsmError("the menu did not say which metric and period")
            mid, since, until = parts
            window = dates_window(since, until, team.tz)
            result = catalogue.compute(deps.store.db, team, mid, window, deps.clock())
        except VsmError as exc:
            _refused("chart", body, str(exc))
            tell(respond, replace_original=False, **replies.help_message(f"Cannot chart that: {exc}"))
            return
        # The chart is posted to the channel: like a digest, only by whoever is in it now (a public
        # channel's digest menu is there for anyone browsing it).
        refusal = f"Only members of <#{team.channel}> can post a chart there."
        if not allowed(deps, client, team.channel, user_id(body), respond, refusal):
            return
        problem = chart.upload(client, team.channel, catalogue.get(mid), result, team.targets.get(mid))
        if problem:
            tell(respond, replace_original=False, text=problem[0].upper() + problem[1:] + ".")

    @app.action("snooze_nudges")
    def snooze(ack, body, client, respond):
        ack()
        channel, user = message_channel(body), user_id(body)
        choice = selected_value(first_action(body))
        if choice == "settings":
            open_settings(client, deps, text(body.get("trigger_id")), user, channel, respond)
            return
        # "0" resumes; 1 to 30 days snooze. ASCII digits only: "²".isdigit() is True, int("²") fails.
        if not (choice.isascii() and choice.isdigit() and len(choice) <= 2 and int(choice) <= 30):
            _refused("snooze_nudges", body, f"choice {choice[:20]!r}")
            tell(respond, replace_original=False, text="Choose how long to snooze the nudges from the menu.")
            return
        team = team_for_channel(deps.store.db, channel)
        refusal = "Only members of the team's channel can snooze its nudges."  # no team: no members
        if not allowed(deps, client, team.channel if team else "", user, respond, refusal):
            return
        days = int(choice)
        now = deps.clock()
        team.snooze_until = iso((now + timedelta(days=days)).timestamp()) if days else ""
        if save_team(deps.store.db, team, who=user, what="snoozed nudges" if days else "resumed nudges"):
            deps.on_team_saved(team)
            until = (now + timedelta(days=days)).astimezone(team.tz)
            said = f"snoozed nudges until {until:%a %d %b %H:%M %Z}" if days else "resumed nudges"
            client.chat_postMessage(channel=channel, text=f"<@{user}> {said}.")

    settings_modal.register(app, deps)
