"""A loopback GitLab REST API v4: merge requests (commits, notes, approvals, diffs), deployments
(and the merge requests they shipped), over real HTTP.

Payloads follow the examples of GitLab's API documentation (``doc/api/merge_requests.md``,
``notes.md``, ``merge_request_approvals.md``, ``deployments.md``): ``iid`` per project, user objects
``{id, username, name, state, avatar_url, web_url}``, timestamps ``2026-01-05T09:00:00.000Z`` (commit
dates with an offset, as git keeps them). The API's behaviour that connectors trip on is enforced:

- ``PRIVATE-TOKEN`` auth (else 401 ``{"message": "401 Unauthorized"}``); projects by numeric id or
  URL-encoded path (an unencoded ``acme/mobile`` is a 404, as on GitLab);
- offset paging: ``page``, ``per_page`` (default 20, at most 100), headers ``x-page``, ``x-per-page``,
  ``x-next-page`` (empty on the last page), ``x-prev-page``, ``Link`` (``rel=next/prev/first/last``),
  and ``x-total`` / ``x-total-pages`` / ``rel="last"`` omitted above ``total_cap`` (10,000) results;
- merge requests: ``state``, ``updated_after`` (inclusive), ``order_by`` (``created_at`` default,
  ``updated_at``), ``sort`` (``desc`` default), ``view=simple``; notes ``sort``/``order_by`` (default
  newest first); MR ``updated_at`` moves with every note, approval and edit;
- deployments: ``environment``, ``status``, ``order_by`` (``id`` default), ``sort`` (``asc``),
  ``finished_after``/``finished_before`` only with ``order_by=finished_at`` and ``status=success``,
  ``updated_after``/``updated_before`` only with ``order_by=updated_at``; mixing them is a 400.

Test hooks: ``outage(req) -> bool`` answers 500 while it holds; ``arm(path, after, *faults)`` queues
transport faults on a path once ``after`` more requests to it were answered; ``on_list(req)`` runs
before a merge-request listing page is answered (to edit an MR mid-walk); ``next_header = False`` drops
``x-next-page`` (as some proxies do), leaving only ``Link``; ``no_diffs`` answers 404 on ``/diffs``
(GitLab before 15.7), leaving ``/changes``.

Children are kept as compact specs and rendered on request, so a benchmark's 10,000 MRs stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote, urlencode

from builders import ts

from fakes.server import FakeApi, FakeServer, Reply, Request

API = "/api/v4"
WEB = "https://gitlab.example.com"
TOTAL_CAP = 10_000


def when(value: str | float | None, offset_hours: int = 0) -> str | None:
    """``"2026-01-05 09:00"`` (UTC) or epoch seconds -> ``2026-01-05T09:00:00.000Z`` (or with an offset)."""
    if value is None:
        return None
    dt = datetime.fromtimestamp(ts(value), UTC)
    if offset_hours:
        return dt.astimezone(timezone(timedelta(hours=offset_hours))).isoformat(timespec="milliseconds")
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def user(username: str) -> dict:
    """A GitLab user object; project access-token users (``project_7_bot_…``) are bots, as GitLab says."""
    uid = 1000 + sum(ord(c) * (i + 1) for i, c in enumerate(username)) % 90000
    out = {
        "id": uid,
        "username": username,
        "name": username.replace("_", " ").title(),
        "state": "active",
        "locked": False,
        "avatar_url": f"https://secure.gravatar.com/avatar/{uid:x}?s=80&d=identicon",
        "web_url": f"{WEB}/{username}",
    }
    return out


@dataclass
class Note:
    id: int
    at: float
    author: str
    body: str
    system: bool = False


@dataclass
class MR:
    """One merge request: the list object's fields plus its children's compact specs."""

    project: dict
    iid: int
    id: int
    title: str
    author: str
    created: float
    updated: float
    source_branch: str
    target_branch: str = "main"
    description: str = ""
    draft: bool = False
    merged: float | None = None
    closed: float | None = None
    sha: str = ""
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    labels: list[str] = field(default_factory=list)
    commits: list[tuple[str, float]] = field(default_factory=list)  # (sha, authored)
    notes: list[Note] = field(default_factory=list)
    approvals: list[tuple[str, float]] = field(default_factory=list)  # (username, at)
    diffs: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (added, removed)
    merge_status: str = "can_be_merged"

    @property
    def state(self) -> str:
        return "merged" if self.merged is not None else "closed" if self.closed is not None else "opened"

    def payload(self, simple: bool = False) -> dict:
        ref = f"!{self.iid}"
        web = f"{WEB}/{self.project['path']}/-/merge_requests/{self.iid}"
        base = {
            "id": self.id,
            "iid": self.iid,
            "project_id": self.project["id"],
            "title": ("Draft: " if self.draft else "") + self.title,
            "description": self.description,
            "state": self.state,
            "created_at": when(self.created),
            "updated_at": when(self.updated),
            "web_url": web,
        }
        if simple:
            return base
        author = user(self.author)
        merged = self.merged is not None
        return {
            **base,
            "merged_by": author if merged else None,
            "merge_user": author if merged else None,
            "merged_at": when(self.merged),
            "closed_by": author if self.closed is not None and not merged else None,
            "closed_at": when(self.closed) if not merged else None,
            "target_branch": self.target_branch,
            "source_branch": self.source_branch,
            "user_notes_count": sum(not n.system for n in self.notes),
            "upvotes": 0,
            "downvotes": 0,
            "author": author,
            "assignees": [author],
            "assignee": author,
            "reviewers": [user(u) for u, _ in self.approvals],
            "source_project_id": self.project["id"],
            "target_project_id": self.project["id"],
            "labels": list(self.labels),
            "draft": self.draft,
            "work_in_progress": self.draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": False,
            "merge_status": self.merge_status,
            "detailed_merge_status": "mergeable" if self.merge_status == "can_be_merged" else "checking",
            "has_conflicts": False,
            "sha": self.sha,
            "merge_commit_sha": self.merge_commit_sha if merged else None,
            "squash_commit_sha": self.squash_commit_sha if merged else None,
            "discussion_locked": None,
            "should_remove_source_branch": True,
            "force_remove_source_branch": False,
            "prepared_at": when(self.created),
            "reference": ref,
            "references": {
                "short": ref,
                "relative": ref,
                "full": f"{self.project['path']}{ref}",
            },
            "time_stats": {
                "time_estimate": 0,
                "total_time_spent": 0,
                "human_time_estimate": None,
                "human_total_time_spent": None,
            },
            "squash": self.squash_commit_sha is not None,
            "squash_on_merge": self.squash_commit_sha is not None,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "blocking_discussions_resolved": True,
            "approvals_before_merge": None,
        }

    def commit_payloads(self) -> list[dict]:
        """Newest first, as GitLab lists an MR's commits."""
        out = []
        for sha, at in reversed(self.commits):
            out.append(
                {
                    "id": sha,
                    "short_id": sha[:8],
                    "created_at": when(at, 1),
                    "parent_ids": [],
                    "title": f"Work on {self.title}",
                    "message": f"Work on {self.title}\n",
                    "author_name": self.author.title(),
                    "author_email": f"{self.author}@example.com",
                    "authored_date": when(at, 1),
                    "committer_name": self.author.title(),
                    "committer_email": f"{self.author}@example.com",
                    "committed_date": when(at + 600, 1),
                    "trailers": {},
                    "extended_trailers": {},
                    "web_url": f"{WEB}/{self.project['path']}/-/commit/{sha}",
                }
            )
        return out

    def note_payload(self, n: Note) -> dict:
        return {
            "id": n.id,
            "type": None if n.system else "DiffNote",
            "body": n.body,
            "attachment": None,
            "author": user(n.author),
            "created_at": when(n.at),
            "updated_at": when(n.at),
            "system": n.system,
            "noteable_id": self.id,
            "noteable_type": "MergeRequest",
            "project_id": self.project["id"],
            "resolvable": not n.system,
            "confidential": False,
            "internal": False,
            "noteable_iid": self.iid,
            "commands_changes": {},
        }

    def approvals_payload(self) -> dict:
        return {
            "id": self.id,
            "iid": self.iid,
            "project_id": self.project["id"],
            "title": self.title,
            "description": self.description,
            "state": self.state,
            "created_at": when(self.created),
            "updated_at": when(self.updated),
            "merge_status": self.merge_status,
            "approved": bool(self.approvals),
            "approvals_required": 1,
            "approvals_left": 0 if self.approvals else 1,
            "require_password_to_approve": False,
            "approved_by": [{"user": user(u), "approved_at": when(at)} for u, at in self.approvals],
            "suggested_approvers": [],
            "approvers": [],
            "approver_groups": [],
            "user_has_approved": False,
            "user_can_approve": True,
            "approval_rules_left": [],
            "has_approval_rules": False,
            "merge_request_approvers_available": True,
            "multiple_approval_rules_available": True,
            "invalid_approvers_rules": [],
        }

    def diff_payloads(self) -> list[dict]:
        out = []
        for path, (added, removed) in self.diffs.items():
            lines = [f"@@ -1,{removed} +1,{added} @@"]
            lines += [f"-- old line {k}" for k in range(removed)]  # a removed line reading "-- ..."
            lines += [f"++ new line {k}" for k in range(added)]  # an added line reading "++ ..."
            out.append(
                {
                    "old_path": path,
                    "new_path": path,
                    "a_mode": "100644",
                    "b_mode": "100644",
                    "new_file": removed == 0,
                    "renamed_file": False,
                    "deleted_file": False,
                    "generated_file": False,
                    "diff": "\n".join(lines) + "\n",
                }
            )
        return out


