"""The Jira simulation: items arriving, flowing through each team's statuses (Kanban) or planned
into sprints (Scrum), recorded as abstract events that ``wire`` renders as changelogs."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from metrics.sample.base import Clock, WorkItem
from metrics.sample.profiles import (
    COMPONENTS,
    DAY,
    HOUR,
    ISSUE_TYPES,
    THINGS,
    VERBS,
    WARMUP_WEEKS,
    WEEKS,
    Profile,
)
from metrics.timeutil import WEEK


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
