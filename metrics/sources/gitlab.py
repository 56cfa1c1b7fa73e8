"""GitLab: merge requests (with commits, notes, approvals and diff sizes) and production deployments
(with the merge requests they shipped), for each configured project.

Streams and state (one ``sync_status`` row per stream, one entry per project inside it)::

    merge_requests: {"projects": {"acme/mobile": {"cursor": ISO, "low": ISO?, "reconciled": ISO}}}
    deployments:    {"projects": {"acme/mobile": {"production": {"cursor": ISO, "pending": {id: ISO},
                                                                 "reconciled": ISO}}}}

``cursor`` is the largest ``updated_at`` (MRs) or ``finished_at`` (deployments) stored; each run asks
for everything from ``cursor - OVERLAP`` (the first from ``history_days`` back), ascending, and saves
the cursor after every page, so an interrupted run resumes from its last page. GitLab pages by offset
(``page``, ``x-next-page``), which is no resumable token: a resumed run restarts from the cursor, which
re-reads at most the overlap. Offset pages ordered by ``updated_at`` shift when an MR is edited
mid-walk (it jumps to the end and the items behind it move up a page, so one can be skipped): an MR
seen twice in one walk reveals that, and ``low`` (its first ``updated_at``) pulls the next run's
cursor back far enough to pick the skipped one up.

Children follow their parent: they are fetched only when the MR (or deployment) list object differs
from the stored one, and stored *before* it, so a run interrupted between the two leaves the parent
unstored and the next run fetches the children again. Deletions: every ``RECONCILE_EVERY`` a listing of
the window's ids is compared with the store; each missing id is confirmed with a single GET, and only a
404 removes it (raw payloads and rows). GitLab links MRs to a deployment asynchronously after it
succeeds: a deployment with no MRs yet stays ``pending`` and is asked again for ``LINK_GRACE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from metrics.config import DEPLOYMENT_SIGNALS, production_environments
from metrics.normalise import gitlab as gl
from metrics.sources.base import Connector
from metrics.sources.http import AuthError, Http, Page, SourceError
from metrics.store.raw import get_raw, stored_updated
from metrics.store.tx import transaction
from metrics.timeutil import iso, parse_instant

OVERLAP = 600.0  # seconds re-read behind the cursor: clock skew, late commits of GitLab's writes
RECONCILE_EVERY = 7 * 86400  # how often the window's ids are listed to find deletions
LINK_GRACE = 86400  # how long a deployment without merge requests is asked again
PER_PAGE = 100
# Mergeability is recomputed in the background and flips without the MR changing (no updated_at
# bump): kept, these fields would rewrite an unchanged MR and refetch its children.
VOLATILE = ("merge_status", "detailed_merge_status", "has_conflicts")


class GitLabConnector(Connector):
    kind = "gitlab"

    @staticmethod
    def make_http(source: dict, token: str) -> Http:
        """``PRIVATE-TOKEN`` auth on ``<url>/api/v4`` (an instance under a sub-path keeps it)."""
        base = (source.get("url") or "https://gitlab.com").rstrip("/")
        if not base.endswith("/api/v4"):
            base += "/api/v4"
        return Http(base, {"PRIVATE-TOKEN": token})

    def streams(self) -> list[str]:
        signal = self.ctx.source.get("deployment_signal") or "deployments"
        if signal not in DEPLOYMENT_SIGNALS["gitlab"]:
            raise SourceError(f"deployment_signal must be 'deployments' or 'pipelines', not {signal!r}")
        return ["merge_requests", signal]

    @property
    def projects(self) -> list[str]:
        return list(self.ctx.source.get("projects") or [])

    @property
    def environments(self) -> list[str]:
        return production_environments(self.ctx.source)

    def sync(self, stream: str, state: dict) -> dict:
        """Each project on its own: one failing project does not stop the others (its error is raised
        once they are done); a rejected token stops everything at once."""
        steps = {
            "merge_requests": self._sync_merge_requests,
            "deployments": self._sync_deployments,
            "pipelines": self._sync_pipelines,
        }
        if stream not in steps:
            raise ValueError(f"unknown GitLab stream {stream!r}")
        state = {"projects": dict(state.get("projects") or {})}
        failed = []
        for project in self.projects:
            try:
                steps[stream](stream, project, state)
            except AuthError:
                raise
            except SourceError as exc:
                failed.append(f"{project}: {exc}")
        if failed:
            raise SourceError("; ".join(failed))
        return state

    # -- HTTP helpers ------------------------------------------------------------------------------
    @staticmethod
    def _path(project: str, rest: str) -> str:
        """``projects/acme%2Fmobile/<rest>``: the project by its URL-encoded path."""
        return f"projects/{quote(project, safe='')}/{rest}"

    def _pages(self, path: str, params: dict) -> Iterator[Page]:
        """Every page: ``x-next-page`` until it is empty, else ``Link: rel="next"`` as given. Never
        the totals: GitLab omits ``x-total`` and ``x-total-pages`` above 10,000 results."""
        params = {**params, "per_page": PER_PAGE}
        page = self.ctx.http.get(path, {**params, "page": 1})
        while page is not None:
            if not isinstance(page.data, list):
                raise SourceError(f"GET {path.split('?')[0]}: expected a list")
            yield page
            nxt = (page.headers.get("x-next-page") or "").strip()
            if nxt and page.data:
                page = self.ctx.http.get(path, {**params, "page": nxt})
                continue
            link = page.link("next") if page.data else None
            page = self.ctx.http.get(link) if link else None

    def _all(self, path: str, params: dict | None = None) -> list:
        return [item for page in self._pages(path, params or {}) for item in page.data]

    def _maybe(self, path: str) -> object | None:
        """One object, or None when GitLab answers 404 (a deleted item; an endpoint this edition or
        version lacks)."""
        try:
            page = self.ctx.http.get(path)
        except SourceError as exc:
            if exc.status == 404:
                return None
            raise
        return page.data if page is not None else None

    def _since(self, cursor: str | None) -> float:
        at = parse_instant(cursor)
        return self.ctx.history_start if at is None else at - OVERLAP

    def _due(self, state: dict) -> bool:
        last = parse_instant(state.get("reconciled"))
        return last is None or self.ctx.now - last >= RECONCILE_EVERY

    # -- merge requests ----------------------------------------------------------------------------
    def _sync_merge_requests(self, stream: str, project: str, state: dict) -> None:
        ps = state["projects"].setdefault(project, {})
        first_run = ps.get("cursor") is None
        params = {
            "state": "all",
            "updated_after": iso(self._since(ps.get("cursor"))),
            "order_by": "updated_at",
            "sort": "asc",
        }
        if first_run and not ps.get("reconciled"):
            # The first walk lists the whole window, even when interrupted and finished by the next
            # run (which goes on from the cursor): it counts as the first reconciliation.
            ps["reconciled"] = iso(self.ctx.now)
        cursor = parse_instant(ps.get("cursor"))
        low = parse_instant(ps.get("low"))
        seen: dict[int, float | None] = {}
        for page in self._pages(self._path(project, "merge_requests"), params):
            for mr in page.data:
                updated = parse_instant(mr.get("updated_at"))
                iid = int(mr["iid"])
                if iid in seen and seen[iid] != updated and seen[iid] is not None:
                    low = seen[iid] if low is None else min(low, seen[iid])
                seen[iid] = updated
                self._merge_request(stream, project, mr)
                if updated is not None:
                    cursor = updated if cursor is None else max(cursor, updated)
            ps["cursor"] = iso(cursor)
            if low is not None:
                ps["low"] = iso(low)
            self.ctx.checkpoint(stream, state)
        if low is not None and cursor is not None:
            ps["cursor"] = iso(min(cursor, low))
        ps.pop("low", None)
        if not first_run and self._due(ps):
            self._reconcile_merge_requests(stream, project)
            ps["reconciled"] = iso(self.ctx.now)
        self.ctx.checkpoint(stream, state)

    def _merge_request(self, stream: str, project: str, mr: dict) -> None:
        """Store an MR with fresh children when it differs from the stored one; else nothing."""
        mr = {k: v for k, v in mr.items() if k not in VOLATILE}
        ext = gl.mr_id(project, mr["iid"])
        if get_raw(self.ctx.db, self.ctx.name, "merge_request", ext) == mr:
            return
        base = self._path(project, f"merge_requests/{int(mr['iid'])}")
        self.ctx.ingest(stream, "merge_request_commits", ext, None, self._all(f"{base}/commits"))
        notes = self._all(f"{base}/notes", {"sort": "asc", "order_by": "created_at"})
        self.ctx.ingest(stream, "merge_request_notes", ext, None, notes)
        approvals = self._maybe(f"{base}/approvals")
        if isinstance(approvals, dict):
            self.ctx.ingest(stream, "merge_request_approvals", ext, None, approvals)
        self.ctx.ingest(stream, "merge_request_diffs", ext, None, self._diffs(base))
        self.ctx.ingest(stream, "merge_request", ext, mr.get("updated_at"), mr)

    def _diffs(self, base: str) -> list[dict]:
        """Per-file line counts from ``/diffs`` (GitLab 15.7+), else from ``/changes``."""
        try:
            files = self._all(f"{base}/diffs")
        except SourceError as exc:
            if exc.status != 404:
                raise
            changes = self._maybe(f"{base}/changes")
            files = (changes or {}).get("changes") or [] if isinstance(changes, dict) else []
        return gl.summarise_diffs(files)

    def _reconcile_merge_requests(self, stream: str, project: str) -> None:
        """Remove MRs deleted in GitLab: stored ones updated inside the window that the id listing
        lacks, once a single GET confirms the 404 (an MR the listing merely missed is synced)."""
        start = self.ctx.history_start
        params = {"state": "all", "updated_after": iso(start), "order_by": "updated_at", "sort": "asc"}
        listed = {
            int(m["iid"])
            for page in self._pages(self._path(project, "merge_requests"), {**params, "view": "simple"})
            for m in page.data
        }
        prefix = gl.mr_id(project, 0)[:-1]
        for external_id, updated in self._stored_ids("merge_request", prefix):
            iid = gl.split_mr_id(external_id)[1]
            if iid in listed or (parse_instant(updated) or 0.0) < start:
                continue
            mr = self._maybe(self._path(project, f"merge_requests/{iid}"))
            if mr is None:
                with transaction(self.ctx.db):
                    gl.forget_merge_request(self.ctx.db, self.ctx.name, project, iid)
                self.ctx.changed += 1
            elif isinstance(mr, dict):
                self._merge_request(stream, project, mr)

    def _stored_ids(self, kind: str, prefix: str) -> list[tuple[str, str | None]]:
        return self.ctx.db.execute(
            "select external_id, updated_at from raw where source = ? and kind = ? "
            "and substr(external_id, 1, ?) = ?",
            [self.ctx.name, kind, len(prefix), prefix],
        ).fetchall()

    # -- deployments -------------------------------------------------------------------------------
    def _sync_deployments(self, stream: str, project: str, state: dict) -> None:
        for environment in self.environments:
            ps = state["projects"].setdefault(project, {})
            es = ps.setdefault(environment, {})
            self._sync_environment(stream, project, environment, es, state)

    def _deployment_params(self, environment: str, since: float) -> dict:
        # ``finished_*`` needs order_by=finished_at and status=success; mixing in ``updated_*`` is a 400.
        return {
            "environment": environment,
            "status": "success",
            "order_by": "finished_at",
            "sort": "asc",
            "finished_after": iso(since),
        }

    def _sync_environment(self, stream: str, project: str, environment: str, es: dict, state: dict) -> None:
        first_run = es.get("cursor") is None
        if first_run and not es.get("reconciled"):
            es["reconciled"] = iso(self.ctx.now)  # as for merge requests: the first walk lists all
        cursor = parse_instant(es.get("cursor"))
        path = self._path(project, "deployments")
        seen: set[str] = set()
        for page in self._pages(path, self._deployment_params(environment, self._since(es.get("cursor")))):
            for dep in page.data:
                seen.add(str(dep["id"]))
                self._deployment(stream, project, dep, es)
                finished = parse_instant(gl.finished_at(dep))
                if finished is not None:
                    cursor = finished if cursor is None else max(cursor, finished)
            es["cursor"] = iso(cursor)
            self.ctx.checkpoint(stream, state)
        self._recheck_pending(stream, project, es, seen)
        if not first_run and self._due(es):
            self._reconcile_deployments(stream, project, environment, es)
            es["reconciled"] = iso(self.ctx.now)
        self.ctx.checkpoint(stream, state)

    def _deployment(self, stream: str, project: str, dep: dict, es: dict) -> None:
        """Store a deployment and the MRs it shipped when it differs from the stored one (or its MRs
        are still pending); the MRs first, so an interruption leaves the deployment to redo."""
        ext = gl.deployment_id(project, dep["id"])
        did = str(dep["id"])
        changed = get_raw(self.ctx.db, self.ctx.name, "deployment", ext) != dep
        if not changed and did not in es.get("pending", {}):
            return
        self._deployment_mrs(stream, project, did, gl.finished_at(dep), es)
        if changed:
            self.ctx.ingest(stream, "deployment", ext, dep.get("updated_at"), dep)

    def _deployment_mrs(self, stream: str, project: str, did: str, finished: str | None, es: dict) -> None:
        mrs = self._all(self._path(project, f"deployments/{did}/merge_requests"))
        self.ctx.ingest(stream, "deployment_merge_requests", gl.deployment_id(project, did), None, mrs)
        pending = es.setdefault("pending", {})
        at = parse_instant(finished)
        if not mrs and at is not None and self.ctx.now - at < LINK_GRACE:
            pending[did] = finished
        else:
            pending.pop(did, None)
        if not pending:
            es.pop("pending")

    def _recheck_pending(self, stream: str, project: str, es: dict, seen: set[str]) -> None:
        """Deployments whose MRs GitLab had not linked yet, not re-listed by this run."""
        for did, finished in sorted((es.get("pending") or {}).items()):
            if did not in seen:
                self._deployment_mrs(stream, project, did, finished, es)

    def _reconcile_deployments(self, stream: str, project: str, environment: str, es: dict) -> None:
        """Re-list the window's deployments (unchanged ones cost nothing) and remove stored ones the
        listing lacks once a single GET confirms the 404."""
        start = self.ctx.history_start
        listed: set[str] = set()
        for page in self._pages(
            self._path(project, "deployments"), self._deployment_params(environment, start)
        ):
            for dep in page.data:
                listed.add(str(dep["id"]))
                self._deployment(stream, project, dep, es)
        stored = self.ctx.db.execute(
            # GitLab's spelling of the environment may differ in case from the configured one.
            "select id from deployments where source = ? and service = ? and lower(environment) = lower(?) "
            "and finished >= ?",
            [self.ctx.name, project, environment, start],
        ).fetchall()
        for (did,) in stored:
            if did in listed:
                continue
            if self._maybe(self._path(project, f"deployments/{did}")) is None:
                with transaction(self.ctx.db):
                    gl.forget_deployment(self.ctx.db, self.ctx.name, project, did)
                self.ctx.changed += 1

    # -- pipelines as the deployment signal ----------------------------------------------------------
    def _sync_pipelines(self, stream: str, project: str, state: dict) -> None:
        """Successful pipelines on ``deploy_ref`` (default ``main``), oldest update first. Each new
        one is stored with the compare from the previous one's sha (what it shipped), the compare
        first so an interruption leaves the pipeline to redo. Finished pipelines do not change, so a
        re-listed one already stored costs nothing. Deleted pipelines are kept: GitLab deletes them by
        retention (automatic pipeline clean-up), and a deployment that ran stays in the DORA history."""
        ps = state["projects"].setdefault(project, {})
        ref = self.ctx.source.get("deploy_ref") or "main"
        params = {"ref": ref, "status": "success", "order_by": "updated_at", "sort": "asc"}
        if ps.get("cursor") is None and ps.get("last_sha") is None:
            ps["last_sha"] = self._pipeline_before(project, params, self.ctx.history_start)
        cursor = parse_instant(ps.get("cursor"))
        since = self._since(ps.get("cursor"))
        for page in self._pages(self._path(project, "pipelines"), {**params, "updated_after": iso(since)}):
            for listed in page.data:
                self._pipeline(stream, project, listed, ps)
                updated = parse_instant(listed.get("updated_at"))
                if updated is not None:
                    cursor = updated if cursor is None else max(cursor, updated)
            ps["cursor"] = iso(cursor)
            self.ctx.checkpoint(stream, state)

    def _pipeline_before(self, project: str, params: dict, before: float) -> str | None:
        """The sha of the newest successful pipeline before the history window: the first compare's base."""
        page = self.ctx.http.get(
            self._path(project, "pipelines"),
            {**params, "sort": "desc", "updated_before": iso(before), "per_page": 1},
        )
        data = page.data if page is not None else None
        return data[0].get("sha") if isinstance(data, list) and data else None

    def _pipeline(self, stream: str, project: str, listed: dict, ps: dict) -> None:
        ext = gl.pipeline_id(project, listed["id"])
        updated = listed.get("updated_at")
        if updated and stored_updated(self.ctx.db, self.ctx.name, "pipeline", ext) == updated:
            # The next new pipeline's compare base is this one's sha (the listing names it): a sync that
            # failed part-way through a page stored it without checkpointing ``last_sha``, so the
            # in-memory base would be the one before the page (or none) and the next compare would
            # claim changes earlier pipelines shipped, or be skipped (docs/sources.md, "A failed sync").
            if listed.get("sha"):
                ps["last_sha"] = listed["sha"]
            return
        single = self._maybe(self._path(project, f"pipelines/{listed['id']}"))
        if not isinstance(single, dict):
            return  # deleted between the listing and now
        base, sha = ps.get("last_sha"), single.get("sha")
        if base and sha and base != sha:
            compare = self._maybe(
                self._path(project, f"repository/compare?from={quote(base)}&to={quote(sha)}")
            )
            commits = [{"id": c.get("id")} for c in (compare or {}).get("commits") or []]
            self.ctx.ingest(
                stream, "pipeline_compare", ext, None, {"from": base, "to": sha, "commits": commits}
            )
        self.ctx.ingest(stream, "pipeline", ext, single.get("updated_at"), single)
        if sha:
            ps["last_sha"] = sha


CONNECTOR = GitLabConnector
