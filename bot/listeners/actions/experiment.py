"""``/vsm experiment`` opens the experiment form; "Stop early" ends a running experiment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.payload import tell

if TYPE_CHECKING:
    from bot.app import Deps
    from metrics.teams import Team


def open_experiment(client, deps: Deps, trigger_id: object, user: object, team: Team, respond) -> None:
    """Open the experiment modal for a member of the team's channel. (Issue 13: not built yet.)"""
    tell(respond, "Starting an experiment from Slack is not built yet.")


def stop_early(ack, body, client, respond, context) -> None:
    """The "Stop early" button on a running experiment. (Issue 13: not built yet.)"""
    ack()
