"""Terse builders of normalised rows for tests with hand-computed expectations.

Times are given as ``"2026-01-05 09:00"`` (UTC) or epoch seconds; every builder returns what it wrote.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlite_utils

from metrics.sources.http import Policy
from metrics.sources.sync import SourceResult, sync_source
from metrics.store import memory_db, open_db
from metrics.store.statuses import status_code
from metrics.teams import Team, set_org

if TYPE_CHECKING:
    from metrics.catalogue.base import Result
    from metrics.org import Rollup

SRC = "jira"


def ts(value: str | float | None) -> float | None:
    """``"2026-01-05 09:00"`` (UTC, or with an explicit offset) -> epoch seconds."""
    if value is None or isinstance(value, int | float):
        return value
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def new_db() -> sqlite_utils.Database:
    return memory_db()


def org_figure(result: Result, teams: list | None = None) -> Rollup:
    """``result`` as the org's pooled figure of its metric (``metrics.org.Rollup``), with ``teams``'
    rows beside it: what `/vsm northstar` draws, built by hand."""
    from metrics.catalogue import CATALOGUE
    from metrics.catalogue.base import Verdict
    from metrics.org import Rollup

    verdict = Verdict(result.signal, result.signal_note, result.limits, result.signal_detail)
    return Rollup(
        CATALOGUE[result.metric],
        result.window,
        result.value,
        result.previous,
        result.sample_size,
        result.series,
        verdict,
        teams or [],
        previous_note=result.previous_note,
        no_data_reason=result.no_data_reason,
    )


def configure_org(path, **org) -> None:
    """``[org]`` settings written into the database at ``path`` as an org admin's change writes them
    (``set_org``, by UADMIN1)."""
    db = open_db(path, create=False)
    for key, value in org.items():
        set_org(db, key, value, who="UADMIN1")
    db.conn.close()


def team(**kw) -> Team:
    """A team on project PAY, repo acme/pay, service SVC, in UTC, with a simple four-stage workflow."""
    defaults = dict(
        name="pay",
        channel="C1",
        timezone="UTC",
        jira_projects=["PAY"],
        repos=["acme/pay"],
        services=["SVC"],
        workflow=[
            {"stage": "backlog", "kind": "backlog", "statuses": ["Backlog"]},
            {"stage": "committed", "kind": "committed", "statuses": ["Selected"]},
            {"stage": "in_progress", "kind": "active", "statuses": ["In Progress"]},
            {"stage": "review", "kind": "waiting", "statuses": ["In Review"]},
            {"stage": "done", "kind": "done", "statuses": ["Done"]},
        ],
    )
    defaults.update(kw)
    return Team(**defaults)


def item(
    db,
    key: str,
    created: str,
    moves: list[tuple[str, str]] = (),
    *,
    initial: str = "Backlog",
    type: str = "Story",
    resolution: str | None = None,
    project: str | None = None,
    status: str | None = None,
) -> dict:
    """A work item created in ``initial`` that then moves through ``[(at, to_status), ...]``."""
    project = project or key.split("-")[0]
    created_ts = ts(created)
    prev = initial
    last = created_ts
    for seq, (at, to) in enumerate(moves, start=1):
        db["transitions"].insert(
            {
                "source": SRC,
                "key": key,
                "project": project,
                "seq": seq,
                "at": ts(at),
                "from_code": status_code(db, SRC, None, prev),
                "to_code": status_code(db, SRC, None, to),
            }
        )
        prev, last = to, max(last, ts(at))
    row = {
        "source": SRC,
        "key": key,
        "project": project,
        "type": type,
        "summary": f"summary of {key}",
        "url": f"https://jira.example/browse/{key}",
        "status": status or prev,
        "status_id": None,
        "resolution": resolution,
        "created": created_ts,
        "resolved": None,
        "updated": last,
        "labels": "[]",
        "components": "[]",
        "sprints": "[]",
        "points": None,
        "deleted": 0,
    }
    db["work_items"].insert(row)
    return row


def pr(
    db,
    number: int,
    created: str,
    *,
    repo: str = "acme/pay",
    merged: str | None = None,
    closed: str | None = None,
    ready: str | None = None,
    first_commit: str | None = None,
    additions: int = 10,
    deletions: int = 5,
    title: str | None = None,
    author: str = "alice",
    author_bot: bool = False,
    merge_sha: str | None = None,
    head_ref: str = "feature",
    refs: list[str] = (),
    draft: bool = False,
    reviews: list[tuple[str, str, str]] = (),
) -> dict:
    """A PR; ``reviews`` are ``(submitted_at or None, reviewer, state)``; a reviewer named ``*[bot]`` is a bot."""
    row = {
        "source": "github",
        "repo": repo,
        "number": number,
        "title": title or f"PR {number}",
        "url": f"https://github.example/{repo}/pull/{number}",
        "state": "merged" if merged else ("closed" if closed else "open"),
        "draft": int(draft),
        "created": ts(created),
        "ready": ts(ready),
        "first_commit": ts(first_commit),
        "merged": ts(merged),
        "closed": ts(closed or merged),
        "updated": ts(merged or closed or created),
        "additions": additions,
        "deletions": deletions,
        "labels": "[]",
        "merge_sha": merge_sha or (f"sha{number}" if merged else None),
        "head_ref": head_ref,
        "refs": json.dumps(list(refs)),
        "author": author,
        "author_bot": int(author_bot),
    }
    db["pull_requests"].insert(row)
    for i, (at, reviewer, state) in enumerate(reviews):
        db["reviews"].insert(
            {
                "source": "github",
                "repo": repo,
                "number": number,
                "id": f"{number}-{i}",
                "reviewer": reviewer,
                "reviewer_bot": int(reviewer.endswith("[bot]")),
                "state": state,
                "submitted": ts(at),
            }
        )
    return row


def deploy(
    db,
    id: str,
    finished: str,
    *,
    service: str = "acme/pay",
    status: str = "success",
    environment: str = "production",
    production: bool = True,
    run: str | None = None,
    sha: str | None = None,
    started: str | None = None,
    prs: list[int] = (),
    repo: str = "acme/pay",
) -> dict:
    """A deployment; ``prs`` are the PR numbers it shipped for the first time."""
    row = {
        "source": "github",
        "id": id,
        "service": service,
        "environment": environment,
        "production": int(production),
        "status": status,
        "started": ts(started or finished),
        "finished": ts(finished),
        "sha": sha or f"deploysha-{id}",
        "run": run,
        "url": None,
    }
    db["deployments"].insert(row)
    for n in prs:
        db["deployment_changes"].insert({"source": "github", "deployment_id": id, "repo": repo, "number": n})
    return row


def incident(
    db, id: str, created: str, resolved: str | None = None, *, service: str = "SVC", title: str = ""
) -> dict:
    row = {
        "source": "pagerduty",
        "id": id,
        "service": service,
        "title": title or f"incident {id}",
        "url": None,
        "created": ts(created),
        "resolved": ts(resolved),
        "severity": "high",
        "status": "resolved" if resolved else "triggered",
    }
    db["incidents"].insert(row)
    return row


def sprint(
    db,
    id: str,
    start: str,
    end: str,
    *,
    complete: str | None = None,
    board: str = "1",
    events: list[tuple[str, str, str]] = (),
) -> dict:
    """A sprint with membership ``events``: ``(key, at, "add" | "remove")``."""
    row = {
        "source": SRC,
        "id": id,
        "board": board,
        "name": f"Sprint {id}",
        "state": "closed" if complete else "active",
        "start": ts(start),
        "end": ts(end),
        "complete": ts(complete),
    }
    db["sprints"].insert(row)
    for key, at, change in events:
        db["sprint_events"].insert(
            {"source": SRC, "sprint_id": id, "key": key, "at": ts(at), "change": change}
        )
    return row


def assert_not_in_files(folder, *secrets: str) -> None:
    """None of ``secrets`` anywhere in the files of ``folder`` (the database, its WAL and journal)."""
    for f in folder.iterdir():
        data = f.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, (f.name, secret[:6])


def fast_policy(waits: list | None = None) -> Policy:
    """Retries that never sleep: every wait is appended to ``waits`` instead. The backoff is tiny
    (urllib3 sleeps it for real on 5xx); the cap is the production one, so the floors our own waits
    keep (a minute for GitHub's secondary limits) show in ``waits`` as they are."""
    return Policy(backoff=0.001, sleep=(waits if waits is not None else []).append)


def run_sync(
    db, source: dict, token_env: str, token: str, now: float, waits: list | None = None
) -> SourceResult:
    """``sync_source`` as ``vsm sync`` runs it, with the token in the environment and no real sleeps."""
    return sync_source(db, source, env={token_env: token}, policy=fast_policy(waits), now=now)
