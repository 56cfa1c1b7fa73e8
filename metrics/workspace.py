"""Which Slack workspace a row belongs to (issue 14): every team, org setting, settings log row,
delivery, nudge, experiment and stored figure carries one, so a command in one workspace never reads
or writes another's, and the same team name may exist in both.

A workspace is a string key, passed explicitly (never a ``Team`` field: it is where a team lives, not
one of its settings). Source data (raw payloads, items, PRs, deployments, incidents) has none: it is
what the deployment syncs, and each workspace's teams scope it as they choose.
"""

from __future__ import annotations

import re
from typing import NewType

from metrics.errors import VsmError

Workspace = NewType("Workspace", str)

SINGLE = Workspace("")
"""Single-workspace mode (``SLACK_BOT_TOKEN``): one workspace per deployment, whichever it is. Every row
written before installs existed is here, so a database from before keeps working unchanged."""

_KEY = re.compile(r"[TE][A-Z0-9]{1,31}")


def workspace_of(enterprise_id: str | None, team_id: str | None, org_wide: bool | None) -> Workspace:
    """The key of an installed workspace: its team id (``T…``), or, for an org-wide Enterprise Grid
    installation, the enterprise id (``E…``): one installation serves every workspace of the org,
    which then share one set of teams. A workspace installed on its own is keyed by its team id even
    on a Grid, since Slack's team ids are unique across Grids and a workspace that joins one keeps its
    id (and so its teams)."""
    key = (enterprise_id if org_wide else team_id) or ""
    if not _KEY.fullmatch(key):
        raise VsmError(f"not a Slack workspace: enterprise {enterprise_id!r}, team {team_id!r}")
    return Workspace(key)


def parse_workspace(text: str) -> Workspace:
    """A workspace named on the command line (``--workspace T…``): a team id, an enterprise id, or
    ``""`` for single-workspace mode."""
    text = text.strip()
    if text and not _KEY.fullmatch(text):
        raise VsmError(f"{text!r} is not a Slack workspace id (T… or, for an org-wide Grid install, E…)")
    return Workspace(text)


def shown(ws: Workspace) -> str:
    """A workspace in words, for messages and logs."""
    return f"workspace {ws}" if ws else "the single workspace"


def is_org_wide(ws: Workspace) -> bool:
    """Whether ``ws`` is an org-wide Enterprise Grid install (keyed by its enterprise id): its org
    settings are the whole Grid's."""
    return ws.startswith("E")
