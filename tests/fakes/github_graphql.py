"""GitHub's GraphQL endpoint (``POST /graphql``) over the fake's pull requests, answered by a real
GraphQL executor (graphql-core) on a subset of GitHub's own schema.

Why a schema and not hand-built answers: a hand-built JSON answer per query shape answers what the
client expects, so it hid that GitHub's ``databaseId`` is a 32-bit ``Int`` (review ids are past
2,147,483,647, and GitHub answers such a field with ``null`` plus an error). Here any valid query is
executed, and GitHub's behaviour comes from the same places as on GitHub:

- the types, field names and nullability of GitHub's schema (``SDL``, a subset of the public schema:
  what the connector reads and its close neighbours), so ``databaseId: Int`` really is coerced as a
  32-bit Int (``null`` + an error with ``path``), ``fullDatabaseId: BigInt`` is a string, and an error
  on a non-null field nulls its parent as GraphQL says;
- actors are the ``Actor`` interface (``User``, ``Bot``, ``Mannequin``, ``Organization``); a bot's
  ``login`` has no ``[bot]`` suffix (``dependabot``), unlike REST's ``dependabot[bot]``;
- GitHub's rules on top of GraphQL's: a connection without ``first``/``last`` is a
  ``MISSING_PAGINATION_BOUNDARIES`` field error, ``first``/``last`` over 100 is
  ``EXCESSIVE_PAGINATION``; an unknown repository or PR is ``null`` with a ``NOT_FOUND`` error naming
  the field's path (its alias).

Errors come as GitHub sends them: HTTP 200, ``{"data": ..., "errors": [{"type"?, "path",
"locations", "message"}]}`` (``type`` only where GitHub gives one: coercion errors are untyped).
A request without the token is a 401 ``Bad credentials``. On demand: ``graphql_spent`` answers the
next queries ``RATE_LIMITED`` (a 200 with ``x-ratelimit-remaining: 0`` and the reset time),
``graphql_limit`` makes queries asking for more PRs time out (a 200 with GitHub's untyped "Something
went wrong" error and ``data: null``), ``outage`` answers 502, and ``graphql_field_errors`` makes a
PR's field fail with a given type (``{(repo, number, field): (type, message)}``), resolved where
GitHub would fail it, so its ``path`` and null propagation are the executor's.

Nodes are built from the same data the REST routes serve, so both APIs always agree.
"""

from __future__ import annotations

import base64
import re
import time
from functools import cache

from graphql import (
    GraphQLError,
    GraphQLSchema,
    Visitor,
    build_schema,
    execute,
    parse,
    validate,
    visit,
)

from fakes.server import Reply, Request

WEB = "https://github.com"
# What tests use to read the PR numbers a batch query asked for.
ALIAS = re.compile(r"(\w+):\s*pullRequest\(number:\s*(\d+)\)")
TIMEOUT = (
    "Something went wrong while executing your query. This may be the result of a timeout, or it could "
    "be a GitHub bug. Please include `7C1C:2D4F:1B2A3C:3E4F5A:65F0A1B2` when reporting this issue."
)
MAX_PAGE = 100
# REST timeline events -> the GraphQL timeline item types this subset knows.
TIMELINE_TYPES = {
    "ready_for_review": "ReadyForReviewEvent",
    "convert_to_draft": "ConvertToDraftEvent",
    "closed": "ClosedEvent",
    "merged": "MergedEvent",
    "reopened": "ReopenedEvent",
}


