"""The GitHub and PagerDuty simulation: PRs from the items' development rounds, bot PRs,
deployments (with failures, reverts and hotfixes) and the incidents that follow some of them."""

from __future__ import annotations

import bisect
import heapq
import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from metrics.sample.base import Clock, DeploySpec, IncidentSpec, PullSpec, WorkItem
from metrics.sample.profiles import DAY, HOUR, INCIDENT_TITLES, PROFILES, SAMPLE_EXPERIMENTS, Profile


class DeliverySimulation(Clock):
    """GitHub and PagerDuty: PRs from the items' development rounds, bots, deployments, incidents."""

    def __init__(self, rng: random.Random, cutoff: int):
        super().__init__(rng, cutoff)
        self.pulls: list[PullSpec] = []
        self.deploys: list[DeploySpec] = []
        self.incidents: list[IncidentSpec] = []
        # What a sample experiment's change did: per team, from when on and by how much reviews come
        # closer to their merge.
        self.review_change = {
            t.team: (t.started(cutoff), t.review_to_merge)
            for t in SAMPLE_EXPERIMENTS
            if t.review_to_merge != 1
        }

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
                self.reviews_closer(p, pr)
            self.pulls.append(pr)

    def reviews_closer(self, p: Profile, pr: PullSpec) -> None:
        """A sample experiment's change at work (``Trial.review_to_merge``): for a PR merged after it
        started, each person's review comes closer to the merge by the trial's factor (bots review
        as before). It moves review instants only, after the merge is decided, and draws nothing, so
        the rest of the history (merges, deployments, other teams) is what it was without it."""
        since, factor = self.review_change.get(p.team, (None, 1.0))
        merged = pr.merged
        if since is None or merged is None or merged < since:
            return

        def moved(at: int | None, kind: str) -> int | None:
            if kind != "User" or at is None or at >= merged:
                return at
            return int(merged - (merged - at) * factor)

        pr.reviews = sorted(
            [(moved(at, kind), who, kind, state) for at, who, kind, state in pr.reviews],
            key=lambda r: (r[0] is None, r[0] or 0),
        )

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
