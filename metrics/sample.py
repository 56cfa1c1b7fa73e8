"""A deterministic, realistic 26-week history for three teams: what ``vsm demo`` and the tests run on.

Everything is written the way a sync would write it: raw payloads in each tool's wire format (Jira
search/jql issues with changelogs and Agile sprints, GitHub pulls/reviews/commits/timeline/deployments/
compares, PagerDuty incidents), then ``rebuild`` derives the normalised tables. So the demo exercises
the same normalisation path as a real sync, and a change there shows in the demo.

The history is a small simulation, seeded (``random.Random(seed)``) and anchored at ``end``: every
instant is before ``end`` 00:00 UTC, so nothing lies in the future on that day. What it contains:

- work items with back-moves, reopenings, skipped stages, items closed without flow, *Won't Do*,
  detours through an unmapped status and flagged impediments;
- two Scrum teams with 2-week sprints, scope added and removed after start, items created inside a
  sprint and carry-over; one Kanban team without a committed stage;
- PRs linked to items by title or branch, drafts made ready, reviews (self-reviews, bots, dismissed,
  pending), bot-authored PRs, reverts and hotfixes, and one PR with hostile text;
- production deployments (staging too) with failures, re-runs and redeploys, compare payloads that
  link the PRs, and incidents after some deployments (some still open);
- a shift: the ``payments`` team's reviews slow down sharply in the last 5 weeks.

``build_sample`` writes no teams: the caller seeds ``sample_teams()`` and ``SAMPLE_ORG`` (their
change log carries wall-clock times, which would make two builds differ).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlite_utils

from metrics.normalise import rebuild
from metrics.store.raw import save_raw
from metrics.store.tx import transaction
from metrics.teams import Team
from metrics.timeutil import WEEK, iso
from metrics.workflow import Workflow

SEED = 20240501
WEEKS = 26
WARMUP_WEEKS = 6  # simulated but, like a sync's history_days, only what changed in the 26 weeks is kept
DAY = 86400
HOUR = 3600
JIRA_URL = "https://acme.atlassian.net"
GITHUB_API = "https://api.github.com"
JIRA_ZONE = ZoneInfo("Europe/London")  # the API user's zone: Jira writes instants with its offset
SPRINT_FIELD = "customfield_10020"
FLAG_FIELD = "customfield_10021"

SAMPLE_SOURCES: dict[str, dict] = {
    "jira": {"kind": "jira", "url": JIRA_URL, "sprint_field": SPRINT_FIELD},
    "github": {"kind": "github", "url": GITHUB_API, "production_environments": ["production"]},
    "pagerduty": {"kind": "pagerduty", "url": "https://api.pagerduty.com"},
}
SAMPLE_ORG = {"north_star": ["lead-time-for-changes", "deployment-frequency"], "admins": []}

# Site-wide Jira statuses: id and category (new / indeterminate / done).
STATUSES = {
    "Backlog": ("10000", "new"),
    "Selected for Development": ("10001", "new"),
    "In Progress": ("3", "indeterminate"),
    "In Review": ("10002", "indeterminate"),
    "Done": ("10003", "done"),
    "On Hold": ("10004", "indeterminate"),
    "Open": ("1", "new"),
    "Ready for Dev": ("10010", "new"),
    "In Development": ("10011", "indeterminate"),
    "Code Review": ("10012", "indeterminate"),
    "Ready for QA": ("10013", "indeterminate"),
    "In QA": ("10014", "indeterminate"),
    "Released": ("10015", "done"),
    "Closed": ("6", "done"),
    "Peer Review": ("10021", "indeterminate"),
    "Blocked": ("10022", "indeterminate"),
}
CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
RESOLUTIONS = {"Done": "10000", "Won't Do": "10001", "Duplicate": "10002"}
ISSUE_TYPES = [("Story", "10001", 50), ("Bug", "10004", 25), ("Task", "10002", 12), ("Tech Debt", "10005", 8)]
ISSUE_TYPES += [("Spike", "10006", 5)]  # "Spike" is mapped to no work type: shows as unclassified

VERBS = ["Add", "Fix", "Improve", "Refactor", "Remove", "Support", "Speed up", "Harden", "Migrate", "Log"]
THINGS = [
    "retry on card capture",
    "refund webhook",
    "currency rounding",
    "login screen",
    "push notifications",
    "offline cache",
    "rate limiter",
    "TLS certificates",
    "deploy pipeline",
    "audit log",
    "search results",
    "settings page",
    "invoice export",
    "dark mode",
    "session timeout",
    "alerting rules",
    "database pool",
    "feature flags",
    "onboarding flow",
    "error messages",
]
COMPONENTS = ["Core", "Web", "Integrations", "Ops"]
INCIDENT_TITLES = [
    "High error rate on API",
    "Latency above SLO",
    "Payments failing for some cards",
    "App crash on launch",
    "Queue backlog growing",
    "5xx spike at the edge",
    "Database CPU saturated",
]


@dataclass(frozen=True)
class Profile:
    """How one sample team works: its statuses, pace, repos and services."""

    team: str
    project: str
    project_id: str
    tz: str
    backlog: str
    committed: str | None
    path: tuple[tuple[str, float, float], ...]  # in-flow statuses: (name, median hours, sigma)
    review: str  # the status in which PRs wait for review
    done: str
    closed: str  # where discarded and closed-without-flow items end
    detour: str  # a status the team's workflow does not map
    arrivals: float  # new items per week
    board: int | None  # Scrum board (None: Kanban)
    sprint_weekday: int
    capacity: int  # items planned per sprint
    repos: tuple[str, ...]
    services: tuple[str, ...]  # PagerDuty service per repo, same order
    deploy: tuple[str, ...]  # per repo: daily | train | twice | continuous
    fail_rate: float
    incident_rate: float
    trend_weeks: int = 0  # last weeks in which reviews are much slower
    developers: tuple[str, ...] = ()


PROFILES = (
    Profile(
        team="payments",
        project="PAY",
        project_id="10000",
        tz="Europe/London",
        backlog="Backlog",
        committed="Selected for Development",
        path=(("In Progress", 40.0, 0.7), ("In Review", 14.0, 0.8)),
        review="In Review",
        done="Done",
        closed="Done",
        detour="On Hold",
        arrivals=15.0,
        board=1,
        sprint_weekday=0,
        capacity=30,
        repos=("acme/payments", "acme/ledger"),
        services=("P1PAY7Q", "P1LDG8R"),
        deploy=("daily", "daily"),
        fail_rate=0.08,
        incident_rate=0.08,
        trend_weeks=5,
        developers=("ana-silva", "tom-reed", "priya-n", "jonas-k", "mei-lin"),
    ),
    Profile(
        team="mobile",
        project="MOB",
        project_id="10001",
        tz="America/New_York",
        backlog="Open",
        committed="Ready for Dev",
        path=(
            ("In Development", 50.0, 0.7),
            ("Code Review", 16.0, 0.8),
            ("Ready for QA", 20.0, 0.9),
            ("In QA", 8.0, 0.6),
        ),
        review="Code Review",
        done="Released",
        closed="Closed",
        detour="Blocked",
        arrivals=13.0,
        board=2,
        sprint_weekday=2,
        capacity=28,
        repos=("acme/mobile-app", "acme/mobile-backend"),
        services=("P2MOB5T", "P2MBK6U"),
        deploy=("train", "twice"),
        fail_rate=0.1,
        incident_rate=0.12,
        developers=("sam-ortiz", "leah-g", "dev-raj", "kate-m"),
    ),
    Profile(
        team="platform",
        project="PLAT",
        project_id="10002",
        tz="Asia/Kolkata",
        backlog="Backlog",
        committed=None,
        path=(("In Progress", 26.0, 0.8), ("Peer Review", 5.0, 0.9)),
        review="Peer Review",
        done="Done",
        closed="Done",
        detour="Blocked",
        arrivals=18.0,
        board=None,
        sprint_weekday=0,
        capacity=0,
        repos=("acme/platform-infra", "acme/edge-gateway"),
        services=("P3PLT9S", "P3EDG4V"),
        deploy=("continuous", "continuous"),
        fail_rate=0.05,
        incident_rate=0.04,
        developers=("arjun-p", "nina-s", "olu-ade", "wei-zhang", "sara-v"),
    ),
)


def sample_teams() -> list[Team]:
    """The three sample teams, with different workflows, zones, metrics, targets and digests."""
    return [
        Team(
            name="payments",
            channel="C0SAMPLEPAY",
            timezone="Europe/London",
            jira_projects=["PAY"],
            jql="project = PAY",
            boards=["1"],
            repos=["acme/payments", "acme/ledger"],
            services=["P1PAY7Q", "P1LDG8R"],
            metrics=[
                "cycle-time",
                "throughput",
                "sprint-completion",
                "pr-pickup-time",
                "lead-time-for-changes",
            ],
            targets={
                "cycle-time": 300.0,
                "throughput": 9.0,
                "sprint-completion": 80.0,
                "pr-pickup-time": 40.0,
            },
            digest={"day": "mon", "time": "09:30", "period_days": 28},
            workflow=Workflow.from_config(
                {
                    "backlog": ["Backlog"],
                    "committed": ["Selected for Development"],
                    "in_progress": ["In Progress"],
                    "review": {"statuses": ["In Review"], "waiting": True},
                    "done": ["Done"],
                }
            ).to_dict(),
        ),
        Team(
            name="mobile",
            channel="C0SAMPLEMOB",
            timezone="America/New_York",
            jira_projects=["MOB"],
            jql="project = MOB",
            boards=["2"],
            repos=["acme/mobile-app", "acme/mobile-backend"],
            services=["P2MOB5T", "P2MBK6U"],
            metrics=[
                "lead-time",
                "flow-efficiency",
                "deployment-frequency",
                "sprint-scope-change",
                "pr-review-time",
            ],
            targets={"lead-time": 720.0, "flow-efficiency": 35.0, "deployment-frequency": 3.0},
            digest={"day": "tue", "time": "10:00", "period_days": 28},
            workflow=Workflow.from_config(
                {
                    "backlog": ["Open"],
                    "committed": ["Ready for Dev"],
                    "development": ["In Development"],
                    "code_review": {"statuses": ["Code Review"], "waiting": True},
                    "qa": {"statuses": ["Ready for QA"], "waiting": True},
                    "testing": ["In QA"],
                    "done": ["Released", "Closed"],
                }
            ).to_dict(),
        ),
        Team(
            name="platform",
            channel="C0SAMPLEPLT",
            timezone="Asia/Kolkata",
            jira_projects=["PLAT"],
            jql="project = PLAT",
            repos=["acme/platform-infra", "acme/edge-gateway"],
            services=["P3PLT9S", "P3EDG4V"],
            metrics=["cycle-time", "wip", "deployment-frequency", "change-failure-rate", "time-to-restore"],
            targets={"cycle-time": 144.0, "deployment-frequency": 15.0, "change-failure-rate": 10.0},
            digest={"day": "fri", "time": "16:00", "period_days": 28},
            workflow=Workflow.from_config(
                {
                    "backlog": ["Backlog"],
                    "in_progress": ["In Progress"],
                    "review": {"statuses": ["Peer Review"], "waiting": True},
                    "done": ["Done"],
                }
            ).to_dict(),
            impediments_wait=True,
        ),
    ]


# -- wire formats ------------------------------------------------------------------------------------
def jira_time(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, JIRA_ZONE)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{int(round(ts * 1000)) % 1000:03d}{dt:%z}"


def agile_time(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def gh_time(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- simulation state ----------------------------------------------------------------------------------
@dataclass
class WorkItem:
    profile: Profile
    created: int
    type: str
    summary: str
    labels: list[str]
    components: list[str]
    key: str = ""
    id: str = ""
    free_at: int = 0  # scrum: when it may be planned (again)
    initial_sprints: list[int] = field(default_factory=list)
    events: list[tuple[int, int, str, object]] = field(default_factory=list)  # (at, order, kind, value)
    episodes: list[dict] = field(default_factory=list)  # development rounds, each becoming a PR


@dataclass
class PullSpec:
    repo: str
    created: int
    title: str
    body: str
    head_ref: str
    author: str
    author_type: str = "User"
    draft_until: int | None = None  # opened as draft; ready_for_review then (None: never ready yet)
    opened_as_draft: bool = False
    first_commit: int | None = None
    commit_count: int = 1
    reviews: list[tuple[int | None, str, str, str]] = field(default_factory=list)  # at, login, type, state
    merged: int | None = None
    closed: int | None = None
    additions: int = 10
    deletions: int = 2
    labels: list[str] = field(default_factory=list)
    merge_sha: str = ""
    head_sha: str = ""
    commit_shas: list[str] = field(default_factory=list)
    number: int = 0
    id: int = 0


@dataclass
class DeploySpec:
    repo: str
    environment: str
    sha: str
    created: int
    run: int
    statuses: list[tuple[int, str]]  # (at, state)
    compare_base: str | None = None
    compare_prs: list[PullSpec] = field(default_factory=list)
    id: int = 0


@dataclass
class IncidentSpec:
    service: str
    title: str
    created: int
    resolved: int | None
    urgency: str
    id: str = ""
    number: int = 0


class Clock:
    """Shared by the simulations: one seeded RNG, the history's end, working hours and durations."""

    def __init__(self, rng: random.Random, cutoff: int):
        self.rng = rng
        self.cutoff = cutoff
        self.start = cutoff - WEEKS * WEEK
        self.t0 = self.start - WARMUP_WEEKS * WEEK  # the simulation starts earlier: no empty first weeks

    def work(self, ts: float, tz: ZoneInfo) -> int:
        """The instant, or the next working morning (Mon-Fri 09:00-18:00 local) if outside hours."""
        dt = datetime.fromtimestamp(ts, tz)
        if dt.weekday() < 5 and 9 <= dt.hour < 18:
            return int(ts)
        day = dt.date() + timedelta(days=1 if dt.hour >= 18 else 0)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        start = datetime(
            day.year, day.month, day.day, 9, self.rng.randrange(60), self.rng.randrange(60), tzinfo=tz
        )
        return int(start.timestamp())

    def after(self, p: Profile, ts: float, hours: float) -> int:
        return self.work(ts + hours * HOUR, ZoneInfo(p.tz))

    def lognormal(self, median: float, sigma: float) -> float:
        return self.rng.lognormvariate(math.log(median), sigma)

    def sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def with_shas(self, pr: PullSpec) -> None:
        pr.merge_sha, pr.head_sha = self.sha(), self.sha()
        pr.commit_shas = [self.sha() for _ in range(pr.commit_count)]


