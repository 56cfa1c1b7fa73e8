"""GitHub payloads -> ``pull_requests``, ``reviews``, ``deployments``, ``deployment_changes``,
``incidents``.

A PR comes in one of two shapes, keyed by the raw external id ``"owner/repo#number"``:

- ``pull_node``, what the connector stores: the GraphQL ``PullRequest`` node with its reviews,
  commits, labels and ready-for-review events, all columns from one payload;
- REST pieces, what the sample history and stores synced before GraphQL hold: ``pull`` (the list
  object merged with the single GET), ``pull_reviews``, ``pull_commits``, ``pull_timeline``. Each piece
  owns its own columns, so they can be normalised in any order after the PR row exists.

Both fill the same columns the same way (a bot's login ends in ``[bot]`` whichever API said it), so a
rebuild from either gives the same rows. A ``compare`` is keyed by its deployment's id.

Deployments come from one signal per source: ``deployment`` (the Deployments API, with statuses),
``release`` (published releases) or ``workflow_run`` (runs of the deploy workflow); the latter two are
keyed ``release-<id>`` and ``run-<id>``. An ``issue`` (labelled as an incident) is an incident of its repo.
"""

from __future__ import annotations

import json
import re

from metrics.config import production_environments
from metrics.normalise.deploys import forget_changes, link_deployment, link_pull
from metrics.store.raw import get_raw, replace_children, upsert
from metrics.timeutil import parse_instant

JIRA_KEY = re.compile(r"(?<![A-Za-z0-9])[A-Z][A-Z0-9]+-\d+(?!\d)")
URL = re.compile(r"https?://[^\s<>()\[\]{}\"'`|]+")
TOKEN = re.compile(r"(?<![A-Za-z0-9])[A-Z0-9]{7,}(?![A-Za-z0-9])")
RELEASE, RUN = "release-", "run-"  # id prefixes of the deployments a release or a workflow run makes
REPO_IN_URL = re.compile(r"/repos/([^/]+/[^/]+?)(?:/|$)")


def _repo_in(*urls: str | None) -> str | None:
    """``owner/repo`` from the first API URL that names one."""
    for url in urls:
        m = REPO_IN_URL.search(url or "")
        if m:
            return m.group(1)
    return None


def find_refs(*texts: str | None) -> list[str]:
    """Links to other tools found in a PR's text: Jira keys, URLs, PagerDuty-style ids, in that
    order, each in order of first appearance, without repeats.

    A PagerDuty-style id is an upper-case token of 7+ letters and digits holding both (``Q1ABC2DEF``);
    Jira keys are case-sensitive, as Jira writes them (``PAY-12``; ``pay-12`` is not a key).
    """
    keys: list[str] = []
    urls: list[str] = []
    ids: list[str] = []
    for text in texts:
        if not text:
            continue
        keys += JIRA_KEY.findall(text)
        urls += [u.rstrip(".,;:!?") for u in URL.findall(text)]
        ids += [t for t in TOKEN.findall(text) if any(c.isalpha() for c in t) and any(c.isdigit() for c in t)]
    return list(dict.fromkeys(keys + ids + urls))


def is_bot(user: dict | None) -> bool:
    if not user:
        return False
    return user.get("type") == "Bot" or str(user.get("login") or "").endswith("[bot]")


def split_pull_id(external_id: str) -> tuple[str, int]:
    """``"acme/pay#12"`` -> ``("acme/pay", 12)``."""
    repo, _, number = str(external_id).rpartition("#")
    if not repo or not number.isdigit():
        raise ValueError(f"a PR child payload needs the external id 'owner/repo#number', not {external_id!r}")
    return repo, int(number)


def _repo_of_pull(payload: dict) -> str:
    repo = ((payload.get("base") or {}).get("repo") or {}).get("full_name") or _repo_in(payload.get("url"))
    if repo:
        return repo
    raise ValueError(f"pull request {payload.get('number')}: no base.repo.full_name nor API url")