def _item_type(typename: str) -> str:
    """``ReadyForReviewEvent`` -> ``READY_FOR_REVIEW_EVENT`` (the ``itemTypes`` enum's spelling)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", typename).upper()


ACTOR_TYPES = {"Bot", "Mannequin", "Organization"}  # REST ``user.type``; anything else is a User

# A subset of GitHub's public schema (octokit/graphql-schema), same names, types and nullability;
# descriptions, most fields and the Node/UniformResourceLocatable interfaces left out. The types that
# GitHub repeats field for field (the actors, the connections and their edges, the timeline events)
# are written once below and stamped out per name.
DEPRECATED_ID = (
    'databaseId: Int @deprecated(reason: "`databaseId` will be removed because it does not support '
    '64-bit signed integer identifiers. Use `fullDatabaseId` instead. Removal on 2024-07-01 UTC.")'
)
ACTOR_FIELDS = ("avatarUrl(size: Int): URI!", "login: String!", "resourcePath: URI!", "url: URI!")


def _fields(*fields: str) -> str:
    """A type's body, one field a line, in GitHub's alphabetical order."""
    return "".join(f"  {f}\n" for f in sorted(fields))


def _actor_sdl(name: str) -> str:
    return f"type {name} implements Actor {{\n{_fields(*ACTOR_FIELDS, 'databaseId: Int', 'id: ID!')}}}"


def _connection_sdl(prefix: str, node: str, *counts: str) -> str:
    """``<prefix>Connection`` of ``node`` items (``counts``: its fields besides the usual four) and
    its ``<prefix>Edge``."""
    fields = _fields(
        f"edges: [{prefix}Edge]", f"nodes: [{node}]", "pageInfo: PageInfo!", "totalCount: Int!", *counts
    )
    return f"type {prefix}Connection {{\n{fields}}}\n\ntype {prefix}Edge {{ cursor: String! node: {node} }}"


def _event_sdl(name: str) -> str:
    return f"type {name} {{ actor: Actor createdAt: DateTime! id: ID! }}"


EVENTS = sorted(TIMELINE_TYPES.values())

SDL = f"""
scalar BigInt
scalar DateTime
scalar GitObjectID
scalar URI

type Query {{
  repository(owner: String!, name: String!, followRenames: Boolean = true): Repository
}}

type Repository {{
  id: ID!
  nameWithOwner: String!
  pullRequest(number: Int!): PullRequest
}}

interface Actor {{
{_fields(*ACTOR_FIELDS)}}}

{chr(10).join(_actor_sdl(name) for name in ("User", *sorted(ACTOR_TYPES)))}

type PageInfo {{
  endCursor: String
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
}}

enum PullRequestState {{ CLOSED MERGED OPEN }}

enum PullRequestReviewState {{ APPROVED CHANGES_REQUESTED COMMENTED DISMISSED PENDING }}

type PullRequest {{
  additions: Int!
  author: Actor
  baseRefName: String!
  body: String!
  changedFiles: Int!
  closedAt: DateTime
  commits(after: String, before: String, first: Int, last: Int): PullRequestCommitConnection!
  createdAt: DateTime!
  {DEPRECATED_ID}
  deletions: Int!
  fullDatabaseId: BigInt
  headRefName: String!
  id: ID!
  isDraft: Boolean!
  labels(after: String, before: String, first: Int, last: Int): LabelConnection
  mergeCommit: Commit
  mergedAt: DateTime
  number: Int!
  reviews(
    after: String, author: String, before: String, first: Int, last: Int,
    states: [PullRequestReviewState!]
  ): PullRequestReviewConnection
  state: PullRequestState!
  timelineItems(
    after: String, before: String, first: Int, itemTypes: [PullRequestTimelineItemsItemType!],
    last: Int, since: DateTime, skip: Int
  ): PullRequestTimelineItemsConnection!
  title: String!
  updatedAt: DateTime!
  url: URI!
}}

type PullRequestReview {{
  author: Actor
  body: String!
  createdAt: DateTime!
  {DEPRECATED_ID}
  fullDatabaseId: BigInt
  id: ID!
  state: PullRequestReviewState!
  submittedAt: DateTime
  url: URI!
}}

{_connection_sdl("PullRequestReview", "PullRequestReview")}

type Commit {{
  authoredDate: DateTime!
  committedDate: DateTime!
  id: ID!
  message: String!
  oid: GitObjectID!
}}

