"""A team's slice of the store, loaded once per computation and shared by every metric.

``TeamData`` answers "which rows can matter to windows starting at S" with one indexed query per
table, replays workflows once, and caches the result: a digest that computes a dozen metrics reads the
store a handful of times, not a dozen.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import itemgetter

import sqlite_utils

from metrics.runtime import gc_deferred
from metrics.store import flows as flow_store
from metrics.store.statuses import status_table
from metrics.teams import Team
from metrics.timeutil import zone
from metrics.workflow import DONE, Flow, Workflow, item_steps, replay_steps

_ITEM_KEY = itemgetter(0, 1)  # (source, key) of a transitions row
_AT_SEQ = itemgetter(2, 3)  # (at, seq) of a transitions row
_UNKNOWN = (None, None)  # a code with no statuses row: treated as an unmapped, unnamed status
_KEYS_PER_QUERY = 500  # bound parameters per transitions query, well under SQLite's limit
# A loader row: the work item's 10 columns, then ``flows.COLUMNS`` (committed, done, dates, ...).
_ITEM_COLUMNS = 10
_DATES = 2  # ``dates`` in flows.COLUMNS: NULL when the item has no stored flow (a stored one has dates)


@dataclass(slots=True)
class Item:
    """A work item with its replayed flow. ``category`` is the team's work type for it."""

    source: str
    key: str
    project: str
    type: str
    category: str
    summary: str
    url: str
    status: str
    created: float
    resolution: str | None
    discarded: bool
    flow: Flow
    impediments: list[tuple[float, float]] = field(default_factory=list)

    def ref(self) -> dict:
        return {"key": self.key, "summary": self.summary, "url": self.url}


@dataclass(slots=True)
class PullRequest:
    source: str
    repo: str
    number: int
    title: str
    url: str
    draft: bool
    created: float
    ready: float | None
    first_commit: float | None
    merged: float | None
    closed: float | None
    additions: int | None
    deletions: int | None
    merge_sha: str | None
    head_ref: str | None
    refs: list[str]
    author: str | None
    labels: list[str]
    reviews: list[dict] = field(default_factory=list)  # submitted, non-pending, by others than the author

    @classmethod
    def from_row(cls, r: dict) -> PullRequest:
        """A ``pull_requests`` row (as a dict) without its reviews."""
        return cls(
            source=r["source"],
            repo=r["repo"],
            number=r["number"],
            title=r["title"] or "",
            url=r["url"] or "",
            draft=bool(r["draft"]),
            created=r["created"],
            ready=r["ready"],
            first_commit=r["first_commit"],
            merged=r["merged"],
            closed=r["closed"],
            additions=r["additions"],
            deletions=r["deletions"],
            merge_sha=r["merge_sha"],
            head_ref=r["head_ref"],
            refs=json.loads(r["refs"] or "[]"),
            author=r["author"],
            labels=json.loads(r["labels"] or "[]"),
        )

    @property
    def key(self) -> str:
        return f"{self.repo}#{self.number}"

    @property
    def ready_at(self) -> float:
        """When review could start: first ready_for_review if opened as draft, else creation."""
        return self.ready if self.ready is not None else self.created

    @property
    def start(self) -> float:
        """Earliest commit author date; a PR without commits starts when it was created."""
        return self.first_commit if self.first_commit is not None else self.created

    def ref(self) -> dict:
        return {"key": self.key, "title": self.title, "url": self.url}


@dataclass(slots=True)
class Deployment:
    """One deployment: a (service, environment, pipeline run)'s successful production records, placed
    at the run's last finish (docs/metrics.md: an observation belongs to the window of its end event).
    ``id``, ``sha`` and ``url`` are the last record's; ``started`` the run's first record's."""

    source: str
    id: str
    service: str
    environment: str
    started: float | None
    finished: float
    sha: str | None
    url: str | None
    changes: list[tuple[str, int]] = field(default_factory=list)  # (repo, number) shipped first here
    records: list[str] = field(default_factory=list)  # ids of the run's records (``source``'s)

    def ref(self) -> dict:
        """Keyed by the deployment's own id, never by its commit: a redeploy of the same sha is another
        deployment and must be another item. ``<service>/deployments/<id>`` (GitLab's ids already read
        so)."""
        own = self.id.removeprefix(f"{self.service}/deployments/")
        return {"key": f"{self.service}/deployments/{own}", "sha": self.sha, "url": self.url}


