"""What the simulations produce, as plain records (items with their events, PRs, deployments,
incidents), and the ``Clock`` they share: one seeded RNG, working hours and durations. Both
simulations draw from the same RNG in a fixed order, which is what makes the sample reproducible."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from metrics.sample.profiles import HOUR, WARMUP_WEEKS, WEEKS, Profile
from metrics.timeutil import WEEK


def cutoff_of(end: date) -> int:
    """The history's end for a sample ending before ``end``: its 00:00 UTC, so nothing lies in the
    future on that day (epoch seconds)."""
    return int(datetime.combine(end, time(0), UTC).timestamp())


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