type PullRequestCommit {{ commit: Commit! id: ID! url: URI! }}

{_connection_sdl("PullRequestCommit", "PullRequestCommit")}

type Label {{ color: String! description: String id: ID! name: String! }}

{_connection_sdl("Label", "Label")}

{chr(10).join(_event_sdl(event) for event in TIMELINE_TYPES.values())}

union PullRequestTimelineItems = {" | ".join(EVENTS)}

enum PullRequestTimelineItemsItemType {{
  {" ".join(_item_type(event) for event in EVENTS)}
}}

{_connection_sdl("PullRequestTimelineItems", "PullRequestTimelineItems", "filteredCount: Int!", "pageCount: Int!")}
"""


@cache
def schema() -> GraphQLSchema:
    """The schema, built once: ``BigInt`` is serialised as a string, as GitHub does."""
    built = build_schema(SDL)
    big = built.type_map["BigInt"]
    # graphql-core 3.3 coerces output with ``coerce_output_value``; 3.2 with ``serialize``.
    big.serialize = big.coerce_output_value = lambda value: str(int(value))
    return built


def github_error(type_: str, message: str) -> GraphQLError:
    """A field error GitHub types (``NOT_FOUND``, ``FORBIDDEN``...); the executor adds its path."""
    return GraphQLError(message, extensions={"type": type_})


def formatted(error: GraphQLError) -> dict:
    """An error as GitHub writes it: ``type`` (when it has one) beside ``path``, ``locations`` and
    ``message``, not under ``extensions``."""
    out: dict = {}
    if error.extensions and error.extensions.get("type"):
        out["type"] = error.extensions["type"]
    if error.path:
        out["path"] = list(error.path)
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    out["message"] = error.message
    return out


# -- connections ---------------------------------------------------------------------------------------
def _cursor(position: int) -> str:
    """An opaque cursor for the item at 1-based ``position``."""
    return base64.b64encode(f"cursor:v2:{position}".encode()).decode()


def _position(cursor: str) -> int:
    try:
        return int(base64.b64decode(cursor).decode().rpartition(":")[2])
    except ValueError:
        raise github_error(
            "INVALID_CURSOR_ARGUMENTS", f"`{cursor}` does not appear to be a valid cursor."
        ) from None


def _bounds(name: str, first: int | None, last: int | None) -> None:
    """GitHub's pagination rules, checked as GitHub does, on the connection field itself."""
    if first is None and last is None:
        raise github_error(
            "MISSING_PAGINATION_BOUNDARIES",
            f"You must provide a `first` or `last` value to properly paginate the `{name}` connection.",
        )
    for arg, k in (("first", first), ("last", last)):
        if k is not None and k > MAX_PAGE:
            raise github_error(
                "EXCESSIVE_PAGINATION",
                f"Requesting {k} records on the `{name}` connection exceeds the `{arg}` limit of "
                f"{MAX_PAGE} records.",
            )


def connection(
    name: str,
    items: list,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    **_: object,
) -> dict:
    """One page of ``items`` as a Relay connection (``totalCount``, ``pageInfo``, ``nodes``,
    ``edges``), after GitHub's pagination checks."""
    _bounds(name, first, last)
    start = _position(after) if after else 0
    end = _position(before) - 1 if before else len(items)
    window = list(range(start, max(start, end)))
    more_after = more_before = False
    if first is not None:
        more_after = len(window) > first
        window = window[: max(0, first)]
    if last is not None:
        more_before = len(window) > last
        window = window[len(window) - max(0, last) :] if last else []
    return {
        "totalCount": len(items),
        "filteredCount": len(items),
        "pageCount": len(window),
        "pageInfo": {
            "hasNextPage": more_after,
            "hasPreviousPage": more_before,
            "startCursor": _cursor(window[0] + 1) if window else None,
            "endCursor": _cursor(window[-1] + 1) if window else None,
        },
        "nodes": [items[i] for i in window],
        "edges": lambda info: [{"cursor": _cursor(i + 1), "node": items[i]} for i in window],
    }


