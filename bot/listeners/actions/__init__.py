"""Clicks on buttons and menus: one module per control, each listener acknowledging at once."""

from __future__ import annotations

from slack_bolt import App

from bot import ids
from bot.listeners.actions import (
    chart,
    digest,
    experiment,
    explain,
    north_star,
    org_digest,
    portfolio,
    scope,
    settings,
    snooze,
)


def register(app: App) -> None:
    app.action(ids.EXPLAIN)(explain.explain)
    app.action(ids.POST_DIGEST)(digest.post_digest)
    app.action(ids.SETUP_TEAM)(settings.setup_team)
    app.action(ids.ADJUST_METRICS)(settings.adjust_metrics)
    app.action(ids.CHART)(chart.chart_menu)
    app.action(ids.SNOOZE_NUDGES)(snooze.snooze_nudges)
    app.action(ids.SET_NORTH_STAR)(north_star.set_north_star)
    app.action(ids.SCOPE_PROJECTS)(scope.scope_entered)
    app.action(ids.STOP_EXPERIMENT)(experiment.stop_early)
    app.action(ids.POST_ORG_DIGEST)(org_digest.post_org_digest)
    app.action(ids.PREVIEW_TEAM_DIGEST)(portfolio.preview_team_digest)
