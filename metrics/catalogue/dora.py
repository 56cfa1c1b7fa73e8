"""DORA: deployment frequency, lead time for changes, change failure rate, time to restore, rework rate.

A deployment is what ``TeamData.deployments`` returns: one successful production record per (service,
environment, pipeline run), keeping the run's last finish; a redeploy is a new run and counts again.
Each deployment's ``changes`` are the PRs it shipped for the first time to that service.

One rule places a deployment, everywhere: the run's last finish (docs/metrics.md: an observation belongs to
the window of its end event). A run whose first records finished before a load's start and whose last
finished after it is a deployment after that start in every metric (frequency, lead time, failure and
rework rates) and in the checks for what shipped or finished earlier (``_shipped_before``,
``_any_deployment_before``), which therefore skip its records. Items are keyed by the deployment's own
id (``Deployment.ref``): a redeploy of the same sha is another item.

Linking rules (docs/metrics.md, as Apache DevLake):
- a PR's deployment is the first (by finish) successful production deployment of the team whose
  changes hold it; a PR already shipped before the loaded horizon is not re-counted at a later one;
- an incident links to the latest deployment of the team that finished strictly before the incident
  was created; none -> unlinked (listed, never in the rate).

PR loads: ``TeamData.pull_requests(S)`` holds PRs created, merged or closed at/after S, or still open.
A PR merged before S but deployed after it is missing there, so the PRs a deployment shipped are
completed here with one query per repository by (repo, number) (``_load_prs_by_key``). Those rows only
carry what lead time and rework need (no reviews).

Performance levels follow docs/metrics.md's table and are context for the team, never a ranking.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from metrics import stats
from metrics.catalogue.base import (
    COUNT,
    DEPLOYMENTS,
    DURATION,
    INCIDENTS,
    PRS,
    RATE,
    Metric,
    Observation,
    Result,
    be,
    counted,
    in_scope,
    local_day,
    not_synced,
    span,
    unknown,
)
from metrics.dataset import Deployment, Incident, PullRequest, TeamData, named_rows
from metrics.timeutil import Window, iso

DAY_H, WEEK_H, MONTH_H = 24.0, 168.0, 720.0  # a "month" is 30 days in the level bands

# Change failure rate is shown beside the DORA cluster values only (2024's clusters are unordered).
FAILURE_RATE_CLUSTERS = {
    "2023": {"elite": 5.0, "high": 10.0, "medium": 15.0, "low": 64.0},
    "2024": {"elite": 5.0, "high": 20.0, "medium": 10.0, "low": 40.0},
}


def _in(values) -> str:
    return ",".join("?" * len(values)) or "NULL"


def frequency_level(median_days_per_week: float, median_days_per_month: float) -> str:
    """DORA band from median deployment days: >= 5 a week elite, >= 1 a week high, >= 1 a month
    medium, else low (the same cut in the 2023 and 2024 reports, bar the wording of low)."""
    if median_days_per_week >= 5:
        return "elite"
    if median_days_per_week >= 1:
        return "high"
    if median_days_per_month >= 1:
        return "medium"
    return "low"


def lead_time_level(p50_hours: float | None) -> str | None:
    """The band holding the median: < 1 day elite, < 1 week high, < 1 month (30 d) medium, else low.

    The report's ranges touch at their ends ("1 day – 1 week", "1 week – 1 month"); a boundary value
    goes to the slower band. 2023's low band repeats medium's range; we use 2024's (beyond a month).
    """
    if p50_hours is None:
        return None
    if p50_hours < DAY_H:
        return "elite"
    if p50_hours < WEEK_H:
        return "high"
    if p50_hours < MONTH_H:
        return "medium"
    return "low"


def restore_level(p50_hours: float | None) -> str | None:
    """2023 recovery bands: < 1 h elite, < 1 day high, < 1 week medium, else low.

    2024's medium and high bands are both "< 1 day", so they cannot place a value; the 2023 gap
    between a week and a month is given to low.
    """
    if p50_hours is None:
        return None
    if p50_hours < 1:
        return "elite"
    if p50_hours < DAY_H:
        return "high"
    if p50_hours < WEEK_H:
        return "medium"
    return "low"


# -- what the deployments shipped ------------------------------------------------------------------
@dataclass
class Shipped:
    """The team's deployments since a horizon and the PRs they shipped."""

    deployments: list[Deployment]
    prs: dict[tuple[str, int], PullRequest]  # every change we could find a stored, non-bot PR for
    first: dict[tuple[str, int], Deployment]  # PR -> first deployment that shipped it
    unknown: set[tuple[str, int]] = field(default_factory=set)  # changes without a stored PR


