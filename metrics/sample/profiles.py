"""The three sample teams: how each works (``Profile``), the Jira vocabulary they share, the
improvement experiments they run (``Trial``), and the teams, sources and org settings ``vsm demo``
seeds. Everything the simulations draw from, and nothing that draws."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from metrics.teams import Team
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
# The org settings INTERFACE.md's example shows: North Star, the org digest's channel (a leadership
# channel of no team), its time zone (windows and weeks) and schedule, and a target for each North
# Star metric in base units, as a team's (lead time for changes: p85 within 7 days; deployment
# frequency: at least 20 a week across the org).
SAMPLE_ORG = {
    "north_star": ["lead-time-for-changes", "deployment-frequency"],
    "admins": [],
    "channel": "C0SAMPLEORG",
    "timezone": "Europe/London",
    "digest": {"day": "mon", "time": "08:00", "period_days": 28},
    "targets": {"lead-time-for-changes": 168.0, "deployment-frequency": 20.0},
}

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


@dataclass(frozen=True)
class Trial:
    """An improvement experiment a sample team starts (``metrics.experiments.start``), so the demo
    has one that ran its course and one still running.

    Its start is fixed relative to the history's end, like everything in the sample, so the demo is
    the same for the same end. Its verdict is never stated here: the one that is over is concluded
    by the real test on the sample's data. What the change did to the data is ``review_to_merge``:
    the simulation makes it so from the start on (``DeliverySimulation``), strongly enough that the
    test finds it whatever day the history ends on.
    """

    team: str
    metric: str
    change: str
    weeks: int
    days_ago: int  # started on the team's local Monday on or before this many days before the end
    at: str  # the local time it was started, HH:MM
    who: str  # who started it: a Slack user id, as the settings log records it
    review_to_merge: float = 1.0  # from the start on, each PR's reviews come this much closer to its merge

    def started(self, cutoff: int) -> int:
        """The instant it was started, for a history ending at ``cutoff`` (epoch seconds)."""
        tz = ZoneInfo(next(p.tz for p in PROFILES if p.team == self.team))
        day = datetime.fromtimestamp(cutoff, tz).date() - timedelta(days=self.days_ago)
        day -= timedelta(days=day.weekday())
        hour, minute = (int(x) for x in self.at.split(":"))
        return int(datetime.combine(day, time(hour, minute), tz).timestamp())


SAMPLE_EXPERIMENTS = (
    # Ran its course: 4 weeks starting 36 to 42 days before the end, so it ended 8 to 14 days before
    # it, inside the team's digest window (the last 28 complete days) whatever the time of day. Its
    # change worked: review to merge is a fifth of what it was (mobile's digest shows it since). A
    # fifth, not a third: over 300 consecutive end days the test's largest p was 0.0004 (a third: 0.08).
    Trial(
        team="mobile",
        metric="pr-review-time",
        change="Review in pairs: the reviewer walks through the PR with its author and they merge together",
        weeks=4,
        days_ago=36,
        at="10:00",
        who="U0SAMPLEMOB",
        review_to_merge=0.2,
    ),
    # Still running: started 10 to 16 days before the end, after payments' reviews slowed down (its
    # ``trend_weeks``), for 6 weeks, so it ends 4 to 5 weeks after it.
    Trial(
        team="payments",
        metric="pr-pickup-time",
        change="Review before you start anything new: open PRs first, every morning and after lunch",
        weeks=6,
        days_ago=10,
        at="09:30",
        who="U0SAMPLEPAY",
    ),
)


def _team(p: Profile, channel: str, **settings) -> Team:
    """The team a profile simulates: its name, zone, Jira project and board, repos and services come
    from the profile, so the settings cannot name anything the history does not hold."""
    return Team(
        name=p.team,
        channel=channel,
        timezone=p.tz,
        jira_projects=[p.project],
        jql=f"project = {p.project}",
        boards=[] if p.board is None else [str(p.board)],
        repos=list(p.repos),
        services=list(p.services),
        **settings,
    )


def sample_teams() -> list[Team]:
    """The three sample teams, with different workflows, zones, metrics, targets and digests."""
    payments, mobile, platform = PROFILES
    return [
        _team(
            payments,
            "C0SAMPLEPAY",
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
        _team(
            mobile,
            "C0SAMPLEMOB",
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
        _team(
            platform,
            "C0SAMPLEPLT",
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
