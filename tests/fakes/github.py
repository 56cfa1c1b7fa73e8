"""A loopback GitHub REST API (2022-11-28): pulls and their reviews, commits and timeline, deployments
and statuses, compare, releases, workflow runs, issues; and the GraphQL endpoint's pull requests over
the same data (``fakes.github_graphql``, a graphql-core executor on a subset of GitHub's schema).

Payloads follow the examples of GitHub's OpenAPI description (github/rest-api-description,
``pull-request-simple``, ``pull-request``, ``deployment``, ``deployment-status``, ``commit-comparison``,
``release``, ``workflow-run``, ``issue``), trimmed of URL fields nobody reads. The API's behaviour:
Bearer auth (401 ``Bad credentials``), the pinned ``X-GitHub-Api-Version`` (400 otherwise), ``per_page``
(default 30, max 100) with ``page`` and a ``Link`` header, ``sort``/``direction`` on pulls (direction
defaults to ``asc`` unless ``sort=created``), ETags with 304 for a matching ``If-None-Match`` (counted in
``not_modified``), deployments newest first, ``created`` ranges on workflow runs with at most 1,000
results per query, ``since``/``labels`` on issues, which list labelled PRs too (with ``pull_request``).

Data is held as ready payloads (built once per change, never per request) and sorted lists are cached
until the next change, so tens of thousands of PRs are served without per-request quadratic work.
``outage`` (a predicate on the request) answers 500 while it holds; ``arm(path, after, *faults)``
queues transport faults on a path once ``after`` more requests to it have been answered.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

from builders import ts

from fakes import github_graphql
from fakes.server import FakeApi, FakeServer, Reply, Request

API = "https://api.github.com"
WEB = "https://github.com"
VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
RUN_CAP = 1000


def when(value: str | float | None) -> str | None:
    """``"2026-01-05 09:00"`` (UTC) or epoch seconds -> GitHub's ``2026-01-05T09:00:00Z``."""
    if value is None:
        return None
    dt = datetime.fromtimestamp(ts(value), UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def sha(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()


def _uid(login: str) -> int:
    return int(hashlib.md5(login.encode()).hexdigest()[:7], 16)


def user(login: str, type_: str = "User") -> dict:
    return {
        "login": login,
        "id": _uid(login),
        "node_id": f"MDQ6VXNlcj{_uid(login)}",
        "avatar_url": f"https://github.com/images/error/{login}_happy.gif",
        "url": f"{API}/users/{login}",
        "html_url": f"{WEB}/{login}",
        "type": type_,
        "site_admin": False,
    }


def _repo_obj(repo: str) -> dict:
    owner, name = repo.split("/")
    return {
        "id": _uid(repo),
        "node_id": f"MDEwOlJlcG9zaXRvcnkx{_uid(repo)}",
        "name": name,
        "full_name": repo,
        "owner": user(owner, "Organization"),
        "private": True,
        "html_url": f"{WEB}/{repo}",
        "url": f"{API}/repos/{repo}",
        "default_branch": "main",
    }


def _ts(text: str | None) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"message": message, "documentation_url": "https://docs.github.com/rest"})


