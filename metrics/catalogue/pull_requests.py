"""Pull requests: pickup time, review time, cycle time, size, merged without review; and stale PRs.

``TeamData.pull_requests`` already applies the team-level rules: bot-authored PRs are left out unless
the team opts in, and ``PullRequest.reviews`` holds only submitted reviews (dismissed ones included,
pending ones not) by someone other than the author and not a bot, oldest first. A "review" below is
one of those.
"""

from __future__ import annotations

from metrics import stats
from metrics.catalogue.base import (
    CUSTOM,
    DURATION,
    PRS,
    RATE,
    Metric,
    Observation,
    Verdict,
    Words,
    be,
    counted,
    hours,
    mann_whitney_verdict,
    one_decimal,
    span,
)
from metrics.dataset import PullRequest, TeamData
from metrics.timeutil import Window, iso


def first_review(pr: PullRequest) -> float | None:
    return pr.reviews[0]["submitted"] if pr.reviews else None


def first_review_before_merge(pr: PullRequest) -> float | None:
    """The first review submitted at or before the merge (a post-merge review did not gate it)."""
    if pr.merged is None or not pr.reviews or pr.reviews[0]["submitted"] > pr.merged:
        return None
    return pr.reviews[0]["submitted"]


class PrPickupTime(Metric):
    """Ready for review (first ``ready_for_review`` if opened as draft, else creation) -> first review,
    placed in the window of that review. A review before the ready time gives 0 (the reviewer did not
    wait). PRs still in draft with no ready time are left out: review was never requested.
    """

    id = "pr-pickup-time"
    name = "PR pickup time"
    unit = "duration"
    better = "lower"
    family = "pull_requests"
    definition = "ready for review → first review by a non-author, non-bot; p50, p85"
    kind = DURATION
    history = (PRS,)
    things = "PRs"
    nothing = "no PR had its first review in this period"

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        obs = []
        for pr in data.pull_requests(start):
            at = first_review(pr)
            if at is None or not start <= at < end or (pr.draft and pr.ready is None):
                continue
            obs.append(span(pr.ref(), min(pr.ready_at, at), at))  # a review before ready: pickup 0
        return obs, []


class PrReviewTime(Metric):
    """First review -> merge, per merged PR reviewed before its merge; placed by merge time.

    PRs merged with no review before the merge have no review time (``merged-without-review`` counts
    them).
    """

    id = "pr-review-time"
    name = "PR review time"
    unit = "duration"
    better = "lower"
    family = "pull_requests"
    definition = "first non-author, non-bot review → merge; merged PRs; p50, p85"
    kind = DURATION
    history = (PRS,)
    things = "PRs"
    nothing = "no reviewed PRs merged in this period"

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        obs = []
        for pr in data.pull_requests(start):
            if pr.merged is None or not start <= pr.merged < end:
                continue
            reviewed = first_review_before_merge(pr)
            if reviewed is None:
                continue
            obs.append(span(pr.ref(), reviewed, pr.merged))
        return obs, []


class PrCycleTime(Metric):
    """Earliest commit author date (creation for a PR without commits) -> merge, per merged PR."""

    id = "pr-cycle-time"
    name = "PR cycle time"
    unit = "duration"
    better = "lower"
    family = "pull_requests"
    definition = "earliest commit author date → merge; merged PRs; p50, p85"
    kind = DURATION
    history = (PRS,)
    things = "PRs"
    nothing = "no PRs merged in this period"

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        obs = []
        negative = 0
        for pr in data.pull_requests(start):
            if pr.merged is None or not start <= pr.merged < end:
                continue
            o = span(pr.ref(), pr.start, pr.merged)
            if o is None:
                negative += 1
            else:
                obs.append(o)
        notes = []
        if negative:
            notes.append(
                f"{counted(negative, 'PRs')} merged before {'its' if negative == 1 else 'their'} first "
                f"commit (bad data) {be(negative)} left out"
            )
        return obs, notes


