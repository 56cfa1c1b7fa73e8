"""What the synced sources know: the Jira projects, repositories, GitLab projects and incident services
a team's data scope can name, so a typo (``PAYY``, ``acme/payment``) is caught when it is entered, not
weeks later as a digest with no data.

Read from the tool-neutral rows (``work_items``, ``pull_requests``, ``deployments``, ``incidents``); a
source is told apart as GitHub or GitLab by the raw payloads it stored (GitLab's are merge requests).
A kind with nothing synced yet is ``None``: nothing can be checked, which the form says rather than
refusing every entry.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import sqlite_utils

# The scope settings, in the order the form shows them, with the words a lead reads.
SCOPE_LABELS = {
    "jira_projects": "Jira projects",
    "repos": "GitHub repositories",
    "gitlab_projects": "GitLab projects",
    "services": "incident services",
}
_SOURCE = {
    "jira_projects": "Jira",
    "repos": "GitHub",
    "gitlab_projects": "GitLab",
    "services": "an incident or deployment source",
}


@dataclass(frozen=True)
class Known:
    """Per scope setting, the names the store holds; ``None`` where that kind has synced nothing."""

    names: dict[str, frozenset[str] | None]

    def get(self, key: str) -> frozenset[str] | None:
        return self.names.get(key)


def _distinct(db: sqlite_utils.Database, sql: str, params: list | None = None) -> set[str]:
    return {r[0] for r in db.execute(sql, params or []).fetchall() if isinstance(r[0], str) and r[0]}


def _gitlab_sources(db: sqlite_utils.Database, sources: set[str]) -> set[str]:
    """The sources among ``sources`` that stored GitLab merge requests (one primary-key probe each)."""
    return {
        s
        for s in sources
        if db.execute("select 1 from raw where source = ? and kind = 'merge_request' limit 1", [s]).fetchone()
    }


def known(db: sqlite_utils.Database) -> Known:
    """What every kind of source has synced, for checking a team's scope against it."""
    # Each project (the index's distinct values) with one live item: not a scan of every item, which
    # took half a second on a million before the settings form could open.
    projects = _distinct(
        db,
        "select p from (select distinct project as p from work_items) "
        "where exists (select 1 from work_items w where w.project = p and w.deleted = 0)",
    )
    code = _distinct(db, "select distinct source from pull_requests") | _distinct(
        db, "select distinct source from deployments"
    )
    gitlab = _gitlab_sources(db, code) if "raw" in db.table_names() else set()
    by_source: dict[str, set[str]] = {}
    for sql in (
        "select distinct source, repo from pull_requests",
        "select distinct source, service from deployments",
    ):
        for source, name in db.execute(sql).fetchall():
            if isinstance(name, str) and name:
                by_source.setdefault(source, set()).add(name)
    github_names = {n for s, names in by_source.items() if s not in gitlab for n in names}
    gitlab_names = {n for s, names in by_source.items() if s in gitlab for n in names}
    # Incidents name their service; a deployment's service is a repository or a service id.
    services = _distinct(db, "select distinct service from incidents") | github_names | gitlab_names
    return Known(
        {
            "jira_projects": frozenset(projects) or None,
            "repos": frozenset(github_names) or None,
            "gitlab_projects": frozenset(gitlab_names) or None,
            "services": frozenset(services) or None,
        }
    )


def unknown(key: str, entries: list[str], names: frozenset[str] | None) -> str | None:
    """What is wrong with ``entries`` for the scope setting ``key``, in one line, or None. Each entry
    the store does not know is named, with the known name it most likely means (a different case
    counts as a typo: keys and paths are matched exactly)."""
    if names is None:
        return None
    lowered = {n.lower(): n for n in names}
    problems = []
    for entry in entries:
        if entry in names:
            continue
        close = difflib.get_close_matches(entry.lower(), sorted(lowered), n=1, cutoff=0.6)
        guess = lowered.get(entry.lower()) or (lowered[close[0]] if close else None)
        problems.append(f"“{entry[:60]}” (did you mean {guess}?)" if guess else f"“{entry[:60]}”")
    if not problems:
        return None
    return f"Not found in the synced data: {', '.join(problems)}."


# How a count of synced names reads under each scope field: (one, many).
_COUNTED = {
    "jira_projects": ("Jira project", "Jira projects"),
    "repos": ("GitHub repository", "GitHub repositories"),
    "gitlab_projects": ("GitLab project", "GitLab projects"),
    "services": ("service", "services"),
}


def synced_count(key: str, names: frozenset[str] | None) -> str | None:
    """``23 GitHub repositories synced; what you enter is checked against them``: the hint under a
    scope field that has names to check against, saying how many and never which (None for none)."""
    if not names:
        return None
    one, many = _COUNTED[key]
    return f"{len(names)} {one if len(names) == 1 else many} synced; what you enter is checked against them."


def nothing_synced(key: str) -> str:
    """The hint under a scope field whose kind has synced nothing yet."""
    return f"Nothing synced from {_SOURCE[key]} yet, so these cannot be checked."