# -- objects -----------------------------------------------------------------------------------------
def actor(user: dict | None) -> dict | None:
    """A REST ``user`` as the ``Actor`` GitHub's GraphQL gives: the concrete type in ``__typename``,
    and a bot's login without REST's ``[bot]`` suffix."""
    if not user:
        return None
    typename = user.get("type") if user.get("type") in ACTOR_TYPES else "User"
    login = user["login"]
    if typename == "Bot" and login.endswith("[bot]"):
        login = login[: -len("[bot]")]
    path = f"/apps/{login}" if typename == "Bot" else f"/{login}"
    return {
        "__typename": typename,
        "login": login,
        "databaseId": user.get("id"),
        "id": user.get("node_id") or f"U_{user.get('id')}",
        "url": WEB + path,
        "resourcePath": path,
        "avatarUrl": lambda info, size=None: user.get("avatar_url") or f"{WEB}{path}.png",
    }


def _review(r: dict) -> dict:
    return {
        "author": actor(r.get("user")),
        "body": r.get("body") or "",
        "createdAt": r.get("submitted_at"),
        "databaseId": r["id"],  # an Int: past 2**31 - 1 the executor answers null + an error, as GitHub
        "fullDatabaseId": r["id"],
        "id": r.get("node_id") or f"PRR_{r['id']}",
        "state": r["state"],
        "submittedAt": r.get("submitted_at"),
        "url": r.get("html_url") or "",
    }


def _commit(c: dict) -> dict:
    inner = c.get("commit") or {}
    commit = {
        "authoredDate": inner["author"]["date"],
        "committedDate": (inner.get("committer") or inner["author"])["date"],
        "id": c.get("node_id") or f"C_{c['sha']}",
        "message": inner.get("message") or "",
        "oid": c["sha"],
    }
    return {"commit": commit, "id": commit["id"], "url": c.get("html_url") or ""}


def _event(e: dict) -> dict:
    return {
        "__typename": TIMELINE_TYPES[e["event"]],
        "actor": actor(e.get("actor")),
        "createdAt": e["created_at"],
        "id": e.get("node_id") or f"E_{e.get('id')}",
    }


def _raiser(type_: str, message: str):
    def fail(info, **args):
        raise github_error(type_, message)

    return fail