@dataclass(slots=True)
class Incident:
    source: str
    id: str
    service: str
    title: str
    url: str | None
    created: float
    resolved: float | None
    severity: str | None

    def ref(self) -> dict:
        return {"key": self.id, "title": self.title, "url": self.url}


def named_rows(db: sqlite_utils.Database, sql: str, params: list) -> sqlite3.Cursor:
    """Rows readable by column name (``sqlite3.Row``, in C): much cheaper than building dicts."""
    cursor = db.conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(sql, params)


def _in(values: list[str]) -> str:
    return ",".join("?" * len(values)) or "NULL"


_DEPLOYED = "production = 1 and lower(status) = 'success'"  # the deployment records that count


def _run_key(r: dict) -> tuple[str, str, str]:
    """The deployment a ``deployments`` record belongs to: its (service, environment, pipeline run);
    a record without a run is a deployment of its own."""
    return (r["service"], r["environment"], r["run"] or f"id:{r['source']}:{r['id']}")


class TeamData:
    """Everything the catalogue needs about one team, from one database, as of ``now``."""

    def __init__(self, db: sqlite_utils.Database, team: Team, now: float | datetime | None = None):
        self.db = db
        self.team = team
        self.tz = zone(team.timezone)
        if isinstance(now, datetime):
            now = now.timestamp()
        self.now: float = time.time() if now is None else float(now)
        self.workflow: Workflow = team.flow
        self._cache: dict[str, tuple[float, object]] = {}

    # -- caching ---------------
    def cached(self, name: str, start: float, load):
        """``load(start)`` once per TeamData; a later request with a horizon at or after ``start`` reuses
        it. Metric families that derive shared data (what shipped, sprint figures) cache it here too."""
        hit = self._cache.get(name)
        if hit is not None and hit[0] <= start:
            return hit[1]
        # A load allocates tens of thousands of small objects that all stay alive: the cyclic GC
        # would only walk them again and again (it was the p95 tail of every flow metric).
        with gc_deferred():
            value = load(start)
        self._cache[name] = (start, value)
        return value

    # -- where each source's history begins ----------------------------------------------------------
    def history_start(self, sources: tuple[str, ...]) -> float | None:
        """The first instant from which every one of ``sources`` (``items``, ``prs``, ``deployments``,
        ``incidents``, ``sprints``) has data for the team; None when one has none. Weeks before it are
        unknown, not zeros (docs/metrics.md "Signal or noise"). A sync reads a tool from
        ``history_days`` back by *update* time, so the history begins at the earliest update stored
        (an item's last status change, a PR's update, a deployment's finish, an incident's creation,
        a sprint's start): an open item's older creation date says nothing of the weeks it falls in."""
        if not sources:
            raise ValueError("a metric's history names the sources it comes from")
        firsts = [
            self.cached(f"history:{s}", float("-inf"), lambda _, s=s: self._first_data(s)) for s in sources
        ]
        return None if None in firsts else max(firsts)

    def _first_data(self, source: str) -> float | None:
        team, scope = self.team, self.team.services + self.team.all_repos
        if source == "sprints" and not team.boards:  # the sprints holding the team's items
            firsts = [
                self.db.execute(
                    "select min(s.start) from sprint_events e join sprints s on s.source = e.source "
                    "and s.id = e.sprint_id where e.key >= ? and e.key < ?",
                    [f"{p}-", f"{p}."],
                ).fetchone()[0]
                for p in team.jira_projects
            ]
            return min((f for f in firsts if f is not None), default=None)
        sql, keys = {
            "items": (
                "select min(updated) from work_items where deleted = 0 and project in",
                team.jira_projects,
            ),
            "prs": ("select min(updated) from pull_requests where repo in", team.all_repos),
            "deployments": ("select min(finished) from deployments where service in", scope),
            "incidents": ("select min(created) from incidents where service in", scope),
            "sprints": ("select min(start) from sprints where board in", [str(b) for b in team.boards]),
        }[source]
        return self.db.execute(f"{sql} ({_in(keys)})", keys).fetchone()[0] if keys else None

    # -- work items ----------------------------------------------------------------------------------
    def items(self, start: float) -> list[Item]:
        """Items that were done at or after ``start`` or are still open, with their flows."""
        return self.cached("items", start, self._load_items)

    def _load_items(self, start: float) -> list[Item]:
        projects = self.team.jira_projects
        if not projects:
            return []
        done = [s.lower() for s in self.workflow.statuses_of([DONE])]
        cond = f"w.project in ({_in(projects)}) and w.deleted = 0 and (w.updated >= ? or not (lower(w.status) in ({_in(done)}) or coalesce(lower(w.status_id), '') in ({_in(done)})))"
        params = [*projects, start, *done, *done]
        # One read transaction: the items, their stored flows and the transitions of the others come
        # from one snapshot, and the flows replayed here are stored in it or not at all (see
        # metrics.store.flows, which also says when stored flows are forgotten).
        with self.db.atomic():
            # Plain tuples, not dicts: this load is the floor under every flow metric's latency.
            rows = self.db.execute(
                "select w.source, w.key, w.project, w.type, w.summary, w.url, w.status, w.status_id, "
                f"w.resolution, w.created, {flow_store.COLUMNS} from work_items w left join flows f "
                f"on f.workflow = ? and f.source = w.source and f.key = w.key where {cond}",
                [self.workflow.fingerprint, *params],
            ).fetchall()
            replayed = self._replay_unstored(rows)
            flags: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
            if self.team.impediments_wait:
                for src, key, f_start, f_end in self.db.execute(
                    "select f.source, f.key, f.start, f.end from flags f "
                    f"join work_items w on w.source = f.source and w.key = f.key where {cond}",
                    params,
                ):
                    flags[(src, key)].append((f_start, f_end if f_end else self.now))
        types = {k.lower(): v for k, v in self.team.work_types.items()}
        discarded = {r.lower() for r in self.team.discarded_resolutions}
        stored_flow = flow_store.StoredFlow
        out = []
        for src, key, project, type_, summary, url, status, _, resolution, created, *stored in rows:
            k = (src, key)
            out.append(
                Item(
                    src,
                    key,
                    project,
                    type_ or "",
                    types.get((type_ or "").lower(), "unclassified"),
                    summary or "",
                    url or "",
                    status or "",
                    created,
                    resolution,
                    (resolution or "").lower() in discarded,
                    replayed[k] if stored[_DATES] is None else stored_flow(*stored),
                    flags.get(k, []),
                )
            )
        return out

    def _replay_unstored(self, rows: list[tuple]) -> dict[tuple[str, str], Flow]:
        """Replay the loader's ``rows`` that have no stored flow for the team's workflow, and store
        their flows. Called inside the transaction that read ``rows``, so the transitions come from
        the same snapshot."""
        unstored = [r for r in rows if r[_ITEM_COLUMNS + _DATES] is None]
        if not unstored:
            return {}
        # Their transitions by primary-key seeks, as (project, source, key) lists of at most
        # _KEYS_PER_QUERY, grouped per item as they come (PK order): no read at all for the items
        # whose flows are stored, whatever their number. An item's transitions carry its project
        # (both come from one payload), so a flow depends on the item's own rows and the mapping,
        # never on which team's scope loaded it, and teams with the same mapping share it.
        wanted: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in unstored:
            wanted[(r[2], r[0])].append(r[1])
        trans: dict[tuple[str, str], list[tuple]] = {}
        for (project, src), keys in wanted.items():
            for i in range(0, len(keys), _KEYS_PER_QUERY):
                part = keys[i : i + _KEYS_PER_QUERY]
                for k, group in groupby(
                    self.db.execute(
                        "select source, key, at, seq, from_code, to_code from transitions "
                        f"where project = ? and source = ? and key in ({_in(part)})",
                        [project, src, *part],
                    ),
                    _ITEM_KEY,
                ):
                    trans.setdefault(k, []).extend(group)
        # Status code -> (stage index, label), once per source rather than once per transition.
        stage_of = {
            src: {
                code: (self.workflow.stage_index(sid, name), name or sid)
                for code, (sid, name) in table.items()
            }
            for src, table in status_table(self.db, sorted({r[0] for r in unstored})).items()
        }
        # How a transitions row reads, per source: its from status and the step it makes.
        readers = {
            src: (
                lambda c, codes=codes: codes.get(c[4], _UNKNOWN),
                lambda c, codes=codes: (c[2], *codes.get(c[5], _UNKNOWN)),
            )
            for src, codes in stage_of.items()
        }
        flows = {}
        workflow = self.workflow
        for src, key, _, _, _, _, status, status_id, _, created, *_ in unstored:
            k = (src, key)
            initial, entered = readers[src]
            steps = item_steps(workflow, created, status_id, status, trans.get(k), _AT_SEQ, initial, entered)
            flows[k] = replay_steps(workflow, steps)
        flow_store.store(self.db, self.workflow, ((src, key, f) for (src, key), f in flows.items()))
        return flows

    def unmapped_statuses(self, start: float) -> list[str]:
        """Statuses seen in the team's items that its workflow does not map (a data-quality note)."""
        seen: set[str] = set()
        for it in self.items(start):
            seen |= it.flow.unmapped
        return sorted(seen)

    # -- pull requests -------------------------------------------------------------------------------
    def pull_requests(self, start: float) -> list[PullRequest]:
        """PRs of the team's repos created, merged or closed at/after ``start``, or still open."""
        return self.cached("prs", start, self._load_prs)

    def _load_prs(self, start: float) -> list[PullRequest]:
        repos = self.team.all_repos
        if not repos:
            return []
        cond = (
            f"p.repo in ({_in(repos)}) and (p.created >= ? or p.merged >= ? or p.closed >= ? "
            f"or (p.merged is null and p.closed is null))"
        )
        if not self.team.include_bot_prs:
            cond += " and coalesce(p.author_bot, 0) = 0"
        params = [*repos, start, start, start]
        prs = {}
        for r in named_rows(self.db, f"select * from pull_requests p where {cond}", params):
            prs[(r["source"], r["repo"], r["number"])] = PullRequest.from_row(r)
        for v in named_rows(
            self.db,
            f"select v.source, v.repo, v.number, v.reviewer, v.reviewer_bot, v.state, v.submitted "
            f"from reviews v join pull_requests p on p.source = v.source and p.repo = v.repo "
            f"and p.number = v.number where {cond} order by v.submitted",
            params,
        ):
            pr = prs.get((v["source"], v["repo"], v["number"]))
            # Team-level rule: only reviews by someone else, not a bot, actually submitted.
            if (
                pr is None
                or v["submitted"] is None
                or (v["state"] or "").upper() == "PENDING"
                or v["reviewer_bot"]
                or (v["reviewer"] is not None and v["reviewer"] == pr.author)
            ):
                continue
            pr.reviews.append({"submitted": v["submitted"], "state": v["state"]})
        return list(prs.values())

    # -- deployments ---------------------------------------------------------------------------------
    def deployments(self, start: float) -> list[Deployment]:
        """Successful production deployments of the team's services and repos finished at/after
        ``start``: one per (service, environment, run), placed at the run's last finish, with what all
        its records shipped (also those of its records that finished before ``start``)."""
        return self.cached("deploys", start, self._load_deployments)

    def _load_deployments(self, start: float) -> list[Deployment]:
        scope = self.team.services + self.team.all_repos
        if not scope:
            return []
        later = list(
            self.db.query(
                f"select * from deployments where service in ({_in(scope)}) and finished >= ? "
                f"and {_DEPLOYED} order by finished",
                [*scope, start],
            )
        )
        runs: dict[tuple, Deployment] = {}
        records: dict[tuple[str, str], tuple] = {}  # every record id -> its run
        for r in self._earlier_records(later, start) + later:  # in finish order: the last wins
            run_key = _run_key(r)
            records[(r["source"], r["id"])] = run_key
            first = runs.get(run_key)
            runs[run_key] = Deployment(
                r["source"],
                r["id"],
                r["service"],
                r["environment"],
                r["started"] if first is None else first.started,
                r["finished"],
                r["sha"],
                r["url"],
                records=(first.records if first is not None else []) + [r["id"]],
            )
        ids = [i for _, i in records]
        for chunk in range(0, len(ids), 900):
            part = ids[chunk : chunk + 900]
            for c in self.db.query(
                f"select * from deployment_changes where deployment_id in ({_in(part)})", part
            ):
                run_key = records.get((c["source"], c["deployment_id"]))
                if run_key is not None and (c["repo"], c["number"]) not in runs[run_key].changes:
                    runs[run_key].changes.append((c["repo"], c["number"]))
        return sorted(runs.values(), key=lambda d: d.finished)

    def _earlier_records(self, later: list[dict], start: float) -> list[dict]:
        """The records finished before ``start`` of the runs that finish at/after it: part of those
        deployments (what they shipped ships at the run's finish), so never counted before ``start``."""
        wanted = {_run_key(r) for r in later if r["run"]}
        names = sorted({k[2] for k in wanted})
        out: list[dict] = []
        for i in range(0, len(names), _KEYS_PER_QUERY):
            part = names[i : i + _KEYS_PER_QUERY]
            # A seek per run (index on run); ``+finished`` keeps SQLite off the (service, finished)
            # index, which would scan the service's whole history before ``start``.
            out += [
                r
                for r in self.db.query(
                    f"select * from deployments where run in ({_in(part)}) and +finished < ? and {_DEPLOYED}",
                    [*part, start],
                )
                if _run_key(r) in wanted
            ]
        return sorted(out, key=lambda r: r["finished"])

    # -- incidents -----------------------------------------------------------------------------------
    def incidents(self, start: float) -> list[Incident]:
        """Incidents of the team's services (and repos) created or resolved at/after ``start``, or open."""
        return self.cached("incidents", start, self._load_incidents)

    def _load_incidents(self, start: float) -> list[Incident]:
        scope = self.team.services + self.team.all_repos
        if not scope:
            return []
        return [
            Incident(
                r["source"],
                r["id"],
                r["service"],
                r["title"] or "",
                r["url"],
                r["created"],
                r["resolved"],
                r["severity"],
            )
            for r in self.db.query(
                f"select * from incidents where service in ({_in(scope)}) "
                f"and (created >= ? or resolved >= ? or resolved is null) order by created",
                [*scope, start, start],
            )
        ]


def store_flows(db: sqlite_utils.Database, teams: list[Team], now: float | datetime | None = None) -> int:
    """Replay every item of ``teams`` that has no stored flow for its team's mapping, and store the
    flows; the number of teams' items read. Run after a sync (``vsm sync``, the app's scheduled sync):
    the read-only commands (``vsm metric``, ``vsm digest``) cannot store what they replay, so without
    this every one of them would replay the team's whole history, the larger part of its run time.
    Flows already stored are read, not replayed again: after the first sync the work is the items the
    sync changed (their flows were forgotten when their rows were written)."""
    return sum(len(TeamData(db, team, now).items(0.0)) for team in teams)