class WorkSimulation(Clock):
    """Jira: items arriving, flowing (Kanban) or planned into sprints (Scrum), as abstract events."""

    def __init__(self, rng: random.Random, cutoff: int):
        super().__init__(rng, cutoff)
        self.order = 0
        self.items: list[WorkItem] = []
        self.sprints: list[dict] = []
        self.sprint_ids = iter(range(101, 1000))

    def event(self, item: WorkItem, at: int, kind: str, value: object) -> None:
        self.order += 1
        item.events.append((int(at), self.order, kind, value))

    def status(self, item: WorkItem, at: int, name: str, resolution: str | None = None) -> None:
        self.event(item, at, "status", (name, resolution))

    def duration(self, p: Profile, status: str, median: float, sigma: float, at: int) -> float:
        if p.trend_weeks and status == p.review and at >= self.cutoff - p.trend_weeks * WEEK:
            median *= 3.5  # the shift the demo should surface: reviews pile up
        return self.lognormal(median, sigma)

    def new_item(self, p: Profile, created: int, type_: str | None = None) -> WorkItem:
        rng = self.rng
        if type_ is None:
            type_ = rng.choices([t[0] for t in ISSUE_TYPES], weights=[t[2] for t in ISSUE_TYPES])[0]
        item = WorkItem(
            profile=p,
            created=created,
            type=type_,
            summary=f"{rng.choice(VERBS)} {rng.choice(THINGS)}",
            labels=sorted(
                rng.sample(["backend", "frontend", "api", "ux", "infra", "customer"], rng.randint(0, 2))
            ),
            components=[rng.choice(COMPONENTS)] if rng.random() < 0.6 else [],
        )
        item.free_at = created
        self.items.append(item)
        return item

    def run_flow(self, p: Profile, item: WorkItem, t: int) -> int:
        """Plan the item's way from its first in-flow status to done; returns the final done instant."""
        rng = self.rng
        reopen = rng.random() < 0.05
        abandon = rng.random() < 0.03
        for round_ in range(2 if reopen else 1):
            episode: dict = {
                "dev": t,
                "review_in": None,
                "back": None,
                "review_out": None,
                "abandoned": False,
            }
            back = rng.random() < 0.15
            for i, (status, median, sigma) in enumerate(p.path):
                self.status(item, t, status)
                d = self.duration(p, status, median * (0.5 if round_ else 1.0), sigma, t)
                if i == 0 and abandon:
                    t = self.after(p, t, d / 2)
                    self.status(item, t, p.closed, "Won't Do")
                    episode["abandoned"] = t
                    item.episodes.append(episode)
                    return t
                if i == 0 and rng.random() < 0.07:  # a detour through a status the team never mapped
                    hold = self.after(p, t, d * rng.uniform(0.2, 0.6))
                    self.status(item, hold, p.detour)
                    t = self.after(p, hold, self.lognormal(20, 0.6))
                    self.status(item, t, status)
                if i == 0 and rng.random() < 0.06:  # an impediment, flagged then cleared
                    on = self.after(p, t, d * 0.2)
                    self.event(item, on, "flag", True)
                    self.event(item, self.after(p, on, self.lognormal(16, 0.7)), "flag", False)
                    d += 16
                if status == p.review:
                    episode["review_in"] = t
                    t = self.after(p, t, d)
                    if back:  # changes requested: back to the first active status, then review again
                        episode["back"] = t
                        self.status(item, t, p.path[0][0])
                        t = self.after(p, t, self.lognormal(8, 0.6))
                        episode["re_review"] = t
                        self.status(item, t, p.review)
                        t = self.after(p, t, self.lognormal(3, 0.6))
                    episode["review_out"] = t
                else:
                    t = self.after(p, t, d)
            self.status(item, t, p.done, "Done")
            item.episodes.append(episode)
            if reopen and round_ == 0:
                t = self.after(p, t, rng.uniform(24, 120))  # reopened: it goes back to work
        return t

    def arrivals(self, p: Profile) -> list[WorkItem]:
        """The team's new items, week by week, each decided: flows, closed without flow or discarded."""
        rng = self.rng
        tz = ZoneInfo(p.tz)
        flowing = []
        for week in range(WARMUP_WEEKS + WEEKS):
            n = max(0, round(rng.gauss(p.arrivals, p.arrivals * 0.25)))
            for _ in range(n):
                created = self.work(self.t0 + week * WEEK + rng.uniform(0, WEEK), tz)
                if created >= self.cutoff:
                    continue
                item = self.new_item(p, created)
                r = rng.random()
                if r < 0.06:  # closed without flow: straight from the backlog to done
                    self.status(
                        item,
                        self.after(p, created, rng.uniform(24, 480)),
                        p.closed,
                        rng.choice(["Done", "Duplicate"]),
                    )
                elif r < 0.11:  # discarded before anyone started
                    self.status(item, self.after(p, created, rng.uniform(24, 720)), p.closed, "Won't Do")
                elif r < 0.14:
                    pass  # icebox: stays in the backlog
                else:
                    flowing.append(item)
        return flowing

    # -- Kanban and Scrum engines -------------------------------------------------------------------------
    def kanban(self, p: Profile) -> None:
        for item in self.arrivals(p):
            pull = self.after(p, item.created, self.lognormal(40, 1.0))
            self.run_flow(p, item, pull)

    def scrum(self, p: Profile) -> None:
        rng = self.rng
        tz = ZoneInfo(p.tz)
        pool = self.arrivals(p)
        first = datetime.fromtimestamp(self.t0, tz).date() + timedelta(days=3)
        while first.weekday() != p.sprint_weekday:
            first += timedelta(days=1)
        start_local = datetime.combine(first, time(10), tz)
        number, carried = 1, []
        sid = next(self.sprint_ids)
        while start_local.timestamp() < self.cutoff:
            s = int(start_local.timestamp())
            end_local = start_local + timedelta(days=14)
            e = int(end_local.timestamp())
            closed_at = e - 2 * HOUR
            next_sid = next(self.sprint_ids)
            self.sprints.append(
                {
                    "id": sid,
                    "name": f"{p.project} Sprint {number}",
                    "board": p.board,
                    "start": s,
                    "end": e,
                    "complete": closed_at if closed_at < self.cutoff else None,
                    "goal": f"{rng.choice(VERBS)} {rng.choice(THINGS)}",
                }
            )
            members = list(carried)
            planning = s - HOUR
            free = [it for it in pool if it.free_at <= planning - DAY]
            free.sort(key=lambda it: it.created + rng.uniform(0, 10 * DAY))
            descoped = False
            for item in free[: max(3, p.capacity + rng.randint(-3, 3) - len(carried))]:
                pool.remove(item)
                self.event(item, planning, "sprint+", sid)
                if not descoped and rng.random() < 0.12:  # removed from the sprint after it started
                    descoped = True
                    self.status(item, planning, p.committed)
                    removed = self.after(p, s, rng.uniform(30, 170))
                    self.event(item, removed, "sprint-", sid)
                    self.status(item, removed, p.backlog)
                    item.free_at = removed + 3 * DAY
                    pool.append(item)
                    continue
                if rng.random() > 0.08:  # else the committed stage is skipped
                    self.status(item, planning, p.committed)
                work_start = self.after(p, s, rng.uniform(0, 7 * 24))
                members.append((item, self.run_flow(p, item, work_start)))
            for _ in range(rng.choice([0, 1, 1, 2, 3])):  # scope added after the start
                added = self.after(p, s, rng.uniform(24, 9 * 24))
                if added >= self.cutoff:
                    continue
                if rng.random() < 0.4:  # an urgent bug created right inside the sprint
                    item = self.new_item(p, added, "Bug")
                    item.initial_sprints = [sid]
                    self.status(item, added + 300, p.committed)
                else:
                    ready = [it for it in pool if it.free_at <= added and it.created <= added]
                    if not ready:
                        continue
                    item = ready[rng.randrange(min(5, len(ready)))]
                    pool.remove(item)
                    self.event(item, added, "sprint+", sid)
                    self.status(item, added, p.committed)
                members.append((item, self.run_flow(p, item, self.after(p, added, rng.uniform(1, 24)))))
            carried = [(it, done) for it, done in members if done > closed_at]
            if closed_at < self.cutoff:
                for item, _ in carried:  # carry-over: the next sprint is added, the closed one stays
                    self.event(item, closed_at, "sprint+", next_sid)
            start_local, number, sid = end_local, number + 1, next_sid
        self.sprints.append(
            {
                "id": sid,
                "name": f"{p.project} Sprint {number}",
                "board": p.board,
                "start": None,
                "end": None,
                "complete": None,
                "goal": "",
            }
        )


