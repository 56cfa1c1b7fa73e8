"""GitHub: pull requests (listed over REST, read over GraphQL with their reviews, commits and
ready-for-review events), deployments by the source's signal (Deployments API, releases or runs of a
deploy workflow, each linked to the PRs it shipped through compares) and issues labelled as
incidents, for each configured repository.

Streams and state (one ``sync_status`` row per stream, one entry per repository inside it)::

    pulls:       {"repos": {"o/r": {"cursor": ISO, "walk": {"floor", "top", "next"}?, "unread": {n: why}?}}}
    deployments: {"signal": "deployments", "repos": {"o/r": {"production": {"cursor", "open", "edge",
                  "reconciled", "link_from"?}}}}   (releases: one entry per repo; workflow_runs: "pass")
    incidents:   {"repos": {"o/r": {"incident": {"cursor": ISO}, "reconciled": ISO}}}

Pull requests take no ``since``: the list is walked newest-updated first and the walk stops at the first
PR updated before ``cursor - OVERLAP`` (``history_days`` back on a first sync). The walk's position (the
``Link rel="next"`` URL as given) is saved after every page, so an interrupted walk resumes there; the
cursor moves only when a walk completes. A PR whose ``updated_at`` equals the stored one is skipped;
the others of the page are read in GraphQL batches (``github_graphql``: line counts, reviews, commits,
labels and ready-for-review events in one node per PR) and each is stored as one ``pull_node``
payload, so a run interrupted inside a page refetches only the PRs not yet stored. A PR GitHub answers
with an error on a field its rows need is not stored: it is kept in ``unread`` (number -> why), the
walk goes on, the repo's stream fails naming it, and the next sync asks for it first. PRs cannot be
deleted: no reconciliation.

The first page of every list is a conditional request (``If-None-Match`` with the stored ETag): a run
with no remote change is answered by 304s and writes nothing. Deployment statuses are fetched the same
way, so re-reading the overlap costs 304s.

Deployments (``deployment_signal``): ``deployments`` (default: ``GET /deployments?environment=`` for each
production environment, newest first, with their statuses), ``releases`` (published releases) or
``workflow_runs`` (runs of ``deploy_workflow``, a workflow name or file, listed by ``created`` ranges
that are halved until each holds at most 1,000 runs: the API's cap per filtered query). Deployments still
running are remembered (``open``) and re-read until final. Each successful deployment is linked to the
PRs it shipped by ``compare/<previous successful sha>...<sha>``; the first one in the history window is
compared with the newest successful deployment before it (``edge``). A deployment that changed marks
the compares from its start as to be made (``link_from``, saved with the deployment itself), and the
mark goes only once they are made: a compare that fails is made by the next sync. PRs stored after
their deployment's compare are linked to it when they are stored (``metrics.normalise.deploys``). Deletions: every
``RECONCILE_EVERY`` the window's ids are listed and each stored id missing from the listing is
confirmed by a single GET (404) before its rows go. Workflow runs deleted in GitHub are kept: runs are
deleted by clean-up, and a deployment that ran stays in the DORA history.

Incidents: ``GET /issues?labels=<label>&state=all&sort=updated&direction=desc`` per incident label
(``incident_labels``, default ``["incident"]``), walked like pulls, pull requests skipped; periodically, stored incident issues the listing no
longer returns are re-read and forgotten when deleted, transferred or unlabelled.
"""

from __future__ import annotations

from collections.abc import Iterator

from metrics.config import DEPLOYMENT_SIGNALS, production_environments
from metrics.normalise import github as gh
from metrics.sources import github_graphql as graphql
from metrics.sources.base import Connector
from metrics.sources.http import AuthError, Http, Page, SourceError
from metrics.store.raw import get_raw, stored_updates
from metrics.store.tx import transaction
from metrics.timeutil import iso, parse_instant

DEFAULT_URL = "https://api.github.com"
ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
PER_PAGE = 100
OVERLAP = 600.0  # seconds re-read behind a cursor (>= 5 min)
RECONCILE_EVERY = 86400.0  # how often deployment and incident ids are listed to find deletions
RUN_WINDOW = 7 * 86400.0  # the widest ``created`` range asked for workflow runs
RUN_CAP = 1000  # results one filtered runs query can return
EDGE_LOOKBACK = 100  # deployments read past the history window to find the base of the first compare
FINAL_STATES = {"success", "failure", "error", "inactive"}
SIGNALS = DEPLOYMENT_SIGNALS["github"]


