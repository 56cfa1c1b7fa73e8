"""The teams in words: `vsm teams` in a terminal and `/vsm teams` in Slack say the same facts the
same way (name, channel, time zone, chosen metrics, digest schedule), so the wording lives here once.

Light on purpose: `vsm teams` imports it, and listing teams loads neither the metric catalogue nor
the template engine (tests/test_startup.py). Metrics are named by id, as `/vsm <metric>` takes them.
"""

from __future__ import annotations

from bot.render.templates import Trusted, escape_mrkdwn
from metrics.teams import CHANNEL_ID, Team

NO_TEAMS = "No teams yet: declare them in vsm.toml, or set one up with `/vsm settings` in the team's channel."
NO_METRICS = "no metrics chosen"
DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


def every(day: object) -> str:
    """A digest day as a schedule says it: "Mondays". The day as stored may be a whole name
    ("Monday"): its first three letters decide, as ``metrics.teams.check_digest`` reads it."""
    key = str(day).lower()[:3]
    return f"{DAY_NAMES[key]}s" if key in DAY_NAMES else str(day)


def schedule(team: Team) -> str:
    """When the team's digest arrives and what it covers: "Mondays 09:00 Europe/London, last 28 days"."""
    digest = team.digest
    return f"{every(digest.get('day', 'mon'))} {digest.get('time', '09:00')} {team.timezone}, last {digest.get('period_days', 28)} days"


def metrics(team: Team) -> str:
    """The team's chosen metrics by id, in its order: "cycle-time, throughput"."""
    return ", ".join(team.metrics) or NO_METRICS


def facts(team: Team) -> dict:
    """One team's facts as both surfaces list them (unescaped: each surface escapes for itself)."""
    return {
        "name": team.name,
        "channel": team.channel,
        "timezone": team.timezone,
        "metrics": metrics(team),
        "schedule": schedule(team),
    }


def channel_link(channel: str) -> Trusted:
    """``<#C0123>`` for a channel id, which Slack shows as the channel's name; anything else (no
    channel yet) in words, escaped."""
    return Trusted(
        f"<#{channel}>" if CHANNEL_ID.fullmatch(channel) else escape_mrkdwn(channel or "no channel")
    )