class DeliverySimulation(Clock):
    """GitHub and PagerDuty: PRs from the items' development rounds, bots, deployments, incidents."""

    def __init__(self, rng: random.Random, cutoff: int):
        super().__init__(rng, cutoff)
        self.pulls: list[PullSpec] = []
        self.deploys: list[DeploySpec] = []
        self.incidents: list[IncidentSpec] = []

    def reviewer(self, p: Profile, author: str) -> str:
        return self.rng.choice([d for d in p.developers if d != author])

    def pulls_for_item(self, item: WorkItem) -> None:
        rng = self.rng
        p = item.profile
        slug = "-".join(item.summary.lower().split()[:4])
        for n, ep in enumerate(item.episodes):
            dev, review_in = ep["dev"], ep["review_in"]
            if dev >= self.cutoff or (ep["abandoned"] and rng.random() < 0.5):
                continue
            author = rng.choice(p.developers)
            repo = rng.choice(p.repos)
            style = rng.random()
            if style < 0.6:
                title, ref = f"{item.key}: {item.summary}", f"feature/{item.key}-{slug}"
            elif style < 0.9:
                title, ref = item.summary, f"{item.key}-{slug}"
            else:
                title, ref = item.summary, f"fix-{slug}"  # no reference to the item
            if n:
                title = f"{item.key}: follow-up fix"
            end_dev = review_in if review_in is not None else (ep["abandoned"] or self.cutoff)
            first_commit = int(dev + (end_dev - dev) * rng.uniform(0.05, 0.4))
            pr = PullSpec(
                repo=repo,
                created=0,
                title=title,
                body=f"Implements {item.key}." if rng.random() < 0.5 else "",
                head_ref=ref,
                author=author,
                first_commit=first_commit,
                commit_count=rng.randint(1, 6),
                additions=int(self.lognormal(90, 1.0)) + 1,
                labels=[item.type.lower()] if rng.random() < 0.3 else [],
            )
            pr.deletions = int(pr.additions * rng.uniform(0.05, 0.8))
            if review_in is None or review_in >= self.cutoff:  # still in development: maybe a draft
                if ep["abandoned"] and ep["abandoned"] < self.cutoff:
                    pr.created = min(first_commit + HOUR, ep["abandoned"] - 60)
                    pr.closed = ep["abandoned"]
                elif rng.random() < 0.4 and first_commit + HOUR < self.cutoff:
                    pr.created, pr.opened_as_draft = first_commit + HOUR, True
                else:
                    continue
                self.pulls.append(pr)
                continue
            if rng.random() < 0.2:  # opened as draft while coding, made ready when review starts
                pr.created = int(first_commit + (review_in - first_commit) * rng.uniform(0.3, 0.8))
                pr.opened_as_draft, pr.draft_until = True, review_in
            else:
                pr.created = review_in
            self.add_reviews(p, pr, ep)
            out = ep["review_out"]
            if out is not None and out < self.cutoff:
                last = max([r[0] for r in pr.reviews if r[0] is not None] + [review_in])
                pr.merged = pr.closed = max(last + 60, out - rng.randint(60, 1800))
            self.pulls.append(pr)

    def add_reviews(self, p: Profile, pr: PullSpec, ep: dict) -> None:
        """Human reviews per the episode, plus bots, self-reviews, dismissed and pending ones."""
        rng = self.rng
        ready, out = ep["review_in"], ep["review_out"] or self.cutoff
        reviews = pr.reviews
        if rng.random() < 0.4:
            reviews.append((ready + rng.randint(120, 600), "sonarcloud[bot]", "Bot", "COMMENTED"))
        if rng.random() < 0.05:
            reviews.append((ready + rng.randint(60, 300), "acme-ci[bot]", "Bot", "APPROVED"))
        if rng.random() < 0.08:
            reviews.append((ready + rng.randint(300, 1200), pr.author, "User", "COMMENTED"))
        if rng.random() >= 0.05:  # else merged without a human review
            who = self.reviewer(p, pr.author)
            if ep["back"] is not None:
                first = int(ready + (ep["back"] - ready) * rng.uniform(0.5, 0.95))
                reviews.append((first, who, "User", "CHANGES_REQUESTED"))
                again = ep["re_review"]
                reviews.append((int(again + (out - again) * rng.uniform(0.2, 0.7)), who, "User", "APPROVED"))
            else:
                first = int(ready + (out - ready) * rng.uniform(0.3, 0.8))
                state = "DISMISSED" if rng.random() < 0.05 else "APPROVED"
                reviews.append((first, who, "User", state))
                if state == "DISMISSED":
                    reviews.append(
                        (int(first + (out - first) * 0.5), self.reviewer(p, pr.author), "User", "APPROVED")
                    )
        if rng.random() < 0.05:
            reviews.append((None, self.reviewer(p, pr.author), "User", "PENDING"))
        pr.reviews = sorted(
            [r for r in reviews if r[0] is None or r[0] < self.cutoff],
            key=lambda r: (r[0] is None, r[0] or 0),
        )

    def bot_pulls(self, p: Profile) -> None:
        """Dependency bumps opened by a bot every ~10 days per repo; most merged after a quick review."""
        rng = self.rng
        tz = ZoneInfo(p.tz)
        packages = ["lodash", "requests", "urllib3", "react", "okhttp", "jackson-databind", "pydantic"]
        for repo in p.repos:
            t = self.t0 + rng.uniform(0, 10 * DAY)
            while t < self.cutoff - DAY:
                pkg = rng.choice(packages)
                version = f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
                created = int(t)
                pr = PullSpec(
                    repo=repo,
                    created=created,
                    title=f"Bump {pkg} to {version}",
                    body=f"Bumps {pkg} to {version}.",
                    head_ref=f"dependabot/pip/{pkg}-{version}",
                    author="dependabot[bot]",
                    author_type="Bot",
                    first_commit=created - 60,
                    additions=rng.randint(1, 30),
                    deletions=rng.randint(1, 30),
                    labels=["dependencies"],
                )
                if rng.random() < 0.8:
                    approve = self.work(created + rng.uniform(1, 30) * HOUR, tz)
                    if approve + 600 < self.cutoff:
                        pr.reviews = [(approve, rng.choice(p.developers), "User", "APPROVED")]
                        pr.merged = pr.closed = approve + rng.randint(60, 900)
                self.pulls.append(pr)
                t += rng.uniform(6, 14) * DAY

    def special_pull(
        self, p: Profile, at: int, title: str, body: str, ref: str, merge_delay: float
    ) -> PullSpec:
        """A hotfix, a revert or the hostile-text PR: opened at ``at``, reviewed and merged quickly."""
        author = self.rng.choice(p.developers)
        pr = PullSpec(
            repo="",
            created=at,
            title=title,
            body=body,
            head_ref=ref,
            author=author,
            first_commit=at - self.rng.randint(300, 3600),
            additions=self.rng.randint(2, 60),
            deletions=self.rng.randint(1, 40),
        )
        merged = int(at + merge_delay * HOUR)
        pr.reviews = [(int(at + merge_delay * HOUR * 0.6), self.reviewer(p, author), "User", "APPROVED")]
        if merged < self.cutoff:
            pr.merged = pr.closed = merged
        return pr

    # -- deployments and incidents ------------------------------------------------------------------------
    def deploy_slots(self, p: Profile, style: str, merges: list[PullSpec]) -> list[tuple[int, str]]:
        tz = ZoneInfo(p.tz)
        rng = self.rng
        slots = []
        if style == "continuous":
            return [(pr.merged + rng.randint(600, 2400), "merge") for pr in merges]
        day = datetime.fromtimestamp(self.t0, tz).date()
        last = datetime.fromtimestamp(self.cutoff, tz).date()
        while day <= last:
            wd = day.weekday()
            if (
                (style == "daily" and wd < 5)
                or (style == "train" and wd == 3)
                or (style == "twice" and wd in (1, 3))
            ):
                at = datetime.combine(day, time(14), tz).timestamp() + rng.randint(0, 90 * 60)
                if rng.random() >= 0.1:  # else skipped: a holiday, a frozen release
                    slots.append((int(at), "slot"))
                if rng.random() < (0.25 if style == "daily" else 0.15):  # an extra release that day
                    slots.append((int(at - 3 * HOUR), "slot"))
            day += timedelta(days=1)
        return slots

    def deployments(self, p: Profile, repo: str, service: str, style: str) -> None:
        rng = self.rng
        merges = sorted((pr for pr in self.pulls if pr.repo == repo and pr.merged), key=lambda pr: pr.merged)
        times = [pr.merged for pr in merges]
        heap = self.deploy_slots(p, style, merges)
        heapq.heapify(heap)
        last_ok: DeploySpec | None = None
        last_idx = -1
        run_ids = iter(range(rng.randint(10**9, 2 * 10**9), 10**12, 7))
        while heap:
            at, why = heapq.heappop(heap)
            if at >= self.cutoff:
                continue
            idx = bisect.bisect_right(times, at) - 1
            if idx < 0:
                continue
            if idx == last_idx and (why != "slot" or rng.random() > 0.05):
                continue  # nothing new to ship (now and then a plain redeploy still goes out)
            sha = merges[idx].merge_sha
            run = next(run_ids)
            if p.team == "payments":
                self.deploys.append(
                    DeploySpec(
                        repo,
                        "staging",
                        sha,
                        at - 1500,
                        run - 1,
                        [(at - 1500, "queued"), (at - 1100, "success")],
                    )
                )
            dep = DeploySpec(repo, "production", sha, at, run, [(at, "queued"), (at + 30, "in_progress")])
            self.deploys.append(dep)
            if rng.random() < p.fail_rate:
                dep.statuses.append((at + rng.randint(180, 600), rng.choice(["failure", "failure", "error"])))
                if rng.random() < 0.5:  # re-run of the same pipeline run: one deployment once it passes
                    retry = at + 20 * 60
                    dep = DeploySpec(
                        repo, "production", sha, retry, run, [(retry, "queued"), (retry + 30, "in_progress")]
                    )
                    self.deploys.append(dep)
                    at = retry
                else:
                    if rng.random() < 0.5:  # revert the last change, then ship the revert
                        bad = merges[idx]
                        revert = self.special_pull(
                            p,
                            at + 900,
                            f'Revert "{bad.title}"',
                            f"Reverts {bad.merge_sha}.",
                            f"revert-{bad.head_ref}",
                            0.5,
                        )
                        self.add_merge(revert, repo, merges, times, heap)
                    else:
                        heapq.heappush(heap, (at + rng.randint(2, 5) * HOUR, "retry"))
                    continue
            finish = at + rng.randint(240, 900)
            if finish >= self.cutoff:
                continue
            dep.statuses.append((finish, "success"))
            if last_ok is not None:
                last_ok.statuses.append((finish, "inactive"))  # superseded, not failed
                dep.compare_base = last_ok.sha
                dep.compare_prs = merges[last_idx + 1 : idx + 1]
            last_ok, last_idx = dep, idx
            if rng.random() < p.incident_rate:
                self.incident(p, service, finish + rng.randint(600, 8 * HOUR), repo, merges, times, heap)

    def add_merge(self, pr: PullSpec, repo: str, merges: list, times: list, heap: list) -> None:
        pr.repo = repo
        self.with_shas(pr)
        self.pulls.append(pr)
        if pr.merged:
            i = bisect.bisect_right(times, pr.merged)
            times.insert(i, pr.merged)
            merges.insert(i, pr)
            heapq.heappush(heap, (pr.merged + 1200, "fix"))

    def incident(
        self,
        p: Profile,
        service: str,
        created: int,
        repo: str | None = None,
        merges: list | None = None,
        times: list | None = None,
        heap: list | None = None,
    ) -> None:
        """An incident; after a deployment of ``repo``, half the time a hotfix PR naming it, merged into
        the repo's mainline (``merges``/``times``) with a deployment slot pushed on ``heap``."""
        rng = self.rng
        if created >= self.cutoff:
            return
        resolved = created + int(self.lognormal(1.5, 0.8) * HOUR) + 300
        if created > self.cutoff - 21 * DAY and rng.random() < 0.4:
            resolved = self.cutoff  # a slow one: still open at the end of the history
        inc = IncidentSpec(
            service=service,
            title=rng.choice(INCIDENT_TITLES),
            created=created,
            resolved=resolved if resolved < self.cutoff else None,
            urgency="high" if rng.random() < 0.7 else "low",
            id="Q" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(13)),
        )
        if not any(c.isdigit() for c in inc.id):
            inc.id = inc.id[:-1] + "7"
        self.incidents.append(inc)
        if repo is not None and rng.random() < 0.5:  # a hotfix that names the incident
            fix = self.special_pull(
                p,
                created + rng.randint(20, 90) * 60,
                f"Hotfix: {inc.title.lower()}",
                f"Resolves PagerDuty incident {inc.id}",
                f"hotfix/{inc.id}",
                rng.uniform(0.5, 2.0),
            )
            self.add_merge(fix, repo, merges, times, heap)

    def background_incidents(self, p: Profile) -> None:
        for service in p.services:
            t = self.t0 + self.rng.uniform(0, 20 * DAY)
            while t < self.cutoff:
                self.incident(p, service, int(t))
                t += self.rng.uniform(14, 45) * DAY

    def run(self, items: list[WorkItem]) -> None:
        """PRs for the items, special and bot PRs, then deployments (which add hotfixes and reverts)."""
        for item in items:
            self.pulls_for_item(item)
        pay = PROFILES[0]
        hostile_at = self.work(self.cutoff - 40 * DAY, ZoneInfo(pay.tz))
        hostile = self.special_pull(
            pay,
            hostile_at,
            "<!channel> & <@U1> fix",
            "<script>alert(1)</script> *bold* `code`",
            "fix/escaping",
            3.0,
        )
        hostile.repo = pay.repos[0]
        self.pulls.append(hostile)
        for p in PROFILES:
            self.bot_pulls(p)
        for pr in self.pulls:
            self.with_shas(pr)
        for p in PROFILES:
            for repo, service, style in zip(p.repos, p.services, p.deploy, strict=True):
                self.deployments(p, repo, service, style)
            self.background_incidents(p)
        by_repo: dict[str, int] = {}
        for n, pr in enumerate(sorted(self.pulls, key=lambda pr: (pr.created, pr.repo, pr.title))):
            by_repo[pr.repo] = by_repo.get(pr.repo, 0) + 1
            pr.number, pr.id = 100 + by_repo[pr.repo], 1_800_000_000 + n
        for n, dep in enumerate(sorted(self.deploys, key=lambda d: (d.created, d.repo, d.environment))):
            dep.id = 1_200_000_000 + n
        for n, inc in enumerate(sorted(self.incidents, key=lambda i: (i.created, i.service))):
            inc.number = 1000 + n


