"""GitHub GraphQL: every changed pull request of a page in one query, with its reviews, commits,
labels and ready-for-review events.

Over REST a PR costs four requests beyond its share of the list page (the single GET for line counts,
reviews, commits, the timeline), and each request costs our CPU more than storing what it returns.
One GraphQL query asks for ``BATCH`` PRs by number (one alias each), so the list walk stays on REST,
where ETags make an unchanged repo cost one 304, and only the PRs whose ``updated_at`` moved are read
here.

A connection is asked for 100 nodes (GitHub's cap per ``first``); one that has more (a PR with more
than 100 commits or reviews) is read to its end with a follow-up query on that PR alone, so what is
stored is complete. The stored node is the API's node with each connection's ``nodes`` complete and
its ``pageInfo`` dropped (a cursor into a finished read means nothing later).

GraphQL answers 200 even for errors: ``errors[].type`` ``NOT_FOUND`` on a PR's alias means the PR is
gone (transferred with its repo, or out of the token's reach): it comes back as None. A
``RATE_LIMITED`` error (or a secondary-limit message) is waited out like a REST rate limit
(``x-ratelimit-reset``, else at least a minute). A query GitHub gives up on (an untyped "Something
went wrong ... timeout" error, a 502/504 after retries, no answer in time) is asked again in halves,
down to one PR: a batch too heavy for GitHub (long bodies, many reviews) cannot stall a repo's sync.
Any other error fails the repo's stream with the error's type and message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from metrics.sources.http import Http, SourceError, TimedOut

BATCH = 50  # PRs per query: 50 x 4 connections x 100 stays far under the 500,000-node limit
PAGE = 100  # nodes per connection page: GitHub's maximum for ``first``

# Each connection of a PR: (its arguments besides first/after, the selection of its nodes).
CONNECTIONS = {
    "labels": ("", "nodes { name }"),
    "commits": ("", "nodes { commit { authoredDate } }"),
    "reviews": ("", "nodes { databaseId state submittedAt author { __typename login } }"),
    "timelineItems": (
        ", itemTypes: [READY_FOR_REVIEW_EVENT]",
        "nodes { __typename ... on ReadyForReviewEvent { createdAt } }",
    ),
}
SCALARS = (
    "number title url state isDraft body createdAt updatedAt closedAt mergedAt additions deletions "
    "headRefName mergeCommit { oid } author { __typename login }"
)
ALIAS = re.compile(r"p\d+")


def _connection(field: str, after: str = "") -> str:
    args, nodes = CONNECTIONS[field]
    return f"{field}(first: {PAGE}{args}{after}) {{ pageInfo {{ hasNextPage endCursor }} {nodes} }}"


FRAGMENT = (
    "fragment pull on PullRequest { "
    + SCALARS
    + " "
    + " ".join(_connection(field) for field in CONNECTIONS)
    + " }"
)


def batch_query(numbers: list[int]) -> str:
    """One query for ``numbers``, aliased ``p<number>`` so the answer maps back to them."""
    aliases = " ".join(f"p{n}: pullRequest(number: {n}) {{ ...pull }}" for n in numbers)
    return (
        "query($owner: String!, $name: String!) { "
        f"repository(owner: $owner, name: $name) {{ {aliases} }} }} {FRAGMENT}"
    )


def more_query(field: str) -> str:
    """The rest of one PR's connection, from ``$after``."""
    return (
        "query($owner: String!, $name: String!, $number: Int!, $after: String!) { "
        "repository(owner: $owner, name: $name) { pullRequest(number: $number) { "
        + _connection(field, ", after: $after")
        + " } } }"
    )


def endpoint(rest_base: str) -> str:
    """The GraphQL URL beside a REST base: ``api.github.com`` -> ``/graphql``; GitHub Enterprise
    Server's ``https://host/api/v3`` -> ``https://host/api/graphql``."""
    parts = urlsplit(rest_base)
    path = parts.path.rstrip("/")
    path = path[: -len("/v3")] + "/graphql" if path.endswith("/api/v3") else path + "/graphql"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class TooHeavy(SourceError):
    """GitHub gave up on a query (its untyped timeout error): smaller batches may pass."""


