"""The rows each workspace owns (issue 14, schema m013): which workspaces the database holds, deleting
one's rows (``vsm forget-workspace``) and handing single-workspace mode's rows to an installed
workspace (``vsm move-workspace``), each in one transaction.

Source data (raw payloads, items, PRs, deployments, incidents, sync status) is the deployment's and
has no workspace; the replayed flows are a cache of it, kept for the mappings some team still uses.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlite_utils

from metrics.errors import VsmError
from metrics.store import flows
from metrics.store.tx import transaction
from metrics.teams import all_teams
from metrics.workspace import SINGLE, Workspace, shown

OWNED = ("teams", "org", "settings_log", "deliveries", "nudge_log", "experiments", "results")
"""The tables whose every row belongs to one workspace."""

CACHED = ("results",)
"""Owned tables that only cache what the others hold: recomputed by their next reader."""

INSTALLED_AS = "case when is_enterprise_install then enterprise_id else team_id end"
"""An ``installations`` row's workspace, as ``metrics.workspace.workspace_of`` draws it: an org-wide
Grid install is its enterprise, any other its team."""


def holdings(db: sqlite_utils.Database) -> dict[Workspace, dict[str, int]]:
    """Every workspace the database holds a row for (in an owned table, or installed with no row yet),
    with its number of rows in each owned table and in ``installations``."""
    held: dict[Workspace, dict[str, int]] = {}
    for table in (*OWNED, "installations"):
        column = INSTALLED_AS if table == "installations" else "workspace"
        for ws, n in db.execute(f"select {column}, count(*) from {table} group by 1"):
            held.setdefault(Workspace(ws), dict.fromkeys((*OWNED, "installations"), 0))[table] = n
    return held


def installed(db: sqlite_utils.Database, ws: Workspace) -> bool:
    return db.execute(f"select 1 from installations where {INSTALLED_AS} = ?", [ws]).fetchone() is not None


def bot_tokens(db: sqlite_utils.Database, ws: Workspace) -> frozenset[str]:
    """The bot tokens stored for ``ws`` (one per app's row): what ``forget`` is told Slack found dead,
    so that a token stored after Slack was asked (a reinstall) refuses the delete. Never shown."""
    return frozenset(
        t for (t,) in db.execute(f"select bot_token from installations where {INSTALLED_AS} = ?", [ws]) if t
    )


def forget(db: sqlite_utils.Database, ws: Workspace, *, dead_tokens: Collection[str] = ()) -> dict[str, int]:
    """Delete every row ``ws`` owns, in one transaction, and the replayed flows no team of any
    workspace uses any more; the rows deleted per table. An installed workspace's teams are in use, so
    an installation refuses the whole, under the write lock, unless every one of its bot tokens is in
    ``dead_tokens`` (Slack said so: the app was uninstalled and the event missed): then its
    installation rows go in the same transaction (counted as ``installations``). A token that is not
    (a reinstall since Slack was asked, or a workspace installed since the caller's check) refuses."""
    if ws == SINGLE:
        raise VsmError("single-workspace mode's rows are not forgotten this way")
    with transaction(db):
        if installed(db, ws) and not (dead_tokens and bot_tokens(db, ws) <= set(dead_tokens)):
            raise VsmError(f"workspace {ws} was installed meanwhile: nothing deleted")
        deleted = {t: db.execute(f"delete from {t} where workspace = ?", [ws]).rowcount for t in OWNED}
        if dead_tokens:
            deleted["installations"] = db.execute(
                f"delete from installations where {INSTALLED_AS} = ?", [ws]
            ).rowcount
        flows.keep_only(db, [t.flow.fingerprint for t in all_teams(db)])
    return deleted


def move_single(db: sqlite_utils.Database, to: Workspace) -> dict[str, int]:
    """Hand every row of single-workspace mode (``SINGLE``) to workspace ``to``, in one transaction:
    an operator who ran vsm-bot on ``SLACK_BOT_TOKEN`` and now serves installs keeps the teams,
    settings, experiments and history the workspace set up. Refused when ``to`` already holds
    anything but cached figures (nothing is merged over what exists). The delivery ledger's keys gain
    the workspace (``bot.schedule.delivery.Key``), so nothing already sent is sent again. Stored
    figures are dropped, not moved: their next reader computes them. Returns the rows moved per table."""
    if to == SINGLE:
        raise VsmError(
            "move-workspace takes the workspace to move to (T…, or E… for an org-wide Grid install)"
        )
    with transaction(db):
        kept = [t for t in OWNED if t not in CACHED]
        taken = [t for t in kept if db.execute(f"select 1 from {t} where workspace = ?", [to]).fetchone()]
        if taken:
            raise VsmError(
                f"{shown(to)} already has its own {', '.join(taken)}: nothing moved "
                f"(`vsm forget-workspace {to}` first, if those are to go)"
            )
        moved = {}
        for table in kept:
            sets = "workspace = :to, key = :to || ':' || key" if table == "deliveries" else "workspace = :to"
            moved[table] = db.execute(f"update {table} set {sets} where workspace = ''", {"to": to}).rowcount
        for table in CACHED:
            db.execute(f"delete from {table} where workspace in ('', ?)", [to])
    return moved