class PrSize(Metric):
    """Lines changed (additions + deletions) per merged PR; value ``{"p50", "p85"}`` in lines.

    A PR whose line counts were never fetched is left out (noted), not counted as 0 lines.
    """

    id = "pr-size"
    name = "PR size"
    unit = "lines"
    better = "lower"
    family = "pull_requests"
    definition = "additions + deletions per merged PR; p50, p85"
    kind = CUSTOM  # a distribution like a duration, but in lines: its own aggregate and weekly point
    history = (PRS,)
    things = "PRs"
    nothing = "no PRs merged in this period"

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        obs = []
        unsized = 0
        for pr in data.pull_requests(start):
            if pr.merged is None or not start <= pr.merged < end:
                continue
            if pr.additions is None and pr.deletions is None:
                unsized += 1
                continue
            lines = (pr.additions or 0) + (pr.deletions or 0)
            item = pr.ref() | {
                "merged": iso(pr.merged),
                "additions": pr.additions or 0,
                "deletions": pr.deletions or 0,
                "lines": lines,
            }
            obs.append(Observation(pr.merged, float(lines), item))
        notes = []
        if unsized:
            notes.append(
                f"{counted(unsized, 'merged PRs')} {'has' if unsized == 1 else 'have'} no line counts "
                f"yet and {be(unsized)} left out"
            )
        return obs, notes

    def aggregate(self, obs: list[Observation], window: Window) -> object:
        values = [o.value for o in obs]
        if not values:
            return None
        return {
            "p50": round(stats.percentile(values, 0.5), 4),
            "p85": round(stats.percentile(values, 0.85), 4),
        }

    def weekly(self, obs: list[Observation]) -> float | None:
        return round(stats.median([o.value for o in obs]), 4) if obs else None

    def weekly_p85(self, obs: list[Observation]) -> float | None:
        return round(stats.percentile([o.value for o in obs], 0.85), 4) if obs else None

    judged_on_p85 = True  # a size target is judged on p85, like a duration's

    def words(self) -> Words:
        """Larger PRs are worse (docs/metrics.md: lower is better); sizes are said in lines."""
        return Words("larger", "smaller", "worse", " lines")

    def two_sample(self, in_window: list[float], in_base: list[float], base: Window) -> Verdict | None:
        """Mann–Whitney of this window's sizes vs the baseline's (after the shared XmR on medians)."""
        return mann_whitney_verdict(
            in_window, in_base, base, self.words(), self.things, lambda x: f"{one_decimal(x)} lines"
        )


class MergedWithoutReview(Metric):
    """Share of PRs merged in the window with no review submitted at or before the merge."""

    id = "merged-without-review"
    name = "Merged without review"
    unit = "%"
    better = "lower"
    family = "pull_requests"
    definition = "merged PRs with no non-author, non-bot review before merge ÷ merged PRs"
    kind = RATE
    history = (PRS,)
    things = "PRs"
    nothing = "no PRs merged in this period"

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        obs = []
        for pr in data.pull_requests(start):
            if pr.merged is None or not start <= pr.merged < end:
                continue
            unreviewed = first_review_before_merge(pr) is None
            item = pr.ref() | {"merged": iso(pr.merged), "reviewed": not unreviewed}
            obs.append(Observation(pr.merged, 1.0 if unreviewed else 0.0, item))
        return obs, []


def stale_prs(data: TeamData, now: float | None = None) -> list[dict]:
    """Open, non-draft PRs with no review for longer than the team's ``stale_pr_hours`` since they
    became ready, longest-waiting first. Lists PRs (key, title, url, ready, hours waiting), never
    people: the nudge asks the team, not a person, to pick them up."""
    now = data.now if now is None else now
    limit = data.team.stale_pr_hours * 3600
    out = []
    for pr in data.pull_requests(now):
        if pr.merged is not None or pr.closed is not None or pr.draft or pr.reviews:
            continue
        waited = now - pr.ready_at
        if waited > limit:
            out.append((waited, pr))
    out.sort(key=lambda x: (-x[0], x[1].key))
    return [pr.ref() | {"ready": iso(pr.ready_at), "hours_waiting": hours(w)} for w, pr in out]


METRICS = [PrPickupTime(), PrReviewTime(), PrCycleTime(), PrSize(), MergedWithoutReview()]
