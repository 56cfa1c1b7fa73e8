"""Every action id and modal callback id the app sends and listens for, named once.

The listeners register on these names and the templates render them (``ids.EXPLAIN`` in a
template is this module's ``EXPLAIN``), so a renamed id cannot leave a button that nothing answers.
"""

from __future__ import annotations

# Action ids: buttons and menus in messages, App Home and modals.
EXPLAIN = "explain"  # a figure's Explain button: the items behind it
POST_DIGEST = "post_digest"  # the digest preview's "Post to channel"
SETUP_TEAM = "setup_team"  # "Set up a team here", where a channel has no team
ADJUST_METRICS = "adjust_metrics"  # the settings button of a digest or an App Home team
CHART = "chart"  # the digest's Chart… menu
SNOOZE_NUDGES = "snooze_nudges"  # the overflow menu of a digest or a nudge
SET_NORTH_STAR = "set_north_star"  # "Change (admins)" under the North Star figures
SCOPE_PROJECTS = "scope_projects"  # the settings form's Jira projects: Enter offers their statuses
STOP_EXPERIMENT = "stop_experiment"  # "Stop early" beside a running experiment
POST_ORG_DIGEST = "post_org_digest"  # the org digest preview's "Post to channel"
PREVIEW_TEAM_DIGEST = "preview_team_digest"  # a portfolio team's "Full digest" in App Home

# Callback ids: modal submissions.
TEAM_SETTINGS = "team_settings"
NORTH_STAR = "north_star"
EXPERIMENT = "experiment"


def for_templates() -> dict[str, str]:
    """The ids by name, as the templates see them (``{{ ids.EXPLAIN }}``)."""
    return {k: v for k, v in globals().items() if k.isupper() and isinstance(v, str)}