@dataclass
class Deployment:
    project: dict
    id: int
    iid: int
    environment: str
    sha: str
    ref: str
    created: float
    updated: float
    finished: float | None
    status: str
    pipeline: int
    mrs: list[int] = field(default_factory=list)  # iids GitLab linked to it

    def payload(self) -> dict:
        project = self.project
        deployer = user("deployer")
        pipeline = {
            "id": self.pipeline,
            "iid": self.pipeline % 1000,
            "project_id": project["id"],
            "sha": self.sha,
            "ref": self.ref,
            "status": "success" if self.status == "success" else "running",
            "source": "push",
            "created_at": when(self.created),
            "updated_at": when(self.updated),
            "web_url": f"{WEB}/{project['path']}/-/pipelines/{self.pipeline}",
        }
        return {
            "id": self.id,
            "iid": self.iid,
            "ref": self.ref,
            "sha": self.sha,
            "created_at": when(self.created),
            "updated_at": when(self.updated),
            "finished_at": when(self.finished),
            "status": self.status,
            "user": deployer,
            "environment": {
                "id": 9 + sum(map(ord, self.environment)),
                "name": self.environment,
                "slug": self.environment,
                "external_url": f"https://{self.environment}.example.com",
                "created_at": "2025-01-01T00:00:00.000Z",
                "updated_at": "2025-01-01T00:00:00.000Z",
                "tier": self.environment if self.environment in ("production", "staging") else "other",
            },
            "deployable": {
                "id": self.id * 10,
                "status": self.status,
                "stage": "deploy",
                "name": f"deploy-{self.environment}",
                "ref": self.ref,
                "tag": False,
                "coverage": None,
                "created_at": when(self.created),
                "started_at": when(self.created),
                "finished_at": when(self.finished),
                "duration": (self.finished - self.created) if self.finished else None,
                "queued_duration": 0.5,
                "user": deployer,
                "commit": {"id": self.sha, "short_id": self.sha[:8], "title": "Deploy"},
                "pipeline": pipeline,
                "web_url": f"{WEB}/{project['path']}/-/jobs/{self.id * 10}",
                "artifacts": [],
                "runner": None,
                "artifacts_expire_at": None,
            },
        }


