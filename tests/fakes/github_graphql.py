"""GitHub's GraphQL endpoint (``POST /graphql``) over the fake's pull requests.

It answers the two query shapes the connector sends (``metrics.sources.github_graphql``), reading them
the way GitHub would rather than matching them verbatim:

- ``repository(owner, name) { <alias>: pullRequest(number: N) { ...pull } ... }``: each alias gets the
  PR's node, or ``null`` plus a ``NOT_FOUND`` error whose ``path`` names the alias;
- ``repository(...) { pullRequest(number: $number) { <connection>(first: K, after: $after) {...} } }``.

Nodes are built from the same data the REST routes serve (so both APIs always agree), in the shape of
GitHub's schema: ``state`` ``OPEN``/``CLOSED``/``MERGED``, ``isDraft``, ``mergeCommit { oid }`` only once
merged, ``author { __typename login }`` with a bot's login without ``[bot]``, and connections with
``totalCount``, ``pageInfo { hasNextPage endCursor }`` and ``nodes``, paged by ``first`` (1-100, as
GitHub validates) and an opaque ``after`` cursor. ``graphql_limit`` makes batches of more PRs time out
the way GitHub reports it: a 200 with an untyped "Something went wrong ... timeout" error. Every request is authenticated (401 otherwise), and
errors come back as GitHub sends them: HTTP 200 with ``errors``.
"""

from __future__ import annotations

import base64
import re

from fakes.server import Reply, Request

ALIAS = re.compile(r"(\w+):\s*pullRequest\(number:\s*(\d+)\)")
CONNECTION = re.compile(r"\b(labels|commits|reviews|timelineItems)\(first:\s*(\d+)")
ONE_PR = re.compile(r"pullRequest\(number:\s*\$number\)")
TIMEOUT = (
    "Something went wrong while executing your query. This may be the result of a timeout, or it could "
    "be a GitHub bug. Please include `7C1C:2D4F:1B2A3C:3E4F5A:65F0A1B2` when reporting this issue."
)


def _cursor(index: int) -> str:
    return base64.b64encode(f"cursor:v2:{index}".encode()).decode()


def _index(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(base64.b64decode(cursor).decode().rpartition(":")[2])


def _author(user: dict | None) -> dict | None:
    if not user:
        return None
    bot = user.get("type") == "Bot"
    login = user["login"][: -len("[bot]")] if bot and user["login"].endswith("[bot]") else user["login"]
    return {"__typename": "Bot" if bot else "User", "login": login}


def connections(p: dict) -> dict[str, list]:
    """A stored PR's connection nodes, oldest first as GitHub lists them."""
    return {
        "labels": [{"name": label["name"]} for label in p["pull"].get("labels") or []],
        "commits": [{"commit": {"authoredDate": c["commit"]["author"]["date"]}} for c in p["commits"]],
        "reviews": [
            {
                "databaseId": r["id"],
                "state": r["state"],
                "submittedAt": r.get("submitted_at"),
                "author": _author(r.get("user")),
            }
            for r in p["reviews"]
        ],
        "timelineItems": [
            {"__typename": "ReadyForReviewEvent", "createdAt": e["created_at"]}
            for e in p["timeline"]
            if e["event"] == "ready_for_review"
        ],
    }


def _page(nodes: list, first: int, after: str | None) -> dict:
    start = _index(after)
    chunk = nodes[start : start + first]
    end = start + len(chunk)
    return {
        "totalCount": len(nodes),
        "pageInfo": {"hasNextPage": end < len(nodes), "endCursor": _cursor(end) if chunk else None},
        "nodes": chunk,
    }


def node(p: dict, firsts: dict[str, int]) -> dict:
    pull, detail = p["pull"], p["detail"]
    merged = pull.get("merged_at") is not None
    state = "MERGED" if merged else "CLOSED" if pull["state"] == "closed" else "OPEN"
    out = {
        "number": pull["number"],
        "title": pull["title"],
        "url": pull["html_url"],
        "state": state,
        "isDraft": bool(pull.get("draft")),
        "body": pull.get("body"),
        "createdAt": pull["created_at"],
        "updatedAt": pull["updated_at"],
        "closedAt": pull.get("closed_at"),
        "mergedAt": pull.get("merged_at"),
        "additions": detail.get("additions"),
        "deletions": detail.get("deletions"),
        "changedFiles": detail.get("changed_files"),
        "headRefName": (pull.get("head") or {}).get("ref"),
        "baseRefName": (pull.get("base") or {}).get("ref"),
        "mergeCommit": {"oid": pull["merge_commit_sha"]} if merged else None,
        "author": _author(pull.get("user")),
    }
    for field, nodes in connections(p).items():
        out[field] = _page(nodes, firsts[field], None)
    return out


def answer(fake, req: Request) -> Reply:
    """The ``POST /graphql`` route of :class:`fakes.github.FakeGitHub`."""
    if fake.outage is not None and fake.outage(req):
        return Reply(502, {"message": "Server Error"})
    if req.headers.get("authorization") != f"Bearer {fake.token}":
        return Reply(
            401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/graphql"}
        )
    try:
        body = req.json()
        query, variables = body["query"], body.get("variables") or {}
    except (ValueError, KeyError, TypeError):
        return Reply(400, {"message": "Problems parsing JSON"})
    firsts = {name: int(k) for name, k in CONNECTION.findall(query)}
    for name, k in firsts.items():
        if not 1 <= k <= 100:
            message = f"Requesting {k} records on the `{name}` connection exceeds the `first` limit of 100."
            return Reply(200, {"errors": [{"message": message}]})
    repo = f"{variables.get('owner')}/{variables.get('name')}"
    headers = {"x-ratelimit-resource": "graphql", "x-ratelimit-remaining": "4999"}
    if repo not in fake.pulls:
        error = _not_found(["repository"], f"a Repository with the name '{repo}'")
        return Reply(200, {"data": {"repository": None}, "errors": [error]}, headers)
    pulls = fake.pulls[repo]
    if ONE_PR.search(query):
        p = pulls.get(int(variables.get("number", -1)))
        (field, first), *_ = firsts.items()
        pr = None if p is None else {field: _page(connections(p)[field], first, variables.get("after"))}
        return Reply(200, {"data": {"repository": {"pullRequest": pr}}}, headers)
    aliases = ALIAS.findall(query)
    if fake.graphql_limit is not None and len(aliases) > fake.graphql_limit:
        return Reply(200, {"data": None, "errors": [{"message": TIMEOUT}]}, headers)
    found = {alias: pulls.get(int(number)) for alias, number in aliases}
    body: dict = {
        "data": {"repository": {a: None if p is None else node(p, firsts) for a, p in found.items()}}
    }
    errors = [
        _not_found(["repository", alias], f"a PullRequest with the number of {number}")
        for alias, number in aliases
        if found[alias] is None
    ]
    if errors:
        body["errors"] = errors
    return Reply(200, body, headers)


def _not_found(path: list[str], what: str) -> dict:
    return {"type": "NOT_FOUND", "path": path, "message": f"Could not resolve to {what}."}