def rate_limited(data: object) -> bool:
    """A 200 whose errors say the GraphQL points, or a secondary limit, are spent: :class:`Http`
    waits it out."""
    return isinstance(data, dict) and any(
        isinstance(e, dict)
        and (e.get("type") == "RATE_LIMITED" or "secondary rate limit" in str(e.get("message")).lower())
        for e in data.get("errors") or []
    )


def pull_nodes(http: Http, url: str, repo: str, numbers: list[int]) -> Iterator[tuple[int, dict | None]]:
    """``(number, node)`` for each of ``numbers``, the node complete, or None when GitHub says the PR
    is not found. Lazy, batch by batch: the caller stores a batch before the next is asked for, so a
    failure later on loses nothing already read."""
    owner, name = repo.split("/", 1)
    for start in range(0, len(numbers), BATCH):
        yield from _batch(http, url, owner, name, numbers[start : start + BATCH])


def _batch(
    http: Http, url: str, owner: str, name: str, chunk: list[int]
) -> Iterator[tuple[int, dict | None]]:
    try:
        data = _ask(http, url, batch_query(chunk), {"owner": owner, "name": name})
    except SourceError as exc:
        if len(chunk) == 1 or not _gave_up(exc):
            raise
        half = len(chunk) // 2
        yield from _batch(http, url, owner, name, chunk[:half])
        yield from _batch(http, url, owner, name, chunk[half:])
        return
    found = data.get("repository")
    if not isinstance(found, dict):
        raise SourceError(f"POST /graphql: repository {owner}/{name} not found")
    for n in chunk:
        node = found.get(f"p{n}")
        yield n, (_complete(http, url, owner, name, node) if isinstance(node, dict) else None)


def _gave_up(exc: SourceError) -> bool:
    """GitHub, or the way to it, gave up on the query rather than refused it."""
    return isinstance(exc, TooHeavy | TimedOut) or exc.status in (502, 504)


def _complete(http: Http, url: str, owner: str, name: str, node: dict) -> dict:
    """Read every connection of ``node`` to its end; drop the page cursors."""
    for field in CONNECTIONS:
        conn = node.get(field)
        if not isinstance(conn, dict):
            raise SourceError(f"POST /graphql: pull request {node.get('number')} has no {field}")
        nodes = list(conn.get("nodes") or [])
        info = conn.pop("pageInfo", None) or {}
        while info.get("hasNextPage"):
            variables = {"owner": owner, "name": name, "number": node["number"], "after": info["endCursor"]}
            pr = (_ask(http, url, more_query(field), variables).get("repository") or {}).get("pullRequest")
            more = (pr or {}).get(field)
            if not isinstance(more, dict):
                raise SourceError(f"POST /graphql: pull request {node['number']} vanished while read")
            nodes += more.get("nodes") or []
            info = more.get("pageInfo") or {}
        conn["nodes"] = nodes
    return node


def _ask(http: Http, url: str, query: str, variables: dict) -> dict:
    """``data`` of one query; errors other than a PR alias's NOT_FOUND fail the stream."""
    page = http.post(url, {"query": query, "variables": variables}, limited=rate_limited)
    body = page.data if isinstance(page.data, dict) else {}
    for error in body.get("errors") or []:
        path = error.get("path") or []
        if error.get("type") == "NOT_FOUND" and len(path) == 2 and ALIAS.fullmatch(str(path[1])):
            continue  # one PR gone: its alias is null
        message = str(error.get("message"))
        if not error.get("type") and (
            "timeout" in message.lower() or "something went wrong" in message.lower()
        ):
            raise TooHeavy(f"POST /graphql: GitHub gave up on the query: {message[:200]}")
        raise SourceError(f"POST /graphql: {error.get('type') or 'error'}: {message[:200]}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise SourceError("POST /graphql: the response has no data")
    return data
