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

GraphQL answers 200 even for errors, and a field that fails is null in ``data`` with an error naming
its ``path``. Each error is judged on its own (docs/sources.md, "GitHub GraphQL"):

- about the whole query (no PR alias in its ``path``): ``RATE_LIMITED`` (or a secondary-limit
  message) is waited out like a REST rate limit (``x-ratelimit-reset``, else at least a minute); an
  untyped "Something went wrong ... timeout" means GitHub gave up, and the batch is asked again in
  halves, down to one PR, so a batch too heavy for GitHub (long bodies, many reviews) cannot stall a
  repo's sync (a 502/504 after retries, or no answer in time, likewise); anything else fails the
  repo's stream, and so do ``MISSING_PAGINATION_BOUNDARIES`` and ``EXCESSIVE_PAGINATION`` wherever
  they point: they say our query is wrong, and every PR would fail alike;
- about one PR (``path`` ``["repository", "p<number>", ...]``): ``NOT_FOUND`` on the alias itself
  means the PR is gone (transferred with its repo, or out of the token's reach): None. An error on
  a field no row is built from (``OPTIONAL``) leaves that field null and the PR is stored. Any other
  error means the PR cannot be stored right (its rows would be wrong, not just poorer): it comes back
  as :class:`Unreadable`, naming the field and GitHub's message, and the rest of the batch and of
  the repo go on; the connector asks for it again on the next sync.

Ids: ``databaseId`` is a 32-bit ``Int`` on GitHub, and review ids are past 2,147,483,647 (GitHub
answers such a field null, with a coercion error). Reviews are asked for ``fullDatabaseId``
(``BigInt``, a string), the same number REST calls ``id``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

from metrics.sources.http import Http, SourceError, TimedOut

BATCH = 50  # PRs per query: 50 x 4 connections x 100 stays far under the 500,000-node limit
PAGE = 100  # nodes per connection page: GitHub's maximum for ``first``

# Each connection of a PR: (its arguments besides first/after, the selection of its nodes).
CONNECTIONS = {
    "labels": ("", "nodes { name }"),
    "commits": ("", "nodes { commit { authoredDate } }"),
    "reviews": ("", "nodes { fullDatabaseId state submittedAt author { __typename login } }"),
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
# PR fields no row is built from (labels are kept, but no metric reads them): an error there leaves
# the field null and the PR is stored anyway.
OPTIONAL = frozenset({"labels"})
# Errors that say the query itself is wrong, wherever their path points: every PR would fail alike.
QUERY_ERRORS = frozenset({"MISSING_PAGINATION_BOUNDARIES", "EXCESSIVE_PAGINATION"})


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


def more_query(field: str, number: int) -> str:
    """The rest of one PR's connection, from ``$after``; aliased ``p<number>`` like a batch, so its
    errors are judged the same way."""
    return (
        "query($owner: String!, $name: String!, $number: Int!, $after: String!) { "
        f"repository(owner: $owner, name: $name) {{ p{number}: pullRequest(number: $number) {{ "
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


@dataclass(frozen=True)
class Unreadable:
    """A PR GitHub answered with an error on a field its rows need: not stored this time. ``reason``
    names the field (its path inside the PR) and GitHub's error."""

    reason: str


def rate_limited(data: object) -> bool:
    """A 200 whose errors say the GraphQL points, or a secondary limit, are spent: :class:`Http`
    waits it out."""
    return isinstance(data, dict) and any(
        isinstance(e, dict)
        and (e.get("type") == "RATE_LIMITED" or "secondary rate limit" in str(e.get("message")).lower())
        for e in data.get("errors") or []
    )


def pull_nodes(
    http: Http, url: str, repo: str, numbers: list[int]
) -> Iterator[tuple[int, dict | Unreadable | None]]:
    """``(number, node)`` for each of ``numbers``: the node complete, None when GitHub says the PR is
    not found, or :class:`Unreadable`. Lazy, batch by batch: the caller stores a batch before the
    next is asked for, so a failure later on loses nothing already read."""
    owner, name = repo.split("/", 1)
    for start in range(0, len(numbers), BATCH):
        yield from _batch(http, url, owner, name, numbers[start : start + BATCH])


def _batch(
    http: Http, url: str, owner: str, name: str, chunk: list[int]
) -> Iterator[tuple[int, dict | Unreadable | None]]:
    try:
        data, errors = _ask(http, url, batch_query(chunk), {"owner": owner, "name": name})
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
        node = _judge(found.get(f"p{n}"), errors.get(f"p{n}", []))
        yield n, (_complete(http, url, owner, name, node) if isinstance(node, dict) else node)


def _gave_up(exc: SourceError) -> bool:
    """GitHub, or the way to it, gave up on the query rather than refused it."""
    return isinstance(exc, TooHeavy | TimedOut) or exc.status in (502, 504)


def _judge(node: object, errors: list[dict]) -> dict | Unreadable | None:
    """One PR's answer and the errors under its alias: the node to store, None when the PR is gone,
    or :class:`Unreadable` when an error hit a field its rows need."""
    if any(e.get("type") == "NOT_FOUND" and len(e["path"]) == 2 for e in errors):
        return None
    needed = [e for e in errors if len(e["path"]) < 3 or e["path"][2] not in OPTIONAL]
    if needed:
        return Unreadable(_describe(needed[0]))
    return node if isinstance(node, dict) else None


def _describe(error: dict) -> str:
    """``reviews.nodes.3.author: FORBIDDEN: <message>``: where inside the PR, and what GitHub said."""
    where = ".".join(str(p) for p in error["path"][2:]) or "the pull request"
    return f"{where}: {error.get('type') or 'error'}: {str(error.get('message'))[:200]}"


def _complete(http: Http, url: str, owner: str, name: str, node: dict) -> dict | Unreadable | None:
    """Read every connection of ``node`` to its end; drop the page cursors and any null item (one an
    error on an optional field left)."""
    for field in CONNECTIONS:
        conn = node.get(field)
        if conn is None and field in OPTIONAL:
            continue  # GitHub failed it (its error was judged harmless): stays null
        if not isinstance(conn, dict):
            raise SourceError(f"POST /graphql: pull request {node.get('number')} has no {field}")
        nodes = [x for x in conn.get("nodes") or [] if x is not None]
        info = conn.pop("pageInfo", None) or {}
        while info.get("hasNextPage"):
            more = _more(http, url, owner, name, node["number"], field, info["endCursor"])
            if not isinstance(more, dict):
                return more
            nodes += [x for x in more.get("nodes") or [] if x is not None]
            info = more.get("pageInfo") or {}
        conn["nodes"] = nodes
    return node


def _more(
    http: Http, url: str, owner: str, name: str, number: int, field: str, after: str
) -> dict | Unreadable | None:
    """The next page of one PR's connection; None when the PR is gone, :class:`Unreadable` when the
    page failed on a needed field. An optional connection that failed ends there (empty page)."""
    variables = {"owner": owner, "name": name, "number": number, "after": after}
    data, errors = _ask(http, url, more_query(field, number), variables)
    pr = _judge((data.get("repository") or {}).get(f"p{number}"), errors.get(f"p{number}", []))
    if not isinstance(pr, dict):
        return pr
    return pr.get(field) or {"nodes": []}


def _ask(http: Http, url: str, query: str, variables: dict) -> tuple[dict, dict[str, list[dict]]]:
    """``data`` of one query and the errors that concern one PR each, by alias; any other error
    fails here (see the module's docstring for which and why)."""
    page = http.post(url, {"query": query, "variables": variables}, limited=rate_limited)
    body = page.data if isinstance(page.data, dict) else {}
    per_pr: dict[str, list[dict]] = {}
    for error in body.get("errors") or []:
        alias = _alias(error)
        if alias is None:
            _fail(error)
        per_pr.setdefault(alias, []).append(error)
    data = body.get("data")
    if not isinstance(data, dict):
        raise SourceError("POST /graphql: the response has no data")
    return data, per_pr


def _alias(error: dict) -> str | None:
    """The PR alias an error is about, or None when it is about the whole query."""
    path = error.get("path") or []
    if error.get("type") in QUERY_ERRORS or len(path) < 2 or path[0] != "repository":
        return None
    return str(path[1]) if ALIAS.fullmatch(str(path[1])) else None


def _fail(error: dict) -> NoReturn:
    """An error about the whole query: GitHub gave up (try smaller), or the stream fails."""
    message = str(error.get("message"))
    lowered = message.lower()
    if not error.get("type") and ("timeout" in lowered or "something went wrong" in lowered):
        raise TooHeavy(f"POST /graphql: GitHub gave up on the query: {message[:200]}")
    raise SourceError(f"POST /graphql: {error.get('type') or 'error'}: {message[:200]}")