class FakeGitHub(FakeApi):
    """Repositories in memory, served over real HTTP; builders and mutators change them."""

    def __init__(self, token: str, server: FakeServer | None = None) -> None:
        self.token = token
        super().__init__(server)
        self.pulls: dict[str, dict[int, dict]] = defaultdict(dict)  # {"pull", "detail", "reviews", ...}
        self.deployments: dict[str, dict[int, dict]] = defaultdict(dict)
        self.statuses: dict[int, list[dict]] = defaultdict(list)  # oldest first
        self.history: dict[str, list[str]] = defaultdict(list)  # main's commits, oldest first
        self.messages: dict[str, str] = {}
        self.releases: dict[str, dict[int, dict]] = defaultdict(dict)
        self.runs: dict[str, dict[int, dict]] = defaultdict(dict)
        self.issues: dict[str, dict[int, dict]] = defaultdict(dict)
        self.numbers: dict[str, int] = defaultdict(lambda: 1346)
        self.ids = iter(range(1_000_001, 10**12))
        # Review ids are past 2**31 - 1 on GitHub today (GraphQL's 32-bit ``databaseId`` cannot hold them).
        self.review_ids = iter(range(2_480_002_890, 10**12))
        self.version = 0
        self._cache: dict[tuple, tuple[int, list]] = {}
        self._index: dict[str, tuple[int, dict[str, int]]] = {}
        self.outage: Callable[[Request], bool] | None = None
        self.not_modified: list[str] = []  # paths answered 304
        self.graphql_limit: int | None = None  # GraphQL queries of more PRs time out, as heavy queries do
        self.graphql_spent = 0  # the next GraphQL queries are answered RATE_LIMITED
        self.graphql_reset: int | None = None  # their x-ratelimit-reset (default: an hour from now)
        # {(repo, number, PullRequest field): (error type, message)}: that field fails, as on GitHub
        self.graphql_field_errors: dict[tuple[str, int, str], tuple[str, str]] = {}
        self.server.route("GET", "/repos/*", self._dispatch)
        self.server.route("POST", "/graphql", lambda req: github_graphql.answer(self, req))

    def source(self, **kw) -> dict:
        """A ``[[source]]`` syncing from this fake (token in ``GITHUB_TOKEN``, production deployments, a
        year of history); ``kw`` adds to it or overrides it (``repos`` at least)."""
        return {
            "name": "github",
            "kind": "github",
            "url": self.url,
            "token_env": "GITHUB_TOKEN",
            "production_environments": ["production"],
            "history_days": 365,
            **kw,
        }

    def changed(self) -> None:
        self.version += 1

    # -- pull requests -----------------------------------------------------------------------------
    def add_pull(
        self,
        repo: str,
        created: str | float,
        *,
        merged: str | float | None = None,
        closed: str | float | None = None,
        draft: bool = False,
        ready: str | float | None = None,
        author: str = "octocat",
        author_type: str = "User",
        reviews: tuple = (),
        commits: int = 2,
        first_commit: str | float | None = None,
        additions: int = 100,
        deletions: int = 3,
        title: str | None = None,
        body: str | None = None,
        labels: tuple[str, ...] = (),
    ) -> int:
        """A PR as ``pull-request-simple`` shows it; ``reviews`` = ``[(at, login, state), ...]``."""
        self.numbers[repo] += 1
        n = self.numbers[repo]
        pid = next(self.ids)
        created_s = when(created)
        head = sha(repo, n, "head")
        first = _ts(when(first_commit)) if first_commit is not None else _ts(created_s) - 3600
        commit_list = [
            {
                "url": f"{API}/repos/{repo}/commits/{sha(repo, n, 'c', i)}",
                "sha": sha(repo, n, "c", i),
                "node_id": f"MDY6Q29tbWl0{pid}{i}",
                "html_url": f"{WEB}/{repo}/commit/{sha(repo, n, 'c', i)}",
                "commit": {
                    "url": f"{API}/repos/{repo}/git/commits/{sha(repo, n, 'c', i)}",
                    "author": {
                        "name": author,
                        "email": f"{author}@github.com",
                        "date": when(first + 600 * i),
                    },
                    "committer": {
                        "name": "GitHub",
                        "email": "noreply@github.com",
                        "date": when(first + 600 * i + 60),
                    },
                    "message": f"{title or 'Amazing new feature'} ({i + 1})",
                    "comment_count": 0,
                },
                "author": user(author, author_type),
                "committer": user("web-flow"),
                "parents": [{"sha": sha(repo, n, "c", i - 1) if i else sha(repo, "base")}],
            }
            for i in range(commits)
        ]
        pull = {
            "url": f"{API}/repos/{repo}/pulls/{n}",
            "id": pid,
            "node_id": f"MDExOlB1bGxSZXF1ZXN0{pid}",
            "html_url": f"{WEB}/{repo}/pull/{n}",
            "diff_url": f"{WEB}/{repo}/pull/{n}.diff",
            "issue_url": f"{API}/repos/{repo}/issues/{n}",
            "number": n,
            "state": "open",
            "locked": False,
            "title": title or "Amazing new feature",
            "user": user(author, author_type),
            "body": body if body is not None else "Please pull these awesome changes in!",
            "labels": [self._label(repo, name) for name in labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": created_s,
            "updated_at": created_s,
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": sha(repo, n, "test-merge"),  # GitHub's test merge while open
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": {"label": f"{repo.split('/')[0]}:feature-{n}", "ref": f"feature-{n}", "sha": head},
            "base": {
                "label": f"{repo.split('/')[0]}:main",
                "ref": "main",
                "sha": sha(repo, "base"),
                "repo": _repo_obj(repo),
            },
            "author_association": "MEMBER",
            "auto_merge": None,
            "draft": draft,
        }
        self.pulls[repo][n] = {
            "pull": pull,
            "detail": {
                "merged": False,
                "mergeable": True,
                "rebaseable": True,
                "mergeable_state": "clean",
                "merged_by": None,
                "comments": 0,
                "review_comments": 0,
                "maintainer_can_modify": True,
                "commits": commits,
                "additions": additions,
                "deletions": deletions,
                "changed_files": max(1, additions // 50),
            },
            "reviews": [],
            "commits": commit_list,
            "timeline": [],
        }
        self.changed()
        if ready is not None:
            self.mark_ready(repo, n, ready)
        for at, login, state in reviews:
            self.review(repo, n, at, login, state)
        if merged is not None:
            self.merge(repo, n, merged)
        elif closed is not None:
            self.close_pull(repo, n, closed)
        return n

    def load_pull(self, payloads: dict) -> None:
        """A PR from ready payloads (``pull`` = list object + single GET fields, ``pull_reviews``,
        ``pull_commits``, ``pull_timeline``), e.g. the sample history's."""
        full = payloads["pull"]
        repo = full["base"]["repo"]["full_name"]
        detail_keys = ("merged", "commits", "additions", "deletions", "changed_files")
        self.pulls[repo][full["number"]] = {
            "pull": {k: v for k, v in full.items() if k not in detail_keys},
            "detail": {k: full[k] for k in detail_keys if k in full},
            "reviews": list(payloads["pull_reviews"]),
            "commits": list(payloads["pull_commits"]),
            "timeline": list(payloads["pull_timeline"]),
        }
        self.numbers[repo] = max(self.numbers[repo], full["number"])
        self.changed()

    def _touch(self, pull: dict, at: str | float) -> None:
        t = when(at)
        pull["updated_at"] = max(pull["updated_at"], t)
        self.changed()

    def _event(self, repo: str, n: int, event: str, at: str | float, **extra) -> None:
        p = self.pulls[repo][n]
        eid = next(self.ids)
        p["timeline"].append(
            {
                "id": eid,
                "node_id": f"MDEwOklzc3VlRXZlbnQx{eid}",
                "url": f"{API}/repos/{repo}/issues/events/{eid}",
                "actor": p["pull"]["user"],
                "event": event,
                "commit_id": extra.get("commit_id"),
                "commit_url": None,
                "created_at": when(at),
                "performed_via_github_app": None,
            }
        )

    def mark_ready(self, repo: str, n: int, at: str | float) -> None:
        p = self.pulls[repo][n]
        p["pull"]["draft"] = False
        self._event(repo, n, "ready_for_review", at)
        self._touch(p["pull"], at)

    def review(
        self, repo: str, n: int, at: str | float | None, login: str = "hubot", state: str = "APPROVED"
    ) -> None:
        """A review; ``at=None`` is a pending one (no ``submitted_at``)."""
        p = self.pulls[repo][n]
        rid = next(self.review_ids)
        review = {
            "id": rid,
            "node_id": f"MDE3OlB1bGxSZXF1ZXN0UmV2aWV3{rid}",
            "user": user(login, "Bot" if login.endswith("[bot]") else "User"),
            "body": "Here is the body for the review.",
            "state": state,
            "html_url": f"{WEB}/{repo}/pull/{n}#pullrequestreview-{rid}",
            "pull_request_url": f"{API}/repos/{repo}/pulls/{n}",
            "commit_id": p["pull"]["head"]["sha"],
            "author_association": "COLLABORATOR",
        }
        if at is not None:
            review["submitted_at"] = when(at)
            self._touch(p["pull"], at)
        p["reviews"].append(review)
        self.changed()

    def merge(self, repo: str, n: int, at: str | float) -> str:
        """Merge into main: the PR's commits then its merge commit join the history."""
        p = self.pulls[repo][n]
        t = when(at)
        merge_sha = sha(repo, n, "merge")
        p["pull"].update(state="closed", merged_at=t, closed_at=t, merge_commit_sha=merge_sha)
        p["detail"].update(merged=True, mergeable=None, mergeable_state="unknown", merged_by=user("octocat"))
        for c in p["commits"]:
            self._commit(repo, c["sha"], c["commit"]["message"])
        self._commit(repo, merge_sha, f"Merge pull request #{n}")
        self._event(repo, n, "merged", at, commit_id=merge_sha)
        self._event(repo, n, "closed", at)
        self._touch(p["pull"], at)
        return merge_sha

    def close_pull(self, repo: str, n: int, at: str | float) -> None:
        p = self.pulls[repo][n]
        p["pull"].update(state="closed", closed_at=when(at))
        self._event(repo, n, "closed", at)
        self._touch(p["pull"], at)

    def edit_pull(self, repo: str, n: int, at: str | float, **fields) -> None:
        p = self.pulls[repo][n]
        p["pull"].update(fields)
        self._touch(p["pull"], at)

    def _commit(self, repo: str, commit: str, message: str) -> None:
        self.history[repo].append(commit)
        self.messages[commit] = message
        self.changed()

    def head(self, repo: str) -> str:
        return self.history[repo][-1]

    # -- deployments -------------------------------------------------------------------------------
    def deploy(
        self,
        repo: str,
        created: str | float,
        statuses: list[tuple[str | float, str]] = (),
        *,
        sha_: str | None = None,
        environment: str = "production",
        id_: int | None = None,
    ) -> int:
        """A deployment of ``sha_`` (default: main's head) with ``[(at, state), ...]`` statuses."""
        did = id_ if id_ is not None else next(self.ids)
        t = when(created)
        self.deployments[repo][did] = {
            "url": f"{API}/repos/{repo}/deployments/{did}",
            "id": did,
            "node_id": f"MDEwOkRlcGxveW1lbnQx{did}",
            "sha": sha_ or self.head(repo),
            "ref": "main",
            "task": "deploy",
            "payload": {},
            "original_environment": environment,
            "environment": environment,
            "description": "Deploy request from hubot",
            "creator": user("github-actions[bot]", "Bot"),
            "created_at": t,
            "updated_at": t,
            "statuses_url": f"{API}/repos/{repo}/deployments/{did}/statuses",
            "repository_url": f"{API}/repos/{repo}",
            "transient_environment": False,
            "production_environment": environment == "production",
        }
        self.changed()
        for at, state in statuses:
            self.add_status(repo, did, at, state)
        return did

    def load_deployment(self, payload: dict) -> None:
        """A deployment from a ready payload with ``statuses`` (newest first), e.g. the sample's."""
        repo = payload["repository_url"].split("/repos/")[1]
        dep = {k: v for k, v in payload.items() if k != "statuses"}
        self.deployments[repo][dep["id"]] = dep
        self.statuses[dep["id"]] = list(reversed(payload.get("statuses") or []))
        self.changed()

    def add_status(self, repo: str, did: int, at: str | float, state: str) -> None:
        dep = self.deployments[repo][did]
        sid = next(self.ids)
        t = when(at)
        self.statuses[did].append(
            {
                "url": f"{API}/repos/{repo}/deployments/{did}/statuses/{sid}",
                "id": sid,
                "node_id": f"MDE2OkRlcGxveW1lbnRTdGF0dXMx{sid}",
                "state": state,
                "creator": user("github-actions[bot]", "Bot"),
                "description": "Deployment finished successfully." if state == "success" else "",
                "environment": dep["environment"],
                "target_url": f"{WEB}/{repo}/actions/runs/{did}",
                "created_at": t,
                "updated_at": t,
                "deployment_url": dep["url"],
                "repository_url": dep["repository_url"],
                "environment_url": "",
                "log_url": f"{WEB}/{repo}/actions/runs/{did}",
            }
        )
        dep["updated_at"] = max(dep["updated_at"], t)
        self.changed()

    def delete_deployment(self, repo: str, did: int) -> None:
        del self.deployments[repo][did]
        self.statuses.pop(did, None)
        self.changed()

    # -- releases, workflow runs, issues -----------------------------------------------------------
    def release(
        self,
        repo: str,
        tag: str,
        published: str | float | None,
        *,
        created: str | float | None = None,
        draft: bool = False,
        prerelease: bool = False,
        target: str | None = None,
    ) -> int:
        rid = next(self.ids)
        self.releases[repo][rid] = {
            "url": f"{API}/repos/{repo}/releases/{rid}",
            "html_url": f"{WEB}/{repo}/releases/{tag}",
            "id": rid,
            "author": user("octocat"),
            "node_id": f"MDc6UmVsZWFzZT{rid}",
            "tag_name": tag,
            "target_commitish": target or self.head(repo),
            "name": tag,
            "draft": draft,
            "prerelease": prerelease,
            "created_at": when(created if created is not None else published),
            "published_at": None if draft else when(published),
            "assets": [],
            "tarball_url": f"{API}/repos/{repo}/tarball/{tag}",
            "zipball_url": f"{API}/repos/{repo}/zipball/{tag}",
            "body": "Description of the release",
        }
        self.changed()
        return rid

    def run(
        self,
        repo: str,
        created: str | float,
        *,
        name: str = "Deploy",
        path: str = ".github/workflows/deploy.yml",
        head_sha: str | None = None,
        status: str = "completed",
        conclusion: str | None = "success",
        finished: str | float | None = None,
    ) -> int:
        rid = next(self.ids)
        t = when(created)
        self.runs[repo][rid] = {
            "id": rid,
            "name": name,
            "node_id": f"MDEyOldvcmtmbG93IFJ1bj{rid}",
            "head_branch": "main",
            "head_sha": head_sha or (self.head(repo) if self.history[repo] else sha(repo, rid)),
            "path": path,
            "display_title": name,
            "run_number": len(self.runs[repo]) + 1,
            "event": "push",
            "status": status,
            "conclusion": conclusion if status == "completed" else None,
            "workflow_id": _uid(path),
            "url": f"{API}/repos/{repo}/actions/runs/{rid}",
            "html_url": f"{WEB}/{repo}/actions/runs/{rid}",
            "created_at": t,
            "updated_at": when(finished) if finished is not None else t,
            "run_attempt": 1,
            "run_started_at": t,
            "repository": _repo_obj(repo),
        }
        self.changed()
        return rid

    def finish_run(self, repo: str, rid: int, at: str | float, conclusion: str = "success") -> None:
        self.runs[repo][rid].update(status="completed", conclusion=conclusion, updated_at=when(at))
        self.changed()

    def _label(self, repo: str, name: str) -> dict:
        return {
            "id": _uid(name),
            "node_id": f"MDU6TGFiZWwx{_uid(name)}",
            "url": f"{API}/repos/{repo}/labels/{name}",
            "name": name,
            "description": None,
            "color": "f29513",
            "default": False,
        }

    def incident(
        self,
        repo: str,
        created: str | float,
        closed: str | float | None = None,
        *,
        labels: tuple[str, ...] = ("incident",),
        title: str = "Checkout is down",
    ) -> int:
        """An issue (labelled ``incident`` by default), closed at ``closed`` if given."""
        self.numbers[repo] += 1
        n = self.numbers[repo]
        iid = next(self.ids)
        t = when(created)
        self.issues[repo][n] = {
            "id": iid,
            "node_id": f"MDU6SXNzdWUx{iid}",
            "url": f"{API}/repos/{repo}/issues/{n}",
            "repository_url": f"{API}/repos/{repo}",
            "html_url": f"{WEB}/{repo}/issues/{n}",
            "number": n,
            "state": "open",
            "state_reason": None,
            "title": title,
            "body": "I'm having a problem with this.",
            "user": user("octocat"),
            "labels": [self._label(repo, name) for name in labels],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "comments": 0,
            "closed_at": None,
            "created_at": t,
            "updated_at": t,
            "closed_by": None,
            "author_association": "COLLABORATOR",
        }
        self.changed()
        if closed is not None:
            self.close_issue(repo, n, closed)
        return n

    def close_issue(self, repo: str, n: int, at: str | float) -> None:
        t = when(at)
        self.issues[repo][n].update(
            state="closed", state_reason="completed", closed_at=t, updated_at=t, closed_by=user("octocat")
        )
        self.changed()

    def relabel(self, repo: str, n: int, at: str | float, labels: tuple[str, ...]) -> None:
        self.issues[repo][n].update(labels=[self._label(repo, x) for x in labels], updated_at=when(at))
        self.changed()

    # -- HTTP --------------------------------------------------------------------------------------
    ROUTES = [
        (re.compile(r"/pulls$"), "_list_pulls"),
        (re.compile(r"/pulls/(\d+)$"), "_pull"),
        (re.compile(r"/pulls/(\d+)/reviews$"), "_reviews"),
        (re.compile(r"/pulls/(\d+)/commits$"), "_commits"),
        (re.compile(r"/issues/(\d+)/timeline$"), "_timeline"),
        (re.compile(r"/deployments$"), "_list_deployments"),
        (re.compile(r"/deployments/(\d+)$"), "_deployment"),
        (re.compile(r"/deployments/(\d+)/statuses$"), "_statuses"),
        (re.compile(r"/compare/(.+?)\.\.\.(.+)$"), "_compare"),
        (re.compile(r"/releases$"), "_list_releases"),
        (re.compile(r"/releases/(\d+)$"), "_release"),
        (re.compile(r"/actions/runs$"), "_list_runs"),
        (re.compile(r"/actions/runs/(\d+)$"), "_run"),
        (re.compile(r"/issues$"), "_list_issues"),
        (re.compile(r"/issues/(\d+)$"), "_issue"),
    ]

    def _dispatch(self, req: Request) -> Reply:
        reply = self._answer(req)
        reply.headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-used": "1",
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
            "x-github-api-version-selected": VERSION,
            **reply.headers,
        }
        return reply

    def _answer(self, req: Request) -> Reply:
        if self.outage is not None and self.outage(req):
            return _error(500, "Server Error")
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "Bad credentials")
        if req.headers.get("x-github-api-version") != VERSION:
            return _error(
                400, f"Unsupported 'X-GitHub-Api-Version': {req.headers.get('x-github-api-version')}"
            )
        if req.headers.get("accept") != ACCEPT:
            return _error(415, "Unsupported 'Accept' header")
        m = re.match(r"^/repos/([^/]+/[^/]+)(/.*)$", req.path)
        if not m:
            return _error(404, "Not Found")
        repo, rest = m.groups()
        for pattern, name in self.ROUTES:
            hit = pattern.match(rest)
            if hit:
                return getattr(self, name)(req, repo, *hit.groups())
        return _error(404, "Not Found")

    def _page(self, req: Request, items: list, *, wrap: Callable[[list], object] | None = None) -> Reply:
        """One page of ``items`` with ``Link`` next/last, an ETag, and 304 when it matches."""
        per_page = min(int(req.arg("per_page", "30")), 100)
        page = max(1, int(req.arg("page", "1")))
        chunk = items[(page - 1) * per_page : page * per_page]
        body = wrap(chunk) if wrap else chunk
        headers = {}
        last = max(1, -(-len(items) // per_page))
        if page < last:
            query = {k: v[0] for k, v in req.query.items()}
            links = [
                f'<{self.url}{req.path}?{urlencode({**query, "page": page + 1})}>; rel="next"',
                f'<{self.url}{req.path}?{urlencode({**query, "page": last})}>; rel="last"',
            ]
            headers["Link"] = ", ".join(links)
        return self._etagged(req, body, headers)

    def _etagged(self, req: Request, body: object, headers: dict | None = None) -> Reply:
        headers = dict(headers or {})
        raw = json.dumps(body).encode()
        etag = 'W/"' + hashlib.sha1(raw + headers.get("Link", "").encode()).hexdigest() + '"'
        headers["ETag"] = etag
        if req.headers.get("if-none-match") == etag:
            self.not_modified.append(req.path)
            return Reply(304, b"", headers)
        return Reply(200, raw, headers)

    def _sorted(self, key: tuple, build: Callable[[], list]) -> list:
        hit = self._cache.get(key)
        if hit is None or hit[0] != self.version:
            hit = (self.version, build())
            self._cache[key] = hit
        return hit[1]

    def _list_pulls(self, req: Request, repo: str) -> Reply:
        state = req.arg("state", "open")
        sort = req.arg("sort", "created")
        direction = req.arg("direction", "desc" if sort == "created" else "asc")
        if (
            sort not in ("created", "updated")
            or direction not in ("asc", "desc")
            or state not in ("open", "closed", "all")
        ):
            return _error(422, "Validation Failed")

        def build() -> list:
            field = "updated_at" if sort == "updated" else "created_at"
            items = [
                p["pull"] for p in self.pulls[repo].values() if state == "all" or p["pull"]["state"] == state
            ]
            return sorted(items, key=lambda p: (p[field], p["number"]), reverse=direction == "desc")

        return self._page(req, self._sorted(("pulls", repo, state, sort, direction), build))

    def _pr(self, repo: str, n: str) -> dict | None:
        return self.pulls[repo].get(int(n))

    def _pull(self, req: Request, repo: str, n: str) -> Reply:
        p = self._pr(repo, n)
        if p is None:
            return _error(404, "Not Found")
        return self._etagged(req, {**p["pull"], **p["detail"]})

    def _reviews(self, req: Request, repo: str, n: str) -> Reply:
        p = self._pr(repo, n)
        return _error(404, "Not Found") if p is None else self._page(req, p["reviews"])

    def _commits(self, req: Request, repo: str, n: str) -> Reply:
        p = self._pr(repo, n)
        return _error(404, "Not Found") if p is None else self._page(req, p["commits"][:250])

    def _timeline(self, req: Request, repo: str, n: str) -> Reply:
        p = self._pr(repo, n)
        return _error(404, "Not Found") if p is None else self._page(req, p["timeline"])

    def _list_deployments(self, req: Request, repo: str) -> Reply:
        env = req.arg("environment")

        def build() -> list:
            deps = [d for d in self.deployments[repo].values() if env is None or d["environment"] == env]
            return sorted(deps, key=lambda d: (d["created_at"], d["id"]), reverse=True)

        return self._page(req, self._sorted(("deployments", repo, env), build))

    def _deployment(self, req: Request, repo: str, did: str) -> Reply:
        dep = self.deployments[repo].get(int(did))
        return _error(404, "Not Found") if dep is None else self._etagged(req, dep)

    def _statuses(self, req: Request, repo: str, did: str) -> Reply:
        if int(did) not in self.deployments[repo]:
            return _error(404, "Not Found")
        return self._page(req, list(reversed(self.statuses[int(did)])))

    def _resolve(self, repo: str, ref: str) -> str | None:
        for rel in self.releases[repo].values():
            if rel["tag_name"] == ref:
                return rel["target_commitish"]
        return ref

    def _compare(self, req: Request, repo: str, base: str, head: str) -> Reply:
        hit = self._index.get(repo)
        if hit is None or hit[0] != self.version:
            hit = (self.version, {c: i for i, c in enumerate(self.history[repo])})
            self._index[repo] = hit
        index = hit[1]
        b, h = index.get(self._resolve(repo, base)), index.get(self._resolve(repo, head))
        if b is None or h is None:
            return _error(404, "Not Found")
        shas = self.history[repo][b + 1 : h + 1] if b <= h else []
        commits = [
            {
                "url": f"{API}/repos/{repo}/commits/{c}",
                "sha": c,
                "node_id": f"MDY6Q29tbWl0{c[:10]}",
                "html_url": f"{WEB}/{repo}/commit/{c}",
                "commit": {"message": self.messages.get(c, ""), "comment_count": 0},
                "parents": [],
            }
            for c in shas
        ]
        status = "identical" if b == h else ("ahead" if b < h else "behind")

        def wrap(chunk: list) -> dict:
            return {
                "url": f"{API}/repos/{repo}/compare/{base}...{head}",
                "html_url": f"{WEB}/{repo}/compare/{base}...{head}",
                "permalink_url": f"{WEB}/{repo}/compare/{base[:7]}...{head[:7]}",
                "base_commit": {"sha": self._resolve(repo, base)},
                "merge_base_commit": {"sha": self._resolve(repo, base if b <= h else head)},
                "status": status,
                "ahead_by": max(0, h - b),
                "behind_by": max(0, b - h),
                "total_commits": len(commits),
                "commits": chunk,
                "files": [
                    {"filename": "file1.txt", "status": "modified", "additions": 103, "patch": "@@ -1 +1 @@"}
                ],
            }

        return self._page(req, commits, wrap=wrap)

    def _list_releases(self, req: Request, repo: str) -> Reply:
        def build() -> list:
            return sorted(
                self.releases[repo].values(), key=lambda r: (r["created_at"], r["id"]), reverse=True
            )

        return self._page(req, self._sorted(("releases", repo), build))

    def _release(self, req: Request, repo: str, rid: str) -> Reply:
        rel = self.releases[repo].get(int(rid))
        return _error(404, "Not Found") if rel is None else self._etagged(req, rel)

    def _list_runs(self, req: Request, repo: str) -> Reply:
        created = req.arg("created")
        lo, hi = "", "9999"
        if created:
            if ".." not in created:
                return _error(422, "Validation Failed: created must be a range")
            lo, hi = created.split("..")
            if not (lo.endswith("Z") and hi.endswith("Z")):
                return _error(422, "Validation Failed: created needs UTC times")

        def build() -> list:
            runs = [r for r in self.runs[repo].values() if lo <= r["created_at"] <= hi]
            return sorted(runs, key=lambda r: (r["created_at"], r["id"]), reverse=True)

        runs = self._sorted(("runs", repo, lo, hi), build)
        per_page = min(int(req.arg("per_page", "30")), 100)
        if (int(req.arg("page", "1")) - 1) * per_page >= RUN_CAP:
            return _error(422, "Only the first 1000 search results are available")
        return self._page(
            req, runs[:RUN_CAP], wrap=lambda chunk: {"total_count": len(runs), "workflow_runs": chunk}
        )

    def _run(self, req: Request, repo: str, rid: str) -> Reply:
        run = self.runs[repo].get(int(rid))
        return _error(404, "Not Found") if run is None else self._etagged(req, run)

    def _list_issues(self, req: Request, repo: str) -> Reply:
        wanted = [x for x in (req.arg("labels") or "").split(",") if x]
        state = req.arg("state", "open")
        since = req.arg("since") or ""
        sort = req.arg("sort", "created")
        direction = req.arg("direction", "desc")
        items = list(self.issues[repo].values()) + [
            {**p["pull"], "pull_request": {"url": p["pull"]["url"], "merged_at": p["pull"]["merged_at"]}}
            for p in self.pulls[repo].values()
            if p["pull"]["labels"]
        ]
        items = [
            i
            for i in items
            if (state == "all" or i["state"] == state)
            and i["updated_at"] >= since
            and all(w in {x["name"] for x in i["labels"]} for w in wanted)
        ]
        field = "updated_at" if sort == "updated" else "created_at"
        items.sort(key=lambda i: (i[field], i["number"]), reverse=direction == "desc")
        return self._page(req, items)

    def _issue(self, req: Request, repo: str, n: str) -> Reply:
        issue = self.issues[repo].get(int(n))
        if issue is None:
            return (
                _error(410, "This issue was deleted")
                if int(n) <= self.numbers[repo]
                else _error(404, "Not Found")
            )
        return self._etagged(req, issue)