class Wire:
    """The simulated history as each tool's API would return it."""

    def __init__(self, cutoff: int, items: list[WorkItem], sprints: list[dict], delivery: DeliverySimulation):
        self.cutoff = cutoff
        self.start = cutoff - WEEKS * WEEK
        self.items = items
        self.sprints = sprints
        self.pulls = delivery.pulls
        self.deploys = delivery.deploys
        self.incidents = delivery.incidents

    def issue_payloads(self) -> list[dict]:
        """Every item as a search/jql issue with its full changelog (newest first, as Jira sends it)."""
        sprint_by_id = {s["id"]: s for s in self.sprints}
        histories: list[tuple[int, int, WorkItem, list[dict]]] = []
        finals = {}
        for item in self.items:
            p = item.profile
            state = {
                "status": p.backlog,
                "resolution": None,
                "resolved": None,
                "sprints": list(item.initial_sprints),
            }
            flagged = False
            for at, order, kind, value in sorted(item.events):
                if at >= self.cutoff or at < item.created:
                    continue
                changes = []
                if kind == "status":
                    name, resolution = value
                    if name == state["status"]:
                        continue
                    changes.append(_status_change(state["status"], name))
                    state["status"] = name
                    if resolution != state["resolution"]:
                        changes.append(_resolution_change(state["resolution"], resolution))
                        state["resolution"] = resolution
                        state["resolved"] = at if resolution else None
                elif kind in ("sprint+", "sprint-"):
                    before = list(state["sprints"])
                    after = before + [value] if kind == "sprint+" else [s for s in before if s != value]
                    if after == before or (kind == "sprint+" and value in before):
                        continue
                    changes.append(_sprint_change(before, after, sprint_by_id))
                    state["sprints"] = after
                elif kind == "flag":
                    if value == flagged:
                        continue
                    changes.append(_flag_change(value))
                    flagged = value
                histories.append((at, order, item, changes))
            finals[item.key] = state
        histories.sort(key=lambda h: (h[0], h[1]))
        per_item: dict[str, list[dict]] = {}
        for n, (at, _order, item, changes) in enumerate(histories):
            per_item.setdefault(item.key, []).append(
                {
                    "id": str(200000 + n),
                    "author": {
                        "accountId": f"5b10ac8d82e05b22cc7d{item.profile.project_id}",
                        "displayName": "Jira user",
                        "active": True,
                    },
                    "created": jira_time(at),
                    "items": changes,
                }
            )
        out = []
        for item in self.items:
            state = finals[item.key]
            hist = per_item.get(item.key, [])
            updated = max([item.created] + [_parse(h["created"]) for h in hist])
            out.append(self.issue_payload(item, state, list(reversed(hist)), updated, sprint_by_id))
        return out

    def issue_payload(
        self, item: WorkItem, state: dict, histories: list[dict], updated: int, sprints: dict
    ) -> dict:
        p = item.profile
        type_id = next(t[1] for t in ISSUE_TYPES if t[0] == item.type)
        status_id, category = STATUSES[state["status"]]
        resolution = state["resolution"]
        return {
            "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
            "id": item.id,
            "self": f"{JIRA_URL}/rest/api/3/issue/{item.id}",
            "key": item.key,
            "fields": {
                "summary": item.summary,
                "status": {
                    "self": f"{JIRA_URL}/rest/api/3/status/{status_id}",
                    "description": "",
                    "name": state["status"],
                    "id": status_id,
                    "statusCategory": CATEGORIES[category],
                },
                "issuetype": {"id": type_id, "name": item.type, "subtask": False, "hierarchyLevel": 0},
                "created": jira_time(item.created),
                "updated": jira_time(updated),
                "resolution": None
                if resolution is None
                else {
                    "self": f"{JIRA_URL}/rest/api/3/resolution/{RESOLUTIONS[resolution]}",
                    "id": RESOLUTIONS[resolution],
                    "name": resolution,
                    "description": "",
                },
                "resolutiondate": jira_time(state["resolved"]) if state["resolved"] else None,
                "labels": item.labels,
                "components": [
                    {
                        "self": f"{JIRA_URL}/rest/api/3/component/{10200 + COMPONENTS.index(c)}",
                        "id": str(10200 + COMPONENTS.index(c)),
                        "name": c,
                    }
                    for c in item.components
                ],
                "project": {
                    "self": f"{JIRA_URL}/rest/api/3/project/{p.project_id}",
                    "id": p.project_id,
                    "key": p.project,
                    "name": p.team.title(),
                    "projectTypeKey": "software",
                    "simplified": False,
                },
                SPRINT_FIELD: [self.sprint_field_value(sprints[s]) for s in state["sprints"]] or None,
            },
            "changelog": {
                "startAt": 0,
                "maxResults": len(histories),
                "total": len(histories),
                "histories": histories,
            },
        }

    def sprint_state(self, s: dict) -> str:
        if s["complete"] is not None:
            return "closed"
        return "active" if s["start"] is not None and s["start"] < self.cutoff else "future"

    def sprint_field_value(self, s: dict) -> dict:
        value = {
            "id": s["id"],
            "name": s["name"],
            "state": self.sprint_state(s),
            "boardId": s["board"],
            "goal": s["goal"],
        }
        if s["start"] is not None:
            value |= {"startDate": agile_time(s["start"]), "endDate": agile_time(s["end"])}
        if s["complete"] is not None:
            value["completeDate"] = agile_time(s["complete"])
        return value

    def sprint_payload(self, s: dict) -> dict:
        payload = {
            "id": s["id"],
            "self": f"{JIRA_URL}/rest/agile/1.0/sprint/{s['id']}",
            "state": self.sprint_state(s),
            "name": s["name"],
            "originBoardId": s["board"],
            "goal": s["goal"],
        }
        if s["start"] is not None:
            payload |= {
                "startDate": agile_time(s["start"]),
                "endDate": agile_time(s["end"]),
                "createdDate": agile_time(s["start"] - 3 * DAY),
            }
        if s["complete"] is not None:
            payload["completeDate"] = agile_time(s["complete"])
        return payload

    def pull_payloads(self, pr: PullSpec) -> dict[str, dict | list]:
        """The four raw payloads of one PR: pull (list object + single GET), reviews, commits, timeline."""
        repo, n = pr.repo, pr.number
        api = f"{GITHUB_API}/repos/{repo}"
        html = f"https://github.com/{repo}"
        times = [pr.created, pr.merged or 0, pr.closed or 0, pr.draft_until or 0] + [
            r[0] or 0 for r in pr.reviews
        ]
        updated = max(t for t in times if t < self.cutoff)
        draft = pr.opened_as_draft and (pr.draft_until is None or pr.draft_until >= self.cutoff)
        user = {"login": pr.author, "id": _user_id(pr.author), "type": pr.author_type, "site_admin": False}
        pull = {
            "url": f"{api}/pulls/{n}",
            "id": pr.id,
            "node_id": f"PR_kwDO{pr.id}",
            "html_url": f"{html}/pull/{n}",
            "number": n,
            "state": "closed" if pr.closed else "open",
            "locked": False,
            "title": pr.title,
            "user": user,
            "body": pr.body or None,
            "labels": [
                {"id": _user_id(name), "name": name, "color": "ededed", "default": False}
                for name in pr.labels
            ],
            "created_at": gh_time(pr.created),
            "updated_at": gh_time(updated),
            "closed_at": gh_time(pr.closed),
            "merged_at": gh_time(pr.merged),
            "merge_commit_sha": pr.merge_sha,  # GitHub fills it with a test merge while open
            "draft": draft,
            "head": {"label": f"acme:{pr.head_ref}", "ref": pr.head_ref, "sha": pr.head_sha},
            "base": {
                "label": "acme:main",
                "ref": "main",
                "sha": pr.commit_shas[0] if pr.commit_shas else pr.head_sha,
                "repo": {
                    "id": _user_id(repo),
                    "name": repo.split("/")[1],
                    "full_name": repo,
                    "html_url": html,
                    "private": True,
                },
            },
            "author_association": "CONTRIBUTOR" if pr.author_type == "Bot" else "MEMBER",
            "merged": pr.merged is not None,
            "additions": pr.additions,
            "deletions": pr.deletions,
            "changed_files": max(1, (pr.additions + pr.deletions) // 40),
            "commits": pr.commit_count,
        }
        reviews = []
        for i, (at, login, kind, state) in enumerate(pr.reviews):
            review = {
                "id": pr.id * 10 + i,
                "node_id": f"PRR_kwDO{pr.id * 10 + i}",
                "user": {"login": login, "id": _user_id(login), "type": kind, "site_admin": False},
                "body": "",
                "state": state,
                "html_url": f"{html}/pull/{n}#pullrequestreview-{pr.id * 10 + i}",
                "pull_request_url": f"{api}/pulls/{n}",
                "author_association": "MEMBER" if kind == "User" else "NONE",
                "commit_id": pr.head_sha,
            }
            if at is not None:
                review["submitted_at"] = gh_time(at)
            reviews.append(review)
        span = max(60, (pr.draft_until or pr.created) - (pr.first_commit or pr.created))
        commits = []
        for i, sha in enumerate(pr.commit_shas):
            authored = (pr.first_commit or pr.created) + (span * i) // max(1, len(pr.commit_shas))
            commits.append(
                {
                    "sha": sha,
                    "node_id": f"C_{sha[:12]}",
                    "commit": {
                        "author": {
                            "name": pr.author,
                            "email": f"{pr.author}@users.noreply.github.com",
                            "date": gh_time(authored),
                        },
                        "committer": {
                            "name": "GitHub",
                            "email": "noreply@github.com",
                            "date": gh_time(max(authored, pr.created - 60)),
                        },
                        "message": pr.title if i == 0 else "address review comments",
                    },
                    "url": f"{api}/commits/{sha}",
                    "html_url": f"{html}/commit/{sha}",
                    "parents": [{"sha": pr.commit_shas[i - 1] if i else pr.head_sha}],
                }
            )
        timeline = []
        if pr.opened_as_draft and pr.draft_until is not None and pr.draft_until < self.cutoff:
            timeline.append(_event(pr, 0, "ready_for_review", pr.draft_until))
        if pr.merged:
            timeline += [_event(pr, 1, "merged", pr.merged), _event(pr, 2, "closed", pr.merged)]
        elif pr.closed:
            timeline.append(_event(pr, 2, "closed", pr.closed))
        return {"pull": pull, "pull_reviews": reviews, "pull_commits": commits, "pull_timeline": timeline}

    def deployment_payload(self, dep: DeploySpec, run_url: str) -> dict:
        api = f"{GITHUB_API}/repos/{dep.repo}"
        statuses = []
        for i, (at, state) in enumerate(sorted(dep.statuses)):
            if at >= self.cutoff:
                continue
            statuses.append(
                {
                    "url": f"{api}/deployments/{dep.id}/statuses/{dep.id * 10 + i}",
                    "id": dep.id * 10 + i,
                    "state": state,
                    "description": "",
                    "environment": dep.environment,
                    "target_url": run_url,
                    "log_url": run_url,
                    "created_at": gh_time(at),
                    "updated_at": gh_time(at),
                    "deployment_url": f"{api}/deployments/{dep.id}",
                    "repository_url": api,
                }
            )
        statuses.reverse()  # the API lists the newest first
        return {
            "url": f"{api}/deployments/{dep.id}",
            "id": dep.id,
            "node_id": f"DE_kwDO{dep.id}",
            "sha": dep.sha,
            "ref": "main",
            "task": "deploy",
            "payload": {"run_id": dep.run},
            "original_environment": dep.environment,
            "environment": dep.environment,
            "description": None,
            "creator": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
            "created_at": gh_time(dep.created),
            "updated_at": statuses[0]["created_at"] if statuses else gh_time(dep.created),
            "statuses_url": f"{api}/deployments/{dep.id}/statuses",
            "repository_url": api,
            "transient_environment": False,
            "production_environment": dep.environment == "production",
            "statuses": statuses,
        }

    def compare_payload(self, dep: DeploySpec) -> dict:
        api = f"{GITHUB_API}/repos/{dep.repo}"
        commits = []
        for pr in dep.compare_prs:
            for sha in pr.commit_shas:
                commits.append({"sha": sha, "commit": {"message": pr.title}, "url": f"{api}/commits/{sha}"})
            commits.append(
                {
                    "sha": pr.merge_sha,
                    "commit": {"message": f"Merge pull request #{pr.number}"},
                    "url": f"{api}/commits/{pr.merge_sha}",
                }
            )
        return {
            "url": f"{api}/compare/{dep.compare_base}...{dep.sha}",
            "html_url": f"https://github.com/{dep.repo}/compare/{dep.compare_base}...{dep.sha}",
            "base_commit": {"sha": dep.compare_base},
            "merge_base_commit": {"sha": dep.compare_base},
            "status": "ahead" if commits else "identical",
            "ahead_by": len(commits),
            "behind_by": 0,
            "total_commits": len(commits),
            "commits": commits,
            "files": [],
        }

    def incident_payload(self, inc: IncidentSpec) -> dict:
        status = (
            "resolved" if inc.resolved is not None else ("acknowledged" if inc.number % 2 else "triggered")
        )
        last_change = inc.resolved if inc.resolved is not None else inc.created
        return {
            "id": inc.id,
            "type": "incident",
            "summary": f"[#{inc.number}] {inc.title}",
            "self": f"https://api.pagerduty.com/incidents/{inc.id}",
            "html_url": f"https://acme.pagerduty.com/incidents/{inc.id}",
            "incident_number": inc.number,
            "title": inc.title,
            "created_at": gh_time(inc.created),
            "updated_at": gh_time(last_change),
            "status": status,
            "incident_key": f"{_user_id(inc.id):032x}",
            "service": {
                "id": inc.service,
                "type": "service_reference",
                "summary": f"service {inc.service}",
                "self": f"https://api.pagerduty.com/services/{inc.service}",
                "html_url": f"https://acme.pagerduty.com/service-directory/{inc.service}",
            },
            "assignments": [],
            "last_status_change_at": gh_time(last_change),
            "resolved_at": gh_time(inc.resolved),
            "urgency": inc.urgency,
            "priority": None,
        }

    def raw_rows(self) -> list[tuple[str, str, str, str | None, dict | list]]:
        """(source, kind, external id, updated_at, payload) of what a sync reading the last 26 weeks
        would store: issues and PRs updated, deployments and incidents created since the start (the
        Agile API lists a board's sprints whatever their age)."""
        rows: list[tuple[str, str, str, str | None, dict | list]] = []
        for s in self.sprints:
            rows.append(("jira", "sprint", str(s["id"]), None, self.sprint_payload(s)))
        for issue in self.issue_payloads():
            if _parse(issue["fields"]["updated"]) >= self.start:
                rows.append(("jira", "issue", issue["id"], issue["fields"]["updated"], issue))
        for pr in sorted(self.pulls, key=lambda pr: (pr.repo, pr.number)):
            if pr.created >= self.cutoff:
                continue
            payloads = self.pull_payloads(pr)
            if _parse(payloads["pull"]["updated_at"]) < self.start:
                continue
            key = f"{pr.repo}#{pr.number}"
            updated = payloads["pull"]["updated_at"]
            for kind, payload in payloads.items():
                rows.append(("github", kind, key, updated, payload))
        for dep in sorted(self.deploys, key=lambda d: d.id):
            if dep.created < self.start:
                continue
            run_url = f"https://github.com/{dep.repo}/actions/runs/{dep.run}"
            payload = self.deployment_payload(dep, run_url)
            rows.append(("github", "deployment", str(dep.id), payload["updated_at"], payload))
            if dep.compare_base is not None:
                rows.append(
                    ("github", "compare", str(dep.id), payload["updated_at"], self.compare_payload(dep))
                )
        for inc in sorted(self.incidents, key=lambda i: i.number):
            if inc.created < self.start:
                continue
            payload = self.incident_payload(inc)
            rows.append(("pagerduty", "incident", inc.id, payload["updated_at"], payload))
        return rows


def simulate(end: date, seed: int = SEED) -> Wire:
    """Run the whole simulation; the result renders every payload."""
    rng = random.Random(seed)
    cutoff = int(datetime.combine(end, time(0), UTC).timestamp())
    work = WorkSimulation(rng, cutoff)
    for p in PROFILES:
        if p.board is None:
            work.kanban(p)
        else:
            work.scrum(p)
    work.items.sort(key=lambda it: (it.created, it.profile.project))
    counters: dict[str, int] = {}
    for n, item in enumerate(work.items):
        counters[item.profile.project] = counters.get(item.profile.project, 0) + 1
        item.key = f"{item.profile.project}-{counters[item.profile.project]}"
        item.id = str(10100 + n)
    delivery = DeliverySimulation(rng, cutoff)
    delivery.run(work.items)
    return Wire(cutoff, work.items, work.sprints, delivery)


def _parse(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _user_id(login: str) -> int:
    """A stable numeric id from a name (``hash`` is salted per process; this is not)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(login)) * 7919 % 10**8


def _event(pr: PullSpec, index: int, event: str, at: int) -> dict:
    return {
        "id": pr.id * 10 + index,
        "node_id": f"E_{pr.id}_{event}",
        "url": f"{GITHUB_API}/repos/{pr.repo}/issues/events/{pr.id * 10 + index}",
        "actor": {"login": pr.author, "id": _user_id(pr.author), "type": pr.author_type},
        "event": event,
        "commit_id": pr.merge_sha if event == "merged" else None,
        "created_at": gh_time(at),
    }


def _status_change(old: str, new: str) -> dict:
    return {
        "field": "status",
        "fieldtype": "jira",
        "fieldId": "status",
        "from": STATUSES[old][0],
        "fromString": old,
        "to": STATUSES[new][0],
        "toString": new,
    }


def _resolution_change(old: str | None, new: str | None) -> dict:
    return {
        "field": "resolution",
        "fieldtype": "jira",
        "fieldId": "resolution",
        "from": RESOLUTIONS.get(old) if old else None,
        "fromString": old,
        "to": RESOLUTIONS.get(new) if new else None,
        "toString": new,
    }


def _sprint_change(before: list[int], after: list[int], sprints: dict) -> dict:
    return {
        "field": "Sprint",
        "fieldtype": "custom",
        "fieldId": SPRINT_FIELD,
        "from": ", ".join(str(s) for s in before),
        "fromString": ", ".join(sprints[s]["name"] for s in before),
        "to": ", ".join(str(s) for s in after),
        "toString": ", ".join(sprints[s]["name"] for s in after),
    }


def _flag_change(on: bool) -> dict:
    return {
        "field": "Flagged",
        "fieldtype": "custom",
        "fieldId": FLAG_FIELD,
        "from": None if on else "[10019]",
        "fromString": None if on else "Impediment",
        "to": "[10019]" if on else None,
        "toString": "Impediment" if on else None,
    }


def build_sample(db: sqlite_utils.Database, end: date, seed: int = SEED) -> dict[str, int]:
    """Write the sample history ending before ``end`` (raw payloads, then ``rebuild``).

    The same ``end`` and ``seed`` give the same database content, byte for byte (``fetched_at`` is
    the history's end, not the wall clock). Returns the number of payloads normalised per source.
    """
    wire = simulate(end, seed)
    fetched = iso(wire.cutoff)
    with transaction(db):
        for source, kind, external_id, updated_at, payload in wire.raw_rows():
            save_raw(db, source, kind, external_id, updated_at, payload, fetched_at=fetched)
        return rebuild(db, SAMPLE_SOURCES)