class PullRequest:
    """A PR of the fake as GitHub's ``PullRequest``: scalars as attributes, connections as methods
    the executor calls with the field's arguments."""

    def __init__(self, fake, repo: str, p: dict) -> None:
        pull, detail = p["pull"], p["detail"]
        self.p = p
        merged = pull.get("merged_at") is not None
        self.number = pull["number"]
        self.databaseId = self.fullDatabaseId = pull["id"]
        self.id = pull.get("node_id") or f"PR_{pull['id']}"
        self.title = pull["title"]
        self.url = pull["html_url"]
        self.state = "MERGED" if merged else "CLOSED" if pull["state"] == "closed" else "OPEN"
        self.isDraft = bool(pull.get("draft"))
        self.body = pull.get("body") or ""  # REST's null body is GraphQL's empty string
        self.createdAt, self.updatedAt = pull["created_at"], pull["updated_at"]
        self.closedAt, self.mergedAt = pull.get("closed_at"), pull.get("merged_at")
        self.additions, self.deletions = detail.get("additions"), detail.get("deletions")
        self.changedFiles = detail.get("changed_files")
        self.headRefName = (pull.get("head") or {}).get("ref")
        self.baseRefName = (pull.get("base") or {}).get("ref")
        self.author = actor(pull.get("user"))
        self.mergeCommit = (
            {
                "authoredDate": pull["merged_at"],
                "committedDate": pull["merged_at"],
                "id": f"C_{pull['merge_commit_sha']}",
                "message": f"Merge pull request #{self.number}",
                "oid": pull["merge_commit_sha"],
            }
            if merged
            else None
        )
        for (r, n, field), (type_, message) in fake.graphql_field_errors.items():
            if r == repo and n == self.number:
                setattr(self, field, _raiser(type_, message))

    def reviews(self, info, states: list[str] | None = None, author: str | None = None, **page) -> dict:
        items = [
            _review(r)
            for r in self.p["reviews"]
            if (states is None or r["state"] in states)
            and (author is None or (r.get("user") or {}).get("login") == author)
        ]
        return connection("reviews", items, **page)

    def commits(self, info, **page) -> dict:
        return connection("commits", [_commit(c) for c in self.p["commits"]], **page)

    def labels(self, info, **page) -> dict:
        items = [
            {
                "color": x.get("color") or "ededed",
                "description": x.get("description"),
                "id": x.get("node_id") or f"LA_{x.get('id')}",
                "name": x["name"],
            }
            for x in self.p["pull"].get("labels") or []
        ]
        return connection("labels", items, **page)

    def timelineItems(
        self,
        info,
        itemTypes: list[str] | None = None,
        since: str | None = None,
        skip: int | None = None,
        **page,
    ) -> dict:
        items = [
            _event(e)
            for e in self.p["timeline"]
            if e.get("event") in TIMELINE_TYPES and (since is None or e["created_at"] >= since)
        ]
        if itemTypes is not None:
            items = [e for e in items if _item_type(e["__typename"]) in itemTypes]
        return connection("timelineItems", items[skip or 0 :], **page)


class Repository:
    def __init__(self, fake, repo: str) -> None:
        self.fake, self.repo = fake, repo
        self.nameWithOwner = repo
        self.id = "R_" + base64.b64encode(repo.encode()).decode()

    def pullRequest(self, info, number: int) -> PullRequest:
        p = self.fake.pulls[self.repo].get(number)
        if p is None:
            raise github_error(
                "NOT_FOUND", f"Could not resolve to a PullRequest with the number of {number}."
            )
        return PullRequest(self.fake, self.repo, p)


class Root:
    def __init__(self, fake) -> None:
        self.fake = fake

    def repository(self, info, owner: str, name: str, followRenames: bool = True) -> Repository:
        repo = f"{owner}/{name}"
        if repo not in self.fake.pulls:
            raise github_error("NOT_FOUND", f"Could not resolve to a Repository with the name '{repo}'.")
        return Repository(self.fake, repo)


# -- the route ---------------------------------------------------------------------------------------
class _PullFields(Visitor):
    """How many PRs a query asks for (``pullRequest`` fields, fragments included)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def enter_field(self, node, *_):
        self.count += node.name.value == "pullRequest"


def _headers(fake) -> dict[str, str]:
    remaining = 0 if fake.graphql_spent else 4999
    return {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-used": str(5000 - remaining),
        "x-ratelimit-reset": str(fake.graphql_reset or int(time.time()) + 3600),
        "x-ratelimit-resource": "graphql",
    }


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
    headers = _headers(fake)
    if fake.graphql_spent:
        fake.graphql_spent -= 1
        error = {"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}
        return Reply(200, {"errors": [error]}, headers)
    try:
        document = parse(query)
    except GraphQLError as exc:
        return Reply(200, {"errors": [formatted(exc)]}, headers)
    invalid = validate(schema(), document)
    if invalid:
        return Reply(200, {"errors": [formatted(e) for e in invalid]}, headers)
    if fake.graphql_limit is not None:
        counter = _PullFields()
        visit(document, counter)
        if counter.count > fake.graphql_limit:
            return Reply(200, {"data": None, "errors": [{"message": TIMEOUT}]}, headers)
    result = execute(schema(), document, root_value=Root(fake), variable_values=variables)
    out: dict = {"data": result.data}
    if result.errors:
        out["errors"] = [formatted(e) for e in result.errors]
    return Reply(200, out, headers)