class GitHubConnector(Connector):
    kind = "github"

    @staticmethod
    def make_http(source: dict, token: str) -> Http:
        """Bearer token, the GitHub media type, and the pinned REST API version."""
        return Http(
            source.get("url") or DEFAULT_URL,
            {"Authorization": f"Bearer {token}", "Accept": ACCEPT, "X-GitHub-Api-Version": API_VERSION},
        )

    def streams(self) -> list[str]:
        return ["pulls", "deployments", "incidents"]

    # -- configuration -------------------------------------------------------------------------------
    @property
    def repos(self) -> list[str]:
        return list(self.ctx.source.get("repos") or [])

    @property
    def graphql_url(self) -> str:
        return graphql.endpoint(self.ctx.source.get("url") or DEFAULT_URL)

    @property
    def environments(self) -> list[str]:
        return production_environments(self.ctx.source)

    @property
    def signal(self) -> str:
        signal = self.ctx.source.get("deployment_signal") or "deployments"
        if signal not in SIGNALS:
            raise SourceError(f"deployment_signal must be one of {', '.join(SIGNALS)}, not {signal!r}")
        if signal == "workflow_runs" and not self.ctx.source.get("deploy_workflow"):
            raise SourceError("deployment_signal = 'workflow_runs' needs deploy_workflow (a name or file)")
        return signal

    @property
    def labels(self) -> list[str]:
        labels = self.ctx.source.get("incident_labels") or self.ctx.source.get("incident_label") or "incident"
        return [labels] if isinstance(labels, str) else list(labels)

    # -- the streams ---------------------------------------------------------------------------------
    def sync(self, stream: str, state: dict) -> dict:
        """Each repository on its own: one failing does not stop the others (their errors are raised
        together at the end); a rejected token (401) stops everything at once."""
        steps = {"pulls": self._pulls, "deployments": self._deployments, "incidents": self._incidents}
        if stream not in steps:
            raise ValueError(f"unknown GitHub stream {stream!r}")
        self.stream = stream
        self.state = {"repos": dict(state.get("repos") or {})}
        if stream == "deployments":
            signal = self.signal
            if state.get("signal", "deployments") != signal:
                self.state["repos"] = {}  # another signal's positions mean nothing here
            self.state["signal"] = signal
        failed = []
        for repo in self.repos:
            try:
                steps[stream](repo, self.state["repos"].setdefault(repo, {}))
            except AuthError as exc:
                if "(401)" in str(exc):
                    raise
                failed.append(f"{repo}: {exc}")
            except SourceError as exc:
                failed.append(f"{repo}: {exc}")
        if failed:
            raise SourceError("; ".join(failed))
        return self.state

    def _save(self) -> None:
        self.ctx.checkpoint(self.stream, self.state)

    # -- HTTP helpers --------------------------------------------------------------------------------
    def _pages(self, path: str, params: dict | None = None, *, conditional: bool = False) -> Iterator[Page]:
        """Every page, following ``Link: rel="next"`` as given; none at all when the first page is a
        304 (``conditional``: nothing changed since the stored ETag)."""
        page = self.ctx.http.get(path, params, conditional=conditional)
        while page is not None:
            yield page
            nxt = page.link("next")
            page = self.ctx.http.get(nxt) if nxt else None

    def _walk(self, path: str, params: dict, entry: dict) -> Iterator[Page]:
        """A newest-first listing whose first page is conditional only when the previous walk of it
        finished: a walk stopped half-way keeps its first page's ETag, and a 304 would then hide the
        part it never reached. The caller pops ``walking`` once it has read what it needs."""
        conditional = not entry.get("walking")
        entry["walking"] = True
        self._save()
        return self._pages(path, params, conditional=conditional)

    def _all(self, path: str, params: dict | None = None) -> list:
        out: list = []
        for page in self._pages(path, {"per_page": PER_PAGE, **(params or {})}):
            out += _items(page, path)
        return out

    def _maybe(self, path: str) -> dict | None:
        """One object, or None for a 404 / 410 (deleted, transferred, or out of the token's reach)."""
        try:
            page = self.ctx.http.get(path)
        except SourceError as exc:
            if exc.gone:
                return None
            raise
        return page.data if page is not None and isinstance(page.data, dict) else None

    def _floor(self, cursor: str | None) -> float:
        at = parse_instant(cursor)
        return self.ctx.history_start if at is None else max(self.ctx.history_start, at - OVERLAP)

    def _due(self, entry: dict) -> bool:
        last = parse_instant(entry.get("reconciled"))
        return last is None or self.ctx.now - last >= RECONCILE_EVERY

    # -- pull requests -------------------------------------------------------------------------------
    def _pulls(self, repo: str, rs: dict) -> None:
        """Walk the list down to the floor, reading the changed PRs. PRs GitHub could not read last
        time (``unread``) are asked first; any still unread at the end fail the repo's stream, naming
        them, after everything else is stored and the cursor has moved."""
        if rs.get("unread"):
            self._store_pulls(repo, sorted(int(n) for n in rs["unread"]), rs)
        walk = rs.get("walk")
        if walk is not None and not self.ctx.http.owns(walk.get("next") or ""):
            walk = None  # saved under another configured url, whose origin is refused: walk again
        if walk is None:
            walk = {"floor": iso(self._floor(rs.get("cursor"))), "top": rs.get("cursor"), "next": None}
            params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": PER_PAGE}
            page = self.ctx.http.get(f"repos/{repo}/pulls", params, conditional=True)
        else:
            page = self.ctx.http.get(walk["next"])
        floor = parse_instant(walk["floor"])
        while page is not None:
            # Saved before the page is processed: a run stopped inside it comes back to this URL,
            # never to a conditional first page (whose ETag is already kept) that would answer 304.
            rs["walk"] = walk = {**walk, "next": page.url}
            self._save()
            top, done, listed = parse_instant(walk["top"]), False, {}
            for pr in _items(page, f"repos/{repo}/pulls"):
                updated = parse_instant(pr.get("updated_at")) or 0.0
                if updated < floor:
                    done = True
                    break
                top = updated if top is None else max(top, updated)
                listed[f"{repo}#{pr['number']}"] = pr
            stored = stored_updates(self.ctx.db, self.ctx.name, "pull_node", list(listed))
            self._store_pulls(
                repo,
                [int(pr["number"]) for ext, pr in listed.items() if stored.get(ext) != pr.get("updated_at")],
                rs,
            )
            nxt = None if done else page.link("next")
            walk = {**walk, "top": iso(top), "next": nxt}
            if nxt is None:
                break
            rs["walk"] = walk
            self._save()
            page = self.ctx.http.get(nxt)
        rs.pop("walk", None)
        rs["cursor"] = walk["top"]
        self._save()
        if rs.get("unread"):
            raise SourceError(_unread_message(rs["unread"]))

    def _store_pulls(self, repo: str, numbers: list[int], rs: dict) -> None:
        """Read the PRs of one list page whose ``updated_at`` moved (GraphQL, in batches) and store
        each as one ``pull_node``. One gone since it was listed is skipped; one GitHub could not read
        is remembered in ``rs["unread"]`` (number -> why) to be asked again, not silently lost."""
        unread = rs.setdefault("unread", {})
        for number, node in graphql.pull_nodes(self.ctx.http, self.graphql_url, repo, numbers):
            if isinstance(node, graphql.Unreadable):
                unread[str(number)] = node.reason
                continue
            unread.pop(str(number), None)
            if node is not None:
                self.ctx.ingest(self.stream, "pull_node", f"{repo}#{number}", node.get("updatedAt"), node)
        if not unread:
            rs.pop("unread")

    # -- deployments ---------------------------------------------------------------------------------
    def _deployments(self, repo: str, rs: dict) -> None:
        if self.state["signal"] == "releases":
            self._releases(repo, rs)
        elif self.state["signal"] == "workflow_runs":
            self._runs(repo, rs)
        else:
            for environment in self.environments:
                self._environment(repo, environment, rs.setdefault(environment, {}))

    def _environment(self, repo: str, environment: str, es: dict) -> None:
        """New and changed deployments of one environment, then those still running, then the
        compares of what changed, then (when due) deletions."""
        first = es.get("cursor") is None
        floor, top = self._floor(es.get("cursor")), parse_instant(es.get("cursor"))
        need_edge, past = first and "edge" not in es, 0
        seen: set[str] = set()
        params = {"environment": environment, "per_page": PER_PAGE}
        for page in self._walk(f"repos/{repo}/deployments", params, es):
            done = False
            for dep in _items(page, f"repos/{repo}/deployments"):
                created = parse_instant(dep.get("created_at")) or 0.0
                if created < floor:
                    past += 1
                    if need_edge and self._edge(repo, dep, es):
                        need_edge = False
                    if not need_edge or past >= EDGE_LOOKBACK:
                        done = True
                        break
                    continue
                top = created if top is None else max(top, created)
                seen.add(str(dep["id"]))
                self._deployment(repo, dep, es)
            self._save()
            if done:
                break
        for did in sorted(set(es.get("open") or {}) - seen):
            self._recheck(repo, did, es)
        es.pop("walking", None)
        if top is not None:
            es["cursor"] = iso(top)
        self._linked(repo, environment, es, es.get("edge"))
        if first:
            es["reconciled"] = iso(self.ctx.now)
        elif self._due(es):
            self._reconcile_deployments(repo, environment, es)
        self._save()

    def _statuses(self, repo: str, did: str) -> list:
        """A deployment's statuses (newest first); a 304 means the stored ones still hold."""
        path = f"repos/{repo}/deployments/{did}/statuses"
        out: list = []
        fresh = False
        for page in self._pages(path, {"per_page": PER_PAGE}, conditional=True):
            fresh = True
            out += _items(page, path)
        if fresh:
            return out
        stored = get_raw(self.ctx.db, self.ctx.name, "deployment", did)
        if isinstance(stored, dict):  # 304: the stored statuses still hold
            return list(stored.get("statuses") or [])
        return self._all(path)  # a 304 for statuses we no longer hold: read them again

    def _deployment(self, repo: str, dep: dict, es: dict) -> bool:
        """Store a deployment with its statuses; keep it in ``open`` until a status is final."""
        did = str(dep["id"])
        payload = {**dep, "statuses": self._statuses(repo, did)}
        at = parse_instant(dep.get("created_at"))
        changed = self._store(es, "deployment", did, dep.get("updated_at"), payload, at)
        states = {s.get("state") for s in payload["statuses"]}
        open_ = es.setdefault("open", {})
        latest = payload["statuses"][0].get("state") if payload["statuses"] else None
        if "success" in states or latest in FINAL_STATES:
            open_.pop(did, None)
        else:
            open_[did] = dep.get("created_at")
        if not open_:
            es.pop("open")
        return changed

    def _edge(self, repo: str, dep: dict, es: dict) -> bool:
        """Remember a successful deployment from before the history window: the first compare's base."""
        statuses = self._statuses(repo, str(dep["id"]))
        if any(s.get("state") == "success" for s in statuses):
            es["edge"] = {"id": str(dep["id"]), "sha": dep.get("sha"), "created": dep.get("created_at")}
            return True
        return False

    def _recheck(self, repo: str, did: str, es: dict) -> None:
        """Re-read a deployment still running that the listing did not cover."""
        dep = self._maybe(f"repos/{repo}/deployments/{did}")
        if dep is None:
            es.get("open", {}).pop(did, None)
            if not es.get("open"):
                es.pop("open", None)
            self._forget(did, "deployment", did)
            return
        self._deployment(repo, dep, es)

    # -- what a deployment shipped: compares, made from what was stored --------------------------------
    def _store(
        self, es: dict, kind: str, ext: str, updated: str | None, payload: dict, at: float | None
    ) -> bool:
        """Store one deployment (a deployment, release or run); when it changed, the mark that the
        compares from ``at`` on must be made (``link_from``) is saved in the same transaction.
        ``_linked`` makes them and only then drops the mark: a sync that fails, or dies, between
        storing a deployment and comparing it leaves the compares to the next sync, which would
        otherwise see the deployment unchanged and never compare it (docs/sources.md, "A failed
        sync")."""
        with transaction(self.ctx.db):
            changed = self.ctx.ingest(self.stream, kind, ext, updated, payload)
            if changed and at is not None:
                self._relink_from(es, at)
        return changed

    def _relink_from(self, es: dict, at: float) -> None:
        """Mark the compares from ``at`` on as to be made, and save the mark (inside the caller's
        transaction, with the change that calls for it). A mark already from ``at`` or earlier covers it:
        nothing to save."""
        since = parse_instant(es.get("link_from"))
        if since is not None and since <= at:
            return
        es["link_from"] = iso(at)
        self._save()

    def _linked(self, repo: str, environment: str, es: dict, edge: dict | None) -> None:
        """Make the compares ``link_from`` asks for, then drop the mark."""
        since = parse_instant(es.get("link_from"))
        if since is not None:
            self._link(repo, environment, since, edge)
            es.pop("link_from", None)

    def _link(self, repo: str, environment: str, since: float, edge: dict | None) -> None:
        """Compare each successful deployment started at/after ``since`` with the previous successful
        one; a compare already made with the same base is kept."""
        rows = self.ctx.db.execute(
            "select id, sha, started from deployments where source = ? and service = ? "
            "and lower(environment) = lower(?) and status = 'success' order by started, length(id), id",
            [self.ctx.name, repo, environment],
        ).fetchall()
        prev = (edge or {}).get("sha")
        for did, sha, started in rows:
            if prev and sha and (started or 0.0) >= since:
                self._compare(repo, did, prev, sha)
            prev = sha or prev

    def _compare(self, repo: str, did: str, base: str, head: str) -> None:
        stored = get_raw(self.ctx.db, self.ctx.name, "compare", did)
        suffix = f"/compare/{base}...{head}"
        if isinstance(stored, dict) and str(stored.get("url") or "").endswith(suffix):
            return
        path = f"repos/{repo}/compare/{base}...{head}"
        try:
            pages = list(self._pages(path, {"per_page": PER_PAGE}))
        except SourceError as exc:
            if not exc.gone and exc.status != 422:
                raise
            pages = []  # a base no longer in the history (force-push): nothing can be linked
        if pages and isinstance(pages[0].data, dict):
            # ``files`` (patches of up to 300 files) is heavy and unused.
            payload = {k: v for k, v in pages[0].data.items() if k != "files"}
            payload["commits"] = [
                c for p in pages if isinstance(p.data, dict) for c in p.data.get("commits") or []
            ]
        else:
            payload = {"url": self.ctx.http.url(path), "status": "unknown", "commits": []}
        self.ctx.ingest(self.stream, "compare", did, None, payload)

    def _forget(
        self, deployment_id: str, raw_kind: str, raw_id: str, es: dict | None = None, at: float | None = None
    ) -> None:
        """A deployment deleted remotely; the one after it now ships its changes: with ``es``, the
        compares from ``at`` (its start) are marked to be made again, in the same transaction."""
        with transaction(self.ctx.db):
            gh.forget_deployment(self.ctx.db, self.ctx.name, deployment_id, raw_kind, raw_id)
            if es is not None and at is not None:
                self._relink_from(es, at)
        self.ctx.changed += 1

    def _reconcile_deployments(self, repo: str, environment: str, es: dict) -> None:
        """List the window's deployment ids; a stored one missing is removed once a GET says 404."""
        start = self.ctx.history_start
        listed: set[str] = set()
        for page in self._pages(
            f"repos/{repo}/deployments", {"environment": environment, "per_page": PER_PAGE}
        ):
            items = _items(page, f"repos/{repo}/deployments")
            listed |= {str(d["id"]) for d in items if (parse_instant(d.get("created_at")) or 0.0) >= start}
            if any((parse_instant(d.get("created_at")) or 0.0) < start for d in items):
                break
        stored = self.ctx.db.execute(
            "select id, started from deployments where source = ? and service = ? "
            "and lower(environment) = lower(?) and started >= ?",
            [self.ctx.name, repo, environment, start],
        ).fetchall()
        for did, started in stored:
            if did in listed or self._maybe(f"repos/{repo}/deployments/{did}") is not None:
                continue
            es.get("open", {}).pop(did, None)
            self._forget(did, "deployment", did, es, started)
        if not es.get("open"):
            es.pop("open", None)
        self._linked(repo, environment, es, es.get("edge"))
        es["reconciled"] = iso(self.ctx.now)

    # -- releases as deployments -----------------------------------------------------------------------
    def _releases(self, repo: str, rs: dict) -> None:
        """Releases newest first down to ``cursor - OVERLAP``; a full listing when reconciling (which
        also catches a draft published long after it was created)."""
        first = rs.get("cursor") is None
        full = not first and self._due(rs)
        floor = self.ctx.history_start if full else self._floor(rs.get("cursor"))
        top = parse_instant(rs.get("cursor"))
        listed: set[str] = set()
        edge, past = rs.get("edge"), 0
        path = f"repos/{repo}/releases"
        if full:
            rs["walking"] = True  # a full listing is never conditional
        for page in self._walk(path, {"per_page": PER_PAGE}, rs):
            done = False
            for rel in _items(page, path):
                created = parse_instant(rel.get("created_at")) or 0.0
                published = parse_instant(rel.get("published_at"))
                if max(created, published or 0.0) < floor:
                    past += 1
                    if (
                        edge is None
                        and first
                        and published
                        and not rel.get("draft")
                        and not rel.get("prerelease")
                    ):
                        edge = rs["edge"] = {"id": str(rel["id"]), "sha": rel.get("tag_name")}
                    if not first or edge is not None or past >= EDGE_LOOKBACK:
                        done = True
                        break
                    continue
                top = created if top is None else max(top, created)
                ext = f"{gh.RELEASE}{rel['id']}"
                listed.add(ext)
                updated = rel.get("published_at") or rel.get("created_at")
                self._store(rs, "release", ext, updated, rel, published or created)
            self._save()
            if done:
                break
        rs.pop("walking", None)
        if top is not None:
            rs["cursor"] = iso(top)
        if full:
            self._drop_missing_releases(repo, listed, rs)
        self._linked(repo, self.environments[0], rs, edge)
        if first or full:
            rs["reconciled"] = iso(self.ctx.now)
        self._save()

    def _drop_missing_releases(self, repo: str, listed: set[str], rs: dict) -> None:
        """Stored releases of the window the full listing lacks, confirmed gone by a single GET."""
        stored = self.ctx.db.execute(
            "select id, started from deployments where source = ? and service = ? and id like ? and started >= ?",
            [self.ctx.name, repo, gh.RELEASE + "%", self.ctx.history_start],
        ).fetchall()
        for did, started in stored:
            if did in listed or self._maybe(f"repos/{repo}/releases/{did[len(gh.RELEASE) :]}") is not None:
                continue
            self._forget(did, "release", did, rs, started)

    # -- workflow runs as deployments ------------------------------------------------------------------
    def _runs(self, repo: str, rs: dict) -> None:
        """Runs of the deploy workflow created since ``cursor - OVERLAP``, in ``created`` ranges of at
        most ``RUN_CAP`` runs; the pass's position is saved after every range."""
        if "pass" not in rs:
            rs["pass"] = {"since": iso(self._floor(rs.get("cursor"))), "until": iso(self.ctx.now)}
        seen: set[str] = set()
        until = parse_instant(rs["pass"]["until"])
        while parse_instant(rs["pass"]["since"]) < until:
            since = parse_instant(rs["pass"]["since"])
            end, pages = self._run_range(repo, since, min(since + RUN_WINDOW, until))
            for page in pages:
                for run in _items(page, "actions/runs", key="workflow_runs"):
                    if self._is_deploy(run):
                        seen.add(str(run["id"]))
                        self._run(run, rs)
            rs["pass"]["since"] = iso(end)
            self._save()
        for run_id in sorted(set(rs.get("open") or {}) - seen):
            run = self._maybe(f"repos/{repo}/actions/runs/{run_id}")
            if run is None:
                rs["open"].pop(run_id, None)
                continue
            self._run(run, rs)
        if not rs.get("open"):
            rs.pop("open", None)
        rs["cursor"] = rs.pop("pass")["until"]
        self._linked(repo, self.environments[0], rs, None)
        self._save()

    def _run_range(self, repo: str, since: float, end: float) -> tuple[float, Iterator[Page]]:
        """The widest range from ``since`` whose runs fit under the cap, and its pages."""
        path = f"repos/{repo}/actions/runs"
        while True:
            params = {"created": f"{iso(since)}..{iso(end)}", "per_page": PER_PAGE}
            first = self.ctx.http.get(path, params)
            data = first.data if first is not None else None
            if not isinstance(data, dict):
                raise SourceError(f"GET /{path}: the response has no workflow_runs")
            if int(data.get("total_count") or 0) <= RUN_CAP or end - since <= 1:
                return end, _chain(first, self.ctx.http)
            end = since + max(1.0, (end - since) // 2)

    def _is_deploy(self, run: dict) -> bool:
        wanted = str(self.ctx.source.get("deploy_workflow"))
        path = str(run.get("path") or "")
        return run.get("name") == wanted or path == wanted or path.rsplit("/", 1)[-1] == wanted

    def _run(self, run: dict, rs: dict) -> None:
        """Store a run. Unfinished runs stay in ``open``."""
        ext = f"{gh.RUN}{run['id']}"
        at = parse_instant(run.get("run_started_at") or run.get("created_at"))
        self._store(rs, "workflow_run", ext, run.get("updated_at"), run, at)
        open_ = rs.setdefault("open", {})
        if run.get("status") == "completed":
            open_.pop(str(run["id"]), None)
        else:
            open_[str(run["id"])] = run.get("created_at")

    # -- incidents -----------------------------------------------------------------------------------
    def _incidents(self, repo: str, rs: dict) -> None:
        """Per label, issues newest-updated first down to ``cursor - OVERLAP``. No ``since``: the URL
        stays the same from run to run, so an unchanged list is a 304."""
        path = f"repos/{repo}/issues"
        for label in self.labels:
            ls = rs.setdefault(label, {})
            floor, top = self._floor(ls.get("cursor")), parse_instant(ls.get("cursor"))
            params = {
                "labels": label,
                "state": "all",
                "sort": "updated",
                "direction": "desc",
                "per_page": PER_PAGE,
            }
            for page in self._walk(path, params, ls):
                done = False
                for issue in _items(page, path):
                    updated = parse_instant(issue.get("updated_at")) or 0.0
                    if updated < floor:
                        done = True
                        break
                    top = updated if top is None else max(top, updated)
                    if "pull_request" not in issue:
                        ext = f"{repo}#{issue['number']}"
                        self.ctx.ingest(self.stream, "issue", ext, issue.get("updated_at"), issue)
                if done:
                    break
            ls.pop("walking", None)
            ls["cursor"] = iso(top)
            self._save()
        if rs.get("reconciled") is None:
            rs["reconciled"] = iso(self.ctx.now)
        elif self._due(rs):
            self._reconcile_incidents(repo)
            rs["reconciled"] = iso(self.ctx.now)
        self._save()

    def _reconcile_incidents(self, repo: str) -> None:
        """Stored incident issues no longer listed under an incident label: re-read each; forget it
        when it is gone, moved to another repository or no longer labelled."""
        listed: set[str] = set()
        path = f"repos/{repo}/issues"
        for label in self.labels:
            params = {
                "labels": label,
                "state": "all",
                "since": iso(self.ctx.history_start),
                "per_page": PER_PAGE,
            }
            for page in self._pages(path, params):
                listed |= {f"{repo}#{i['number']}" for i in _items(page, path) if "pull_request" not in i}
        stored = self.ctx.db.execute(
            "select id from incidents where source = ? and service = ?", [self.ctx.name, repo]
        ).fetchall()
        wanted = {label.lower() for label in self.labels}
        for (issue_id,) in stored:
            if issue_id in listed:
                continue
            issue = self._maybe(f"{path}/{issue_id.rpartition('#')[2]}")
            names = {str(x.get("name") or "").lower() for x in (issue or {}).get("labels") or []}
            moved = issue is not None and gh._repo_in(issue.get("repository_url")) != repo
            if issue is None or moved or not names & wanted:
                with transaction(self.ctx.db):
                    gh.forget_issue(self.ctx.db, self.ctx.name, issue_id)
                self.ctx.changed += 1
            else:
                self.ctx.ingest(self.stream, "issue", issue_id, issue.get("updated_at"), issue)


def _items(page: Page, path: str, key: str | None = None) -> list:
    """A page's list (or ``data[key]``), or a clear error when the API answered something else."""
    data = page.data.get(key) if key and isinstance(page.data, dict) else page.data
    if not isinstance(data, list):
        raise SourceError(f"GET /{path.split('?')[0]}: expected a list")
    return data


def _unread_message(unread: dict[str, str], shown: int = 5) -> str:
    """The PRs GitHub could not read, each with the field and error, the first ``shown`` of them."""
    items = sorted(unread.items(), key=lambda kv: int(kv[0]))
    listed = "; ".join(f"#{n}: {why}" for n, why in items[:shown])
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return f"GitHub could not read {len(items)} pull request(s), asked again next sync: {listed}{more}"


def _chain(first: Page, http: Http) -> Iterator[Page]:
    page: Page | None = first
    while page is not None:
        yield page
        nxt = page.link("next")
        page = http.get(nxt) if nxt else None


CONNECTOR = GitHubConnector