class FakeGitLab(FakeApi):
    """Projects, merge requests and deployments in memory, served at ``<url>/api/v4``."""

    def __init__(self, token: str, server: FakeServer | None = None) -> None:
        self.token = token
        super().__init__(server)
        self.projects: dict[str, dict] = {}
        self.mrs: dict[str, dict[int, MR]] = {}
        self.deployments: dict[str, dict[int, Deployment]] = {}
        self.pipelines: dict[str, dict[int, dict]] = {}  # single-GET payloads
        self.history: dict[str, list[str]] = {}  # the default branch's commits, oldest first
        self.outage: Callable[[Request], bool] | None = None
        self.on_list: Callable[[Request], None] | None = None
        self.next_header = True
        self.no_diffs = False
        self.total_cap = TOTAL_CAP
        self.totals_sent: list[bool] = []  # per paged reply: whether x-total was sent
        self._ids = 500
        self._notes = 7000
        self._sorted: dict[tuple, list] = {}  # (project, kind, order, sort, version) -> sorted items
        self._version = 0
        self.server.route("GET", f"{API}/projects/*", self._serve)

    def source(self, **kw) -> dict:
        """A ``[[source]]`` syncing from this fake (token in ``GITLAB_TOKEN``, production deployments, a
        year of history); ``kw`` adds to it or overrides it (``projects`` at least)."""
        return {
            "name": "gitlab",
            "kind": "gitlab",
            "url": self.url,
            "token_env": "GITLAB_TOKEN",
            "production_environments": ["production"],
            "history_days": 365,
            **kw,
        }

    # -- faults ----------------------------------------------------------------------------------------
    # -- data ------------------------------------------------------------------------------------------
    def _changed(self) -> None:
        self._version += 1
        self._sorted.clear()

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_project(self, path: str) -> dict:
        project = {"id": 40 + len(self.projects), "path": path}
        self.projects[path] = project
        self.mrs[path] = {}
        self.deployments[path] = {}
        return project

    def project(self, path: str) -> dict:
        return self.projects.get(path) or self.add_project(path)

    def add_mr(
        self,
        project: str,
        created: str | float,
        *,
        author: str = "alice",
        title: str | None = None,
        description: str = "",
        draft: bool = False,
        commits: list[str | float] = (),
        diffs: dict[str, tuple[int, int]] | None = None,
        merged: str | float | None = None,
        closed: str | float | None = None,
        squash: bool = False,
        labels: list[str] = (),
    ) -> MR:
        """An MR created at ``created`` (its commits authored at ``commits``), merged or closed if given."""
        proj = self.project(project)
        iid = len(self.mrs[project]) + 1
        while iid in self.mrs[project]:
            iid += 1
        created_ts = ts(created)
        sha = f"{proj['id']:04x}{iid:08x}".ljust(40, "a")
        mr = MR(
            project=proj,
            iid=iid,
            id=self._next_id(),
            title=title or f"Change {iid}",
            author=author,
            created=created_ts,
            updated=created_ts,
            source_branch=f"feature/{iid}",
            description=description,
            draft=draft,
            sha=sha,
            labels=list(labels),
            commits=[(f"{iid:06x}{k:02x}".ljust(40, "c"), ts(c)) for k, c in enumerate(commits)],
            diffs=dict(diffs if diffs is not None else {"app/main.py": (10, 2)}),
        )
        self.mrs[project][iid] = mr
        if merged is not None:
            self.merge(project, iid, merged, squash=squash)
        elif closed is not None:
            self.edit(project, iid, closed, closed=ts(closed))
        self._changed()
        return mr

    def edit(self, project: str, iid: int, at: str | float, **fields) -> MR:
        """Change an MR's fields at ``at``; its ``updated_at`` moves there."""
        mr = self.mrs[project][iid]
        for k, v in fields.items():
            setattr(mr, k, v)
        mr.updated = max(mr.updated, ts(at))
        self._changed()
        return mr

    def merge(self, project: str, iid: int, at: str | float, *, squash: bool = False) -> MR:
        mr = self.mrs[project][iid]
        t = ts(at)
        merge_sha = f"m{mr.project['id']:03x}{iid:08x}".ljust(40, "e")
        self.history.setdefault(project, []).append(merge_sha)
        return self.edit(
            project,
            iid,
            t,
            merged=t,
            merge_commit_sha=None if squash else merge_sha,
            squash_commit_sha=merge_sha if squash else None,
        )

    def note(
        self, project: str, iid: int, at: str | float, author: str, body: str, system: bool = False
    ) -> Note:
        """A comment (or system note); GitLab touches the MR's ``updated_at``."""
        mr = self.mrs[project][iid]
        self._notes += 1
        n = Note(self._notes, ts(at), author, body, system)
        mr.notes.append(n)
        self.edit(project, iid, at)
        return n

    def approve(self, project: str, iid: int, at: str | float, approver: str) -> None:
        """An approval: listed by ``/approvals`` and written as a system note, as GitLab does."""
        self.mrs[project][iid].approvals.append((approver, ts(at)))
        self.note(project, iid, at, approver, "approved this merge request", system=True)

    def ready(self, project: str, iid: int, at: str | float) -> None:
        """A draft marked ready: the system note, the title without ``Draft:``."""
        self.note(
            project, iid, at, self.mrs[project][iid].author, "marked this merge request as **ready**", True
        )
        self.edit(project, iid, at, draft=False)

    def delete_mr(self, project: str, iid: int) -> None:
        del self.mrs[project][iid]
        self._changed()

    def add_deployment(
        self,
        project: str,
        finished: str | float | None,
        *,
        mrs: list[int] = (),
        environment: str = "production",
        status: str = "success",
        sha: str | None = None,
        pipeline: int | None = None,
        started: str | float | None = None,
    ) -> Deployment:
        """A deployment of ``project`` to ``environment``, finished at ``finished``, shipping ``mrs``."""
        proj = self.project(project)
        fin = ts(finished) if finished is not None else None
        start = ts(started) if started is not None else (fin - 300 if fin is not None else 0.0)
        did = self._next_id()
        dep = Deployment(
            project=proj,
            id=did,
            iid=len(self.deployments[project]) + 1,
            environment=environment,
            sha=sha or f"d{did:07x}".ljust(40, "f"),
            ref="main",
            created=start,
            updated=fin if fin is not None else start,
            finished=fin,
            status=status,
            pipeline=pipeline if pipeline is not None else 9000 + did,
            mrs=list(mrs),
        )
        self.deployments[project][did] = dep
        self._changed()
        return dep

    def add_pipeline(
        self, project: str, finished: str | float, *, status: str = "success", ref: str = "main"
    ) -> dict:
        """A pipeline on ``ref`` at the branch's newest commit (a commit of its own when none)."""
        proj = self.project(project)
        pid = self._next_id()
        commits = self.history.setdefault(project, [])
        if not commits:
            commits.append(f"c{pid:07x}".ljust(40, "0"))
        fin = ts(finished)
        pipeline = {
            "id": pid,
            "iid": len(self.pipelines.setdefault(project, {})) + 1,
            "project_id": proj["id"],
            "sha": commits[-1],
            "ref": ref,
            "status": status,
            "source": "push",
            "created_at": when(fin - 900),
            "updated_at": when(fin),
            "started_at": when(fin - 840),
            "finished_at": when(fin),
            "duration": 840,
            "web_url": f"{WEB}/{project}/-/pipelines/{pid}",
        }
        self.pipelines[project][pid] = pipeline
        self._changed()
        return pipeline

    def _list_pipelines(self, req: Request, path: str) -> Reply:
        order, sort = req.arg("order_by", "id"), req.arg("sort", "desc")
        if order not in ("id", "updated_at") or sort not in ("asc", "desc"):
            return Reply(400, {"error": "order_by, sort does not have a valid value"})
        lo, hi = (instant(v) if v else None for v in (req.arg("updated_after"), req.arg("updated_before")))
        chosen = [
            p
            for p in self.pipelines.get(path, {}).values()
            if req.arg("ref") in (None, p["ref"])
            and req.arg("status") in (None, p["status"])
            and (lo is None or instant(p["updated_at"]) >= lo)
            and (hi is None or instant(p["updated_at"]) < hi)
        ]
        chosen.sort(
            key=lambda p: (instant(p[order]) if order == "updated_at" else 0, p["id"]), reverse=sort == "desc"
        )
        listed = (
            "id",
            "iid",
            "project_id",
            "sha",
            "ref",
            "status",
            "source",
            "created_at",
            "updated_at",
            "web_url",
        )
        return self._paged(req, chosen, render=lambda p: {k: p[k] for k in listed})

    def _compare(self, req: Request, path: str) -> Reply:
        commits = self.history.get(path, [])
        try:
            lo, hi = commits.index(req.arg("from")), commits.index(req.arg("to"))
        except ValueError:
            return _not_found("Commit")
        shipped = commits[lo + 1 : hi + 1]
        return Reply(
            200,
            {
                "commit": {"id": req.arg("to")},
                "commits": [{"id": c, "short_id": c[:8], "title": f"commit {c[:8]}"} for c in shipped],
                "diffs": [{"diff": "@@ -1 +1 @@\n-a\n+b\n", "new_path": "x.py"} for _ in shipped],
                "compare_timeout": False,
                "compare_same_ref": lo == hi,
            },
        )

    def link(self, project: str, did: int, mrs: list[int]) -> None:
        """GitLab links merged MRs to a deployment asynchronously, after it succeeded."""
        self.deployments[project][did].mrs = list(mrs)
        self._changed()

    def delete_deployment(self, project: str, did: int) -> None:
        del self.deployments[project][did]
        self._changed()

    # -- HTTP ------------------------------------------------------------------------------------------
    def _serve(self, req: Request) -> Reply:
        if self.outage is not None and self.outage(req):
            return Reply(500, {"message": "500 Internal Server Error"})
        if req.headers.get("private-token") != self.token:
            return Reply(401, {"message": "401 Unauthorized"})
        parts = req.path[len(f"{API}/projects/") :].split("/")
        ident, rest = unquote(parts[0]), parts[1:]
        project = next((p for p in self.projects.values() if ident in (p["path"], str(p["id"]))), None)
        if project is None:
            return _not_found("Project")
        path = project["path"]
        if rest == ["merge_requests"]:
            return self._list_mrs(req, path)
        if len(rest) >= 2 and rest[0] == "merge_requests" and rest[1].isdigit():
            mr = self.mrs[path].get(int(rest[1]))
            if mr is None:
                return _not_found("Merge Request")
            return self._mr_child(req, mr, rest[2:])
        if rest == ["deployments"]:
            return self._list_deployments(req, path)
        if rest == ["pipelines"]:
            return self._list_pipelines(req, path)
        if len(rest) == 2 and rest[0] == "pipelines" and rest[1].isdigit():
            pipeline = self.pipelines.get(path, {}).get(int(rest[1]))
            return Reply(200, pipeline) if pipeline else _not_found("Pipeline")
        if rest == ["repository", "compare"]:
            return self._compare(req, path)
        if len(rest) >= 2 and rest[0] == "deployments" and rest[1].isdigit():
            dep = self.deployments[path].get(int(rest[1]))
            if dep is None:
                return _not_found("Deployment")
            if rest[2:] == []:
                return Reply(200, dep.payload())
            if rest[2:] == ["merge_requests"]:
                mrs = [self.mrs[path][i] for i in dep.mrs if i in self.mrs[path]]
                return self._paged(req, [m.payload() for m in mrs])
        return Reply(404, {"error": "404 Not Found"})

    def _mr_child(self, req: Request, mr: MR, rest: list[str]) -> Reply:
        if rest == []:
            return Reply(200, mr.payload())
        if rest == ["commits"]:
            return self._paged(req, mr.commit_payloads())
        if rest == ["notes"]:
            # Newest first unless asked; notes are never edited here, so created = updated order.
            desc = req.arg("sort", "desc") == "desc"
            notes = sorted(mr.notes, key=lambda n: (n.at, n.id), reverse=desc)
            return self._paged(req, [mr.note_payload(n) for n in notes])
        if rest == ["approvals"]:
            return Reply(200, mr.approvals_payload())
        if rest == ["diffs"]:
            if self.no_diffs:
                return Reply(404, {"error": "404 Not Found"})
            return self._paged(req, mr.diff_payloads())
        if rest == ["changes"]:
            return Reply(200, {**mr.payload(), "changes": mr.diff_payloads(), "overflow": False})
        return Reply(404, {"error": "404 Not Found"})

    def _list_mrs(self, req: Request, path: str) -> Reply:
        if self.on_list is not None:
            self.on_list(req)
        order = req.arg("order_by", "created_at")
        sort = req.arg("sort", "desc")
        if order not in ("created_at", "updated_at") or sort not in ("asc", "desc"):
            return Reply(400, {"error": "order_by, sort does not have a valid value"})
        items = self._sorted_items(path, "mrs", order, sort)
        state = req.arg("state", "all")
        after = req.arg("updated_after")
        since = instant(after) if after else None
        chosen = [
            m for m in items if (state == "all" or m.state == state) and (since is None or m.updated >= since)
        ]
        simple = req.arg("view") == "simple"
        return self._paged(req, chosen, render=lambda m: m.payload(simple))

    def _list_deployments(self, req: Request, path: str) -> Reply:
        order = req.arg("order_by", "id")
        sort = req.arg("sort", "asc")
        status = req.arg("status")
        finished = [req.arg("finished_after"), req.arg("finished_before")]
        updated = [req.arg("updated_after"), req.arg("updated_before")]
        if any(finished) and (order != "finished_at" or status != "success"):
            return Reply(
                400,
                {"message": "`finished_at` filter requires `finished_at` sort and `success` status filter"},
            )
        if any(updated) and order != "updated_at":
            return Reply(400, {"message": "`updated_at` filter and `updated_at` sorting must be paired"})
        if order not in ("id", "iid", "created_at", "updated_at", "finished_at", "ref") or sort not in (
            "asc",
            "desc",
        ):
            return Reply(400, {"error": "order_by, sort does not have a valid value"})
        env = req.arg("environment")
        lo_f, hi_f = (instant(v) if v else None for v in finished)
        lo_u, hi_u = (instant(v) if v else None for v in updated)
        chosen = [
            d
            for d in self._sorted_items(path, "deployments", order, sort)
            if (env is None or d.environment == env)
            and (status is None or d.status == status)
            and (lo_f is None or (d.finished is not None and d.finished >= lo_f))
            and (hi_f is None or (d.finished is not None and d.finished < hi_f))
            and (lo_u is None or d.updated >= lo_u)
            and (hi_u is None or d.updated < hi_u)
        ]
        return self._paged(req, chosen, render=Deployment.payload)

    def _sorted_items(self, path: str, kind: str, order: str, sort: str) -> list:
        """Sorted once per change of the data, not per page: a long walk stays linear."""
        key = (path, kind, order, sort, self._version)
        if key not in self._sorted:
            pool = list((self.mrs if kind == "mrs" else self.deployments)[path].values())
            attr = {
                "created_at": "created",
                "updated_at": "updated",
                "finished_at": "finished",
                "iid": "iid",
                "id": "id",
                "ref": "ref",
            }[order]
            # GitLab breaks ties by id, in the same direction.
            self._sorted[key] = sorted(
                pool, key=lambda x: (getattr(x, attr) or 0, x.id), reverse=sort == "desc"
            )
        return self._sorted[key]

    def _paged(self, req: Request, items: list, render: Callable | None = None) -> Reply:
        """One offset page with GitLab's headers; totals only up to ``total_cap`` results."""
        try:
            page = max(1, int(req.arg("page", "1")))
            per_page = min(100, max(1, int(req.arg("per_page", "20"))))
        except ValueError:
            return Reply(400, {"error": "page is invalid"})
        total = len(items)
        pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        body = [render(x) for x in chunk] if render else chunk
        has_next = page * per_page < total
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-prev-page": str(page - 1) if page > 1 else "",
        }
        if self.next_header:
            headers["x-next-page"] = str(page + 1) if has_next else ""
        query = {k: v[0] for k, v in req.query.items()}

        def link(p: int, rel: str) -> str:
            return (
                f'<{self.url}{req.path}?{urlencode({**query, "page": p, "per_page": per_page})}>; rel="{rel}"'
            )

        links = []
        if page > 1:
            links.append(link(page - 1, "prev"))
        if has_next:
            links.append(link(page + 1, "next"))
        links.append(link(1, "first"))
        small = total <= self.total_cap
        if small:
            links.append(link(pages, "last"))
            headers["x-total"] = str(total)
            headers["x-total-pages"] = str(pages)
        self.totals_sent.append(small)
        headers["Link"] = ", ".join(links)
        return Reply(200, body, headers)


def _not_found(what: str) -> Reply:
    return Reply(404, {"message": f"404 {what} Not Found"})


__all__ = ["FakeGitLab", "MR", "Deployment", "Note", "user", "when"]