def shipped(data: TeamData, start: float) -> Shipped:
    """Deployments finished at/after ``start`` with their PRs, cached per TeamData like its own loads."""
    return data.cached("shipped", start, lambda s: _load_shipped(data, s))


def _load_shipped(data: TeamData, start: float) -> Shipped:
    deployments = data.deployments(start)
    first: dict[tuple[str, int], Deployment] = {}
    for d in deployments:  # sorted by finish
        for key in d.changes:
            first.setdefault(key, d)
    for key in _shipped_before(data, list(first), start, _record_ids(deployments)):
        del first[key]
    prs = {(p.repo, p.number): p for p in data.pull_requests(start)}
    wanted = {key for d in deployments for key in d.changes}
    missing = [k for k in wanted if k not in prs]
    found, bots = _load_prs_by_key(data, missing)
    prs.update(found)
    unknown = {k for k in missing if k not in found and k not in bots}
    return Shipped(deployments, prs, first, unknown)


def _by_repo(keys: list[tuple[str, int]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for repo, number in keys:
        out.setdefault(repo, []).append(number)
    return out


def _record_ids(deployments: list[Deployment]) -> set[tuple[str, str]]:
    """(source, id) of every record of ``deployments``: records finished before the load's start that
    belong to a run finishing after it are part of that later deployment, not an earlier one."""
    return {(d.source, r) for d in deployments for r in d.records}


def _shipped_before(
    data: TeamData, keys: list[tuple[str, int]], start: float, later: set[tuple[str, str]]
) -> set[tuple[str, int]]:
    """PRs that an in-scope deployment finished before ``start`` already shipped (e.g. to another
    service): their first deployment lies before every window we compute, so none of ours counts.
    A record of a run in ``later`` (finishing at/after ``start``) is not such a deployment."""
    scope = data.team.services + data.team.all_repos
    out: set[tuple[str, int]] = set()
    if not keys or not scope:
        return out
    for repo, numbers in _by_repo(keys).items():
        for i in range(0, len(numbers), 800):
            part = numbers[i : i + 800]
            # CROSS JOIN keeps SQLite's order: the PRs' changes first (an index seek per PR), then
            # their deployments. Left to itself it scanned every earlier deployment of the scope and
            # probed it for every PR: 1.5 ms of each lead time for changes on the bench, growing
            # with history.
            for r in data.db.query(
                f"select c.repo, c.number, d.source, d.id from deployment_changes c "
                f"cross join deployments d on d.source = c.source and d.id = c.deployment_id "
                f"where c.repo = ? and c.number in ({_in(part)}) and d.service in ({_in(scope)}) "
                f"and d.production = 1 and lower(d.status) = 'success' and d.finished < ?",
                [repo, *part, *scope, start],
            ):
                if (r["source"], r["id"]) not in later:
                    out.add((r["repo"], r["number"]))
    return out


def _load_prs_by_key(
    data: TeamData, keys: list[tuple[str, int]]
) -> tuple[dict[tuple[str, int], PullRequest], set[tuple[str, int]]]:
    """Stored PRs by (repo, number), one query per repo; bot PRs are skipped (and returned apart)
    unless the team opts in, as ``TeamData`` does."""
    found: dict[tuple[str, int], PullRequest] = {}
    bots: set[tuple[str, int]] = set()
    for repo, numbers in _by_repo(keys).items():
        for i in range(0, len(numbers), 900):
            part = numbers[i : i + 900]
            for r in named_rows(
                data.db,
                f"select * from pull_requests where repo = ? and number in ({_in(part)})",
                [repo, *part],
            ):
                key = (r["repo"], r["number"])
                if r["author_bot"] and not data.team.include_bot_prs:
                    bots.add(key)
                    continue
                found[key] = PullRequest.from_row(r)
    return found, bots


PRS_NOT_SYNCED = "the pull requests these deployments shipped have not been synced yet"


def prs_unknown(data: TeamData) -> str:
    """Why the PRs deployments shipped are unknown: the tool never synced for the team's repositories
    ("GitHub has not been synced yet"), or, for a team scoped by services, those PRs are not stored."""
    if in_scope(data.team, PRS) and data.history_start((PRS,)) is None:
        return not_synced(data, PRS)
    return PRS_NOT_SYNCED


def prs_not_synced(data: TeamData, window: Window) -> bool:
    """Whether the window's deployments shipped changes and not one of them is a stored PR: then
    what the PRs would say (a lead time, a revert) is unknown, not absent."""
    ship = shipped(data, window.start)
    changes = [k for d in ship.deployments if window.contains(d.finished) for k in d.changes]
    return bool(changes) and all(k in ship.unknown for k in changes)


def _deploy_item(d: Deployment) -> dict:
    return d.ref() | {"service": d.service, "environment": d.environment, "finished": iso(d.finished)}


# -- deployment frequency ---------------------------------------------------------------------------
def _whole_weeks(window: Window) -> list[tuple[date, date]]:
    out = []
    for monday in window.week_starts():
        end = monday + timedelta(days=7)
        if monday >= window.since.date() and end <= window.until.date():
            out.append((monday, end))
    return out


def _whole_months(window: Window) -> list[tuple[date, date]]:
    first, last = window.since.date(), window.until.date()
    m = first if first.day == 1 else (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    out = []
    while True:
        nxt = (m.replace(day=28) + timedelta(days=4)).replace(day=1)
        if nxt > last:
            return out
        out.append((m, nxt))
        m = nxt


def deployment_days(days: set[date], window: Window) -> dict:
    """Deployment days (local dates with >= 1 deployment) per week: mean over the window, median over
    its whole Monday weeks, median per whole calendar month, and the DORA level.

    Partial weeks and months at the window's edges would drag a median down, so medians use the whole
    weeks (months) inside the window; a window holding none uses its own rate (days x 7 / window days,
    resp. x 30 / window days) instead.
    """
    in_window = {d for d in days if window.since.date() <= d < window.until.date()}
    n = len(in_window)
    span = max(window.days, 1)
    mean_week = n * 7 / span
    weeks = _whole_weeks(window)
    months = _whole_months(window)
    week_counts = [sum(s <= d < e for d in in_window) for s, e in weeks]
    month_counts = [sum(s <= d < e for d in in_window) for s, e in months]
    median_week = stats.median(week_counts) if week_counts else mean_week
    median_month = stats.median(month_counts) if month_counts else n * 30 / span
    return {
        "deployment_days": n,
        "deployment_days_per_week": round(mean_week, 4),
        "median_deployment_days_per_week": round(median_week, 4),
        "median_deployment_days_per_month": round(median_month, 4),
        "level": frequency_level(median_week, median_month),
    }


class DeploymentFrequency(Metric):
    """Deployments per week by finish time; the figure is the mean over the window's weeks.

    ``extra`` adds deployment days (see ``deployment_days``) and the DORA level they give.
    """

    id = "deployment-frequency"
    name = "Deployment frequency"
    unit = "deploys/week"
    better = "higher"
    family = "dora"
    definition = "successful production deployments per week (by finish time), and deployment days per week"
    kind = COUNT
    history = (DEPLOYMENTS,)
    things = "deployments"
    nothing = "no deployments in this period"

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        obs = [
            Observation(d.finished, 1.0, _deploy_item(d))
            for d in data.deployments(start)
            if start <= d.finished < end
        ]
        return obs, []

    def compute(self, data: TeamData, window: Window) -> Result:
        result = super().compute(data, window)
        if not (data.team.services or data.team.all_repos):  # ``no_data_reason`` says so
            result.value = result.previous = None
            return result
        days = {local_day(d.finished, window) for d in data.deployments(window.start)}
        result.extra.update(deployment_days(days, window))
        return result


# -- lead time for changes ----------------------------------------------------------------------------
class LeadTimeForChanges(Metric):
    """Per PR: earliest commit author date (else creation) -> finish of the first successful production
    deployment that shipped it; placed in the window of that finish. p50/p85 in hours.

    ``extra``: ``level`` (band holding the p50) and ``awaiting_deployment``, the PRs merged in the window
    that no deployment had shipped by its end (informational, not in the figure).
    """

    id = "lead-time-for-changes"
    name = "Lead time for changes"
    unit = "duration"
    better = "lower"
    family = "dora"
    definition = "earliest commit → first successful production deployment containing the PR; p50, p85"
    kind = DURATION
    # Placed by the deployment that ends it, so its history is the deployments': the PRs they
    # shipped are found by key (``_load_prs_by_key``) whether or not their repositories are in the
    # team's scope, and a services-only team has lead times (and earlier ones) as it has deployments.
    history = (DEPLOYMENTS,)
    things = "PRs"
    nothing = "no PRs reached production in this period"

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        ship = shipped(data, start)
        obs: list[Observation] = []
        negative = unknown = unmerged = 0
        for key, d in ship.first.items():
            if not start <= d.finished < end:
                continue
            pr = ship.prs.get(key)
            if pr is None:
                unknown += key in ship.unknown
                continue
            if pr.merged is None:
                unmerged += 1
                continue
            o = span(pr.ref(), pr.start, d.finished, deployment=d.ref()["key"])
            if o is None:
                negative += 1
            else:
                obs.append(o)
        notes = []
        if negative:
            notes.append(
                f"{counted(negative, 'PRs')} reached production before {'its' if negative == 1 else 'their'} "
                f"first commit (clock skew or bad data) and {be(negative)} left out"
            )
        if unknown:
            notes.append(
                f"{counted(unknown, 'deployed PRs')} {'has' if unknown == 1 else 'have'} not been synced yet "
                f"and {be(unknown)} left out"
            )
        if unmerged:
            notes.append(
                f"{counted(unmerged, 'deployed PRs')} {be(unmerged)} not marked as merged and left out"
            )
        return obs, notes

    def compute(self, data: TeamData, window: Window) -> Result:
        result = super().compute(data, window)
        if result.sample_size == 0 and prs_not_synced(data, window):
            unknown(result, prs_unknown(data))
        p50 = result.value["p50"] if result.value else None
        result.extra["level"] = lead_time_level(p50)
        ship = shipped(data, window.start)
        deployed = {k for k, d in ship.first.items() if d.finished < window.end}
        awaiting = sorted(
            (
                p
                for p in data.pull_requests(window.start)
                if window.contains(p.merged) and (p.repo, p.number) not in deployed
            ),
            key=lambda p: p.merged or 0.0,
        )
        result.extra["awaiting_deployment"] = len(awaiting)
        result.extra["awaiting"] = [p.ref() | {"merged": iso(p.merged)} for p in awaiting]
        if awaiting:
            n = len(awaiting)
            result.notes.append(f"{counted(n, 'PRs')} merged in this period {be(n)} not in production yet")
        return result


# -- change failure rate ----------------------------------------------------------------------------
def link_incidents(
    deployments: list[Deployment], incidents: list[Incident]
) -> tuple[dict[int, list[Incident]], list[Incident]]:
    """Incidents by the index of the latest deployment finished strictly before their creation, and
    the incidents no loaded deployment precedes. ``deployments`` must be sorted by finish."""
    finishes = [d.finished for d in deployments]
    linked: dict[int, list[Incident]] = {}
    unlinked = []
    for inc in incidents:
        i = bisect.bisect_left(finishes, inc.created) - 1
        if i >= 0:
            linked.setdefault(i, []).append(inc)
        else:
            unlinked.append(inc)
    return linked, unlinked


def _any_deployment_before(data: TeamData, ts: float, loaded: list[Deployment]) -> bool:
    """Whether a deployment older than the ``loaded`` ones finished before ``ts`` (the records of a
    loaded run finish with that run, so they do not count)."""
    scope = data.team.services + data.team.all_repos
    if not scope:
        return False
    later = _record_ids(loaded)
    rows = data.db.query(
        f"select source, id from deployments where service in ({_in(scope)}) and finished < ? "
        f"and production = 1 and lower(status) = 'success'",
        [*scope, ts],
    )
    return any((r["source"], r["id"]) not in later for r in rows)


class ChangeFailureRate(Metric):
    """Share of the window's deployments with at least one linked incident (so never above 100%).

    Incidents known now count, even those created after the window's end: a deployment's failure
    often shows later. ``extra``: ``unlinked_incidents`` (created in the window, no deployment before
    them), ``linked_incidents`` (linked to a deployment in the window) and the DORA cluster values.
    """

    id = "change-failure-rate"
    name = "Change failure rate"
    unit = "%"
    better = "lower"
    family = "dora"
    definition = "deployments with ≥ 1 linked incident ÷ deployments, capped at 100%"
    kind = RATE
    history = (DEPLOYMENTS, INCIDENTS)  # before incidents were known, every deployment looks fine
    things = "deployments"
    nothing = "no deployments in this period"

    @staticmethod
    def no_incidents(data: TeamData) -> str:
        """Why no incident is known for the team: none synced for its scope yet, said with what the
        scope lacks when it names no service (PagerDuty's incidents are of services; only incidents
        filed as GitHub issues belong to a repository)."""
        if not data.team.services:
            return "no incident service in this team's scope, and no incidents synced for its repositories"
        return not_synced(data, INCIDENTS)

    def unknown_reason(self, data: TeamData, window: Window, empty: bool = True) -> str | None:
        """Besides what every metric lacks: deployments with no incident known at all. Every one of
        them would read as a success, and 0% would be invented good news."""
        missing = super().unknown_reason(data, window, empty)
        if missing is None and not empty and data.history_start((INCIDENTS,)) is None:
            return f"{self.no_incidents(data)}, so no deployment can count as failed"
        return missing

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        deployments = data.deployments(start)
        linked, _ = link_incidents(deployments, data.incidents(start))
        obs = []
        for i, d in enumerate(deployments):
            if not start <= d.finished < end:
                continue
            incs = linked.get(i, [])
            item = _deploy_item(d) | {"failed": bool(incs), "incidents": [x.id for x in incs]}
            obs.append(Observation(d.finished, 1.0 if incs else 0.0, item))
        return obs, []

    def compute(self, data: TeamData, window: Window) -> Result:
        result = super().compute(data, window)
        deployments = data.deployments(window.start)
        linked, unlinked = link_incidents(deployments, data.incidents(window.start))
        unlinked = [x for x in unlinked if window.contains(x.created)]
        # No loaded deployment precedes them; an older one (before the load horizon) still links them.
        if unlinked and _any_deployment_before(data, min(x.created for x in unlinked), deployments):
            unlinked = []
        result.extra["unlinked_incidents"] = [x.ref() | {"created": iso(x.created)} for x in unlinked]
        result.extra["linked_incidents"] = sum(
            len(incs) for i, incs in linked.items() if window.contains(deployments[i].finished)
        )
        result.extra["clusters"] = FAILURE_RATE_CLUSTERS
        if unlinked:
            n = len(unlinked)
            result.notes.append(
                f"{counted(n, 'incidents')} began before any deployment in this team's scope and "
                f"{be(n)} not in the rate"
            )
        return result


# -- time to restore --------------------------------------------------------------------------------
class TimeToRestore(Metric):
    """resolved − created per incident resolved in the window; open incidents are left out.

    ``extra``: ``level`` (2023 recovery bands, see ``restore_level``) and ``open_incidents`` (created
    before the window's end and not resolved by then).
    """

    id = "time-to-restore"
    name = "Time to restore"
    unit = "duration"
    better = "lower"
    family = "dora"
    definition = "resolved − created per incident resolved in window; p50, p85"
    kind = DURATION
    history = (INCIDENTS,)
    things = "incidents"
    nothing = "no incidents resolved in this period"

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        obs = []
        negative = 0
        for inc in data.incidents(start):
            if inc.resolved is None or not start <= inc.resolved < end:
                continue
            o = span(inc.ref(), inc.created, inc.resolved)
            if o is None:
                negative += 1
            else:
                obs.append(o)
        notes = []
        if negative:
            notes.append(
                f"{counted(negative, 'incidents')} resolved before {'it was' if negative == 1 else 'they were'} "
                f"created (bad data) {be(negative)} left out"
            )
        return obs, notes

    def compute(self, data: TeamData, window: Window) -> Result:
        result = super().compute(data, window)
        result.extra["level"] = restore_level(result.value["p50"] if result.value else None)
        result.extra["open_incidents"] = sum(
            1
            for x in data.incidents(window.start)
            if x.created < window.end and (x.resolved is None or x.resolved >= window.end)
        )
        return result


# -- rework rate ----------------------------------------------------------------------------------------
def rework_patterns(patterns: list[str]) -> tuple[list[re.Pattern], list[str]]:
    """The team's revert/hotfix regexes, case-insensitive; a bad one is skipped with a note."""
    out, notes = [], []
    for p in patterns:
        try:
            out.append(re.compile(p, re.IGNORECASE))
        except re.error:
            notes.append(f"the rework pattern {p!r} is not a valid regular expression, so it is ignored")
    return out, notes


def rework_reason(pr: PullRequest, patterns: list[re.Pattern], incident_refs: dict[str, str]) -> str | None:
    """Why a PR is rework: a revert/hotfix pattern on its title or branch, or a linked incident."""
    for p in patterns:
        if p.search(pr.title or "") or p.search(pr.head_ref or ""):
            return f"matches {p.pattern}"
    for ref in pr.refs:
        inc = incident_refs.get(str(ref).strip().rstrip("/").lower())
        if inc is not None:
            return f"linked to incident {inc}"
    return None


class ReworkRate(Metric):
    """Share of the window's deployments that shipped a revert or hotfix PR (the team's patterns, on
    title and branch, case-insensitive) or a PR whose refs name one of the team's incidents (id or URL).
    """

    id = "rework-rate"
    name = "Rework rate"
    unit = "%"
    better = "lower"
    family = "dora"
    definition = "deployments shipping a revert, hotfix or incident-linked PR ÷ deployments"
    kind = RATE
    history = (DEPLOYMENTS,)  # as lead time for changes: the PRs are found by the deployments' changes
    things = "deployments"
    nothing = "no deployments in this period"

    def compute(self, data: TeamData, window: Window) -> Result:
        result = super().compute(data, window)
        if result.sample_size and prs_not_synced(data, window):
            # Without the PRs, no deployment can be seen to ship a revert: 0% would be invented.
            unknown(result, f"{prs_unknown(data)}, so no deployment can count as rework")
        return result

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        patterns, notes = rework_patterns(data.team.rework_patterns)
        refs: dict[str, str] = {}
        for inc in data.incidents(start):
            refs[inc.id.strip().lower()] = inc.id
            if inc.url:
                refs[inc.url.strip().rstrip("/").lower()] = inc.id
        ship = shipped(data, start)
        obs = []
        for d in ship.deployments:
            if not start <= d.finished < end:
                continue
            rework = []
            for key in d.changes:
                pr = ship.prs.get(key)
                reason = rework_reason(pr, patterns, refs) if pr is not None else None
                if reason:
                    rework.append({"key": pr.key, "title": pr.title, "url": pr.url, "reason": reason})
            item = _deploy_item(d) | {"rework": bool(rework), "rework_prs": rework}
            obs.append(Observation(d.finished, 1.0 if rework else 0.0, item))
        return obs, notes


METRICS = [DeploymentFrequency(), LeadTimeForChanges(), ChangeFailureRate(), TimeToRestore(), ReworkRate()]