def pull_row(payload: dict, source: str) -> dict:
    """The list object merged with the single GET's ``additions``/``deletions``.

    ``merge_sha`` is kept only for merged PRs: GitHub fills ``merge_commit_sha`` of an open PR with
    its test merge commit, which never ships.
    """
    head = payload.get("head") or {}
    user = payload.get("user") or {}
    merged = parse_instant(payload.get("merged_at"))
    closed = parse_instant(payload.get("closed_at"))
    return {
        "source": source,
        "repo": _repo_of_pull(payload),
        "number": int(payload["number"]),
        "title": payload.get("title"),
        "url": payload.get("html_url"),
        "state": "merged" if merged is not None else payload.get("state"),
        "draft": int(bool(payload.get("draft"))),
        "created": parse_instant(payload.get("created_at")),
        "merged": merged,
        "closed": closed,
        "updated": parse_instant(payload.get("updated_at")),
        "additions": payload.get("additions"),
        "deletions": payload.get("deletions"),
        "labels": json.dumps([label.get("name") for label in payload.get("labels") or []]),
        "merge_sha": payload.get("merge_commit_sha") if merged is not None else None,
        "head_ref": head.get("ref"),
        "refs": json.dumps(find_refs(payload.get("title"), payload.get("body"), head.get("ref"))),
        "author": user.get("login"),
        "author_bot": int(is_bot(user)),
    }


def review_rows(reviews: list[dict], source: str, repo: str, number: int) -> list[dict]:
    """Every review, pending ones included (``submitted`` None): filtering is the catalogue's job."""
    return [
        {
            "source": source,
            "repo": repo,
            "number": number,
            "id": str(r["id"]),
            "reviewer": (r.get("user") or {}).get("login"),
            "reviewer_bot": int(is_bot(r.get("user"))),
            "state": r.get("state"),
            "submitted": parse_instant(r.get("submitted_at")),
        }
        for r in reviews
    ]


def first_commit(commits: list[dict]) -> float | None:
    """Earliest ``commit.author.date`` (kept by rebases, unlike the committer date)."""
    dates = [parse_instant(((c.get("commit") or {}).get("author") or {}).get("date")) for c in commits]
    return min((d for d in dates if d is not None), default=None)


def ready_at(timeline: list[dict]) -> float | None:
    """The first ``ready_for_review`` event: a PR opened as draft can be reviewed from then on."""
    dates = [parse_instant(e.get("created_at")) for e in timeline if e.get("event") == "ready_for_review"]
    return min((d for d in dates if d is not None), default=None)


def _set_pull_column(db, source: str, repo: str, number: int, column: str, value) -> None:
    db.execute(
        f"update pull_requests set {column} = ? where source = ? and repo = ? and number = ?",
        [value, source, repo, number],
    )


def normalise_pull(
    db,
    source: str,
    payload: dict,
    options: dict,
    external_id: str | None = None,
    *,
    with_children: bool = True,
) -> None:
    """The PR row; ``ready`` and ``first_commit`` come from its timeline and commits payloads, taken
    from ``raw`` when they were stored first (so the order of arrival does not matter). A rebuild,
    which normalises the children right after, skips that look-up."""
    row = pull_row(payload, source)
    if with_children:
        child = f"{row['repo']}#{row['number']}"
        commits = get_raw(db, source, "pull_commits", child)
        if commits is not None:
            row["first_commit"] = first_commit(commits)
        timeline = get_raw(db, source, "pull_timeline", child)
        if timeline is not None:
            row["ready"] = ready_at(timeline)
    upsert(db, "pull_requests", row, ("source", "repo", "number"))
    link_pull(db, source, row["repo"], row["number"], row["merge_sha"])


def normalise_reviews(db, source: str, payload: list, options: dict, external_id: str | None = None) -> None:
    repo, number = split_pull_id(external_id or "")
    replace_children(
        db,
        "reviews",
        {"source": source, "repo": repo, "number": number},
        review_rows(payload, source, repo, number),
    )


def normalise_commits(db, source: str, payload: list, options: dict, external_id: str | None = None) -> None:
    repo, number = split_pull_id(external_id or "")
    _set_pull_column(db, source, repo, number, "first_commit", first_commit(payload))


def normalise_timeline(db, source: str, payload: list, options: dict, external_id: str | None = None) -> None:
    repo, number = split_pull_id(external_id or "")
    _set_pull_column(db, source, repo, number, "ready", ready_at(payload))


def _node_user(author: dict | None) -> dict | None:
    """A GraphQL ``author`` as REST spells it: bots are ``Bot`` and their login ends in ``[bot]`` over
    REST, while GraphQL gives ``__typename: Bot`` and the bare name. The rows must not depend on which
    API fed them."""
    if not author:
        return None
    login = str(author.get("login") or "")
    if author.get("__typename") == "Bot":
        return {"login": login if login.endswith("[bot]") else f"{login}[bot]", "type": "Bot"}
    return {"login": login, "type": author.get("__typename") or "User"}


def _review_id(review: dict) -> str | int | None:
    """REST's review ``id``: ``fullDatabaseId`` (a string: review ids outgrew GraphQL's 32-bit
    ``databaseId``), else ``databaseId`` in nodes stored before the connector asked for the former.
    Both are the same number, so the row's id does not depend on when the node was stored."""
    full = review.get("fullDatabaseId")
    return full if full is not None else review.get("databaseId")


def _nodes(node: dict, connection: str) -> list[dict]:
    return list((node.get(connection) or {}).get("nodes") or [])


def _rest_pieces(node: dict, repo: str) -> tuple[dict, list[dict], list[dict], list[dict]]:
    """A GraphQL ``PullRequest`` node as the REST pieces the PR normalisers read: the list object
    (with the single GET's line counts), its reviews, commits and timeline. Only the fields they read."""
    pull = {
        "number": node.get("number"),
        "title": node.get("title"),
        "body": node.get("body"),
        "html_url": node.get("url"),
        "state": str(node.get("state") or "").lower() or None,
        "draft": node.get("isDraft"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "closed_at": node.get("closedAt"),
        "merged_at": node.get("mergedAt"),
        "additions": node.get("additions"),
        "deletions": node.get("deletions"),
        "labels": _nodes(node, "labels"),
        "merge_commit_sha": (node.get("mergeCommit") or {}).get("oid"),
        "head": {"ref": node.get("headRefName")},
        "base": {"repo": {"full_name": repo}},
        "user": _node_user(node.get("author")),
    }
    reviews = [
        {
            "id": _review_id(r),
            "user": _node_user(r.get("author")),
            "state": r.get("state"),
            "submitted_at": r.get("submittedAt"),
        }
        for r in _nodes(node, "reviews")
    ]
    commits = [
        {"commit": {"author": {"date": (c.get("commit") or {}).get("authoredDate")}}}
        for c in _nodes(node, "commits")
    ]
    timeline = [
        {"event": "ready_for_review", "created_at": e.get("createdAt")} for e in _nodes(node, "timelineItems")
    ]
    return pull, reviews, commits, timeline


def normalise_pull_node(
    db, source: str, payload: dict, options: dict, external_id: str | None = None
) -> None:
    """A GraphQL ``PullRequest`` node (``metrics.sources.github_graphql``): the PR row with its first
    commit and ready time, and its reviews, all from the one payload, through the REST pieces'
    own row builders so both shapes fill the columns the same way."""
    repo, number = split_pull_id(external_id or "")
    pull, reviews, commits, timeline = _rest_pieces(payload, repo)
    row = pull_row(pull, source)
    row["first_commit"] = first_commit(commits)
    row["ready"] = ready_at(timeline)
    upsert(db, "pull_requests", row, ("source", "repo", "number"))
    link_pull(db, source, repo, number, row["merge_sha"])
    replace_children(
        db,
        "reviews",
        {"source": source, "repo": repo, "number": number},
        review_rows(reviews, source, repo, number),
    )


def deployment_row(payload: dict, source: str, production_environments: list[str]) -> dict:
    """A deployment plus its ``statuses`` list (any order).

    ``finished`` is the first ``success``; without one, the latest status's time when that status is
    final (``failure``, ``error``, ``inactive``), else None (still running). ``status`` is ``success``
    if any status is, else the latest state, else None (no status yet). ``inactive`` after a success
    means superseded, not failed. The environment matches the production list case-insensitively.
    """
    statuses = sorted(
        payload.get("statuses") or [],
        key=lambda s: (parse_instant(s.get("created_at")) or 0.0, int(s.get("id") or 0)),
    )
    successes = [s for s in statuses if s.get("state") == "success"]
    if successes:
        chosen, status, finished = successes[0], "success", parse_instant(successes[0].get("created_at"))
    elif statuses:
        chosen, status = statuses[-1], statuses[-1].get("state")
        final = status in ("failure", "error", "inactive")
        finished = parse_instant(chosen.get("created_at")) if final else None
    else:
        chosen, status, finished = {}, None, None
    extra = payload.get("payload")
    if isinstance(extra, str):  # GitHub allows a JSON string here
        try:
            extra = json.loads(extra) if extra else {}
        except ValueError:
            extra = {}
    run = extra.get("run_id") if isinstance(extra, dict) else None
    environment = payload.get("environment") or ""
    production = {e.lower() for e in production_environments}
    repo_url = payload.get("repository_url") or payload.get("url") or ""
    m = re.search(r"/repos/([^/]+/[^/]+?)(?:/|$)", repo_url)
    return {
        "source": source,
        "id": str(payload["id"]),
        "service": m.group(1) if m else None,
        "environment": environment,
        "production": int(environment.lower() in production),
        "status": status,
        "started": parse_instant(payload.get("created_at")),
        "finished": finished,
        "sha": payload.get("sha"),
        "run": str(run) if run else None,
        "url": chosen.get("log_url") or chosen.get("target_url") or None,
    }


def normalise_deployment(
    db, source: str, payload: dict, options: dict, external_id: str | None = None
) -> None:
    row = deployment_row(payload, source, production_environments(options))
    upsert(db, "deployments", row, ("source", "id"))


def normalise_compare(db, source: str, payload: dict, options: dict, external_id: str | None = None) -> None:
    """The PRs a deployment shipped first: those whose merge commit is among the compare's commits
    (compare = previous deployed sha ... this deployment's sha).

    The repo is the deployment's, else the compare URL's. The commits are kept
    (``metrics.normalise.deploys``), so a PR stored after its deployment's compare, by a later sync, is
    still linked to it.
    """
    if not external_id:
        raise ValueError("a compare payload needs its deployment id as external id")
    deployment_id = str(external_id)
    row = db.execute(
        "select service from deployments where source = ? and id = ?", [source, deployment_id]
    ).fetchone()
    repo = row[0] if row and row[0] else None
    if repo is None:
        repo = _repo_in(payload.get("url"))
    shas = [c.get("sha") for c in payload.get("commits") or [] if c.get("sha")]
    link_deployment(db, source, deployment_id, repo, shas)


# -- the alternative deployment signals: releases and workflow runs -----------------------------------
RUN_FINAL = ("completed",)
SEVERITY_LABEL = re.compile(r"^(sev(erity)?[\s:/_-]*\w+|p[0-4])$", re.IGNORECASE)


def release_row(payload: dict, source: str, production_environments: list[str]) -> dict | None:
    """A published release as a deployment to production (``deployment_signal = "releases"``).

    Publication is the deployment: ``started`` = ``finished`` = ``published_at`` (``created_at`` is the
    release commit's date). Drafts are not deployments (None). A prerelease is a deployment to the
    ``prerelease`` environment, not production. ``sha`` holds the tag: what was released, and the ref
    the connector compares with the previous release's tag.
    """
    published = parse_instant(payload.get("published_at"))
    if payload.get("draft") or published is None:
        return None
    prerelease = bool(payload.get("prerelease"))
    return {
        "source": source,
        "id": f"{RELEASE}{payload['id']}",
        "service": _repo_in(payload.get("url"), payload.get("html_url")),
        "environment": "prerelease" if prerelease else production_environments[0],
        "production": int(not prerelease),
        "status": "success",
        "started": published,
        "finished": published,
        "sha": payload.get("tag_name"),
        "run": None,
        "url": payload.get("html_url"),
    }


def workflow_run_row(payload: dict, source: str, production_environments: list[str]) -> dict:
    """A run of the deploy workflow as a deployment (``deployment_signal = "workflow_runs"``).

    Once ``completed``, the status is the ``conclusion`` and ``updated_at`` is the finish (GitHub's
    closest field); until then the status is the run's (``queued``, ``in_progress``...) and there is no
    finish. A re-run keeps the run id (``run_attempt`` grows), so it stays one deployment.
    """
    completed = payload.get("status") in RUN_FINAL
    repo = (payload.get("repository") or {}).get("full_name") or _repo_in(payload.get("url"))
    return {
        "source": source,
        "id": f"{RUN}{payload['id']}",
        "service": repo,
        "environment": production_environments[0],
        "production": 1,
        "status": payload.get("conclusion") if completed else payload.get("status"),
        "started": parse_instant(payload.get("run_started_at") or payload.get("created_at")),
        "finished": parse_instant(payload.get("updated_at")) if completed else None,
        "sha": payload.get("head_sha"),
        "run": str(payload["id"]),
        "url": payload.get("html_url"),
    }


def _replace_deployment(db, source: str, deployment_id: str, row: dict | None) -> None:
    if row is None:
        db.execute("delete from deployments where source = ? and id = ?", [source, deployment_id])
        forget_changes(db, source, deployment_id)
    else:
        upsert(db, "deployments", row, ("source", "id"))


def normalise_release(db, source: str, payload: dict, options: dict, external_id: str | None = None) -> None:
    """Upsert the release's deployment row; a release turned back into a draft loses it."""
    row = release_row(payload, source, production_environments(options))
    _replace_deployment(db, source, f"{RELEASE}{payload['id']}", row)


def normalise_workflow_run(
    db, source: str, payload: dict, options: dict, external_id: str | None = None
) -> None:
    row = workflow_run_row(payload, source, production_environments(options))
    upsert(db, "deployments", row, ("source", "id"))


def issue_row(payload: dict, source: str) -> dict:
    """An issue labelled as an incident (``incident_labels``): the service is its repository.

    Open = ``triggered``, closed = ``resolved`` at ``closed_at``. The severity is the first label that
    reads like one (``sev1``, ``severity: high``, ``P2``), else None.
    """
    repo = _repo_in(payload.get("repository_url"), payload.get("url"))
    closed = payload.get("state") == "closed"
    labels = [str(label.get("name") or "") for label in payload.get("labels") or []]
    return {
        "source": source,
        "id": f"{repo}#{payload['number']}",
        "service": repo,
        "title": payload.get("title"),
        "url": payload.get("html_url"),
        "created": parse_instant(payload.get("created_at")),
        "resolved": parse_instant(payload.get("closed_at")) if closed else None,
        "severity": next((name for name in labels if SEVERITY_LABEL.match(name.strip())), None),
        "status": "resolved" if closed else "triggered",
    }


def normalise_issue(db, source: str, payload: dict, options: dict, external_id: str | None = None) -> None:
    upsert(db, "incidents", issue_row(payload, source), ("source", "id"))


# -- deletions (the connector calls these inside a transaction) ---------------------------------------
DEPLOYMENT_KINDS = ("deployment", "release", "workflow_run")


def forget_deployment(db, source: str, deployment_id: str, raw_kind: str, raw_id: str) -> None:
    """A deployment (or release, or run) deleted remotely: its raw payload and compare, its row and
    the changes it shipped go."""
    db.execute(
        "delete from raw where source = ? and kind = ? and external_id = ?", [source, raw_kind, raw_id]
    )
    db.execute(
        "delete from raw where source = ? and kind = 'compare' and external_id = ?", [source, deployment_id]
    )
    db.execute("delete from deployments where source = ? and id = ?", [source, deployment_id])
    forget_changes(db, source, deployment_id)


def forget_issue(db, source: str, issue_id: str) -> None:
    """An incident issue deleted, transferred or no longer labelled: raw payload and row go."""
    db.execute("delete from raw where source = ? and kind = 'issue' and external_id = ?", [source, issue_id])
    db.execute("delete from incidents where source = ? and id = ?", [source, issue_id])


NORMALISERS = {
    "pull": normalise_pull,
    "pull_reviews": normalise_reviews,
    "pull_commits": normalise_commits,
    "pull_timeline": normalise_timeline,
    "pull_node": normalise_pull_node,
    "deployment": normalise_deployment,
    "release": normalise_release,
    "workflow_run": normalise_workflow_run,
    "compare": normalise_compare,
    "issue": normalise_issue,
}
# Parents before children: a rebuild normalises kinds in this order (compares after every kind of
# deployment they link to).
ORDER = [
    "pull",
    "pull_commits",
    "pull_timeline",
    "pull_reviews",
    "pull_node",
    "deployment",
    "release",
    "workflow_run",
    "compare",
    "issue",
]
