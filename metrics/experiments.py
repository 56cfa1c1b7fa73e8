"""Improvement experiments: a team states a change it will try, the determinant metric it expects to
move and for how long (2–12 weeks); at the end the metric's observations during the experiment are
compared with those in the same length of time just before it (docs/metrics.md "Improvement
experiments").

Why it is built this way:

- **The verdict is a test, not a comparison of two figures.** Two medians always differ; only a
  two-sided test at α = 0.05 with at least 10 observations a side may say *improved* or *worse*
  (significant, in or against the metric's better direction); anything else is *no real change*, or
  *not enough data for a verdict*. The tests are the signal tests of ``metrics.stats``:
  - Mann–Whitney U for durations, and for the other per-observation distributions a team can choose
    (PR size in lines, flow efficiency's per-item ratios);
  - Fisher's exact test for rates (each observation a 0/1: a deployment that failed, a PR merged
    without review);
  - counts per week (throughput, deployment frequency) have no per-observation value to rank, and a
    test of event counts (a Poisson or binomial test) assumes events arrive independently, which
    deliveries do not (a release lands a batch): it would call ordinary burstiness a real change.
    They are tested with Mann–Whitney U on **weekly counts**, each whole week since the start one
    observation, so ≥ 10 observations a side means ≥ 10 weeks a side; ``start`` therefore refuses an
    experiment on a count metric shorter than 10 weeks rather than run one that can never get a
    verdict. A week before the metric's history began is unknown, not a zero, and is left out.
- **Windows.** The experiment runs from the instant it is started for ``weeks`` × 7 local days (the
  same wall-clock time in the team's zone, so a DST change does not shift the end by an hour); "the
  same length just before it" is the same number of local days before the start. Stopped early, the
  window judged ends when it was stopped and the one before has that same length. An observation
  belongs to a window by its end event, as everywhere (``Metric.observations``).
- **Data as the team defines it now.** The observations come from the catalogue
  (``CATALOGUE[id].observations(TeamData(...), start, end)``) with the team's current scope and
  workflow mapping, applied to both windows alike, as a new mapping applies to all history at once.
- **The North Star is context, never the effect.** Its figures for the same two windows are
  computed with the catalogue beside the verdict and stored with it; nothing here attributes them to
  the experiment.
- **One running experiment per team and metric** in a workspace (a unique index on workspace, team
  and metric enforces it; a team of the same name in another workspace is another team): two
  changes measured on one metric at once could not be told apart. Experiments on different metrics
  may run together.
- **Audit apart from figures.** Who started or stopped an experiment is written to the team's
  settings log, never into the experiment or its figures; every start, stop and verdict has a row.
- **Judged only on data that is current.** A verdict on the whole window is given only when every
  source the metric is counted from (``Metric.counted_from`` and its ``history``) that the team's
  scope names has synced successfully at or after the window's end, with no failure since
  (``sync_status``: the rule by which a digest calls a source behind). A source that stopped
  syncing leaves the last weeks empty, and those empty weeks would read as a real change.
  ``conclude`` therefore waits, checked at each scheduled run, up to ``SYNC_WAIT`` (2 days) after
  the end; then it concludes *not enough data for a verdict* with the reason in words ("Jira has not
  synced since 3 Nov: the last 2 weeks cannot be judged"), with no figures: a partial window is a
  wrong number, not a late one. Freshness is read per stream (``STREAM_DATA``): only the streams
  that bring the metric's data count. Stop early (and the digest's "so far") judges up to the
  press or the oldest last success of those streams, whichever is earlier: what has not synced yet
  is unknown, not "no activity". The cut is said when a source lags (failed since its last success,
  or that success older than ``SYNC_TOLERANCE``); a sync hours old on its schedule is cut silently.
  Pressed after the end, Stop waits for the data as the scheduled run does (``stop``).
  A store whose data never came through a sync (no ``sync_status`` row for the team's sources: the
  sample, a test database) has nothing to wait for.
- **Exactly once.** ``conclude`` computes outside the write lock, then marks the experiment
  concluded only if it is still running, in one transaction with its settings-log row: a scheduler
  that retries, or a stop racing the scheduled end, concludes it once.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import ceil

import sqlite_utils

from metrics import stats
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import (
    COUNT,
    CUSTOM,
    DEPLOYMENTS,
    DURATION,
    INCIDENTS,
    ITEMS,
    PRS,
    RATE,
    SPRINTS,
    Metric,
    Observation,
    duration_text,
    in_scope,
    one_decimal,
    slicer,
)
from metrics.dataset import TeamData
from metrics.errors import VsmError
from metrics.org import north_star_ids
from metrics.store.tx import transaction
from metrics.targets import words
from metrics.teams import Team, get_org, get_team, log_change, shown
from metrics.timeutil import Window, check_day, iso, now_iso, parse_instant, zone
from metrics.workspace import SINGLE, Workspace
from metrics.workspace import shown as shown_ws

RUNNING, CONCLUDED, STOPPED = "running", "concluded", "stopped"
IMPROVED, WORSE, NO_CHANGE = "improved", "worse", "no real change"
NOT_ENOUGH = "not enough data for a verdict"
VERDICTS = (IMPROVED, WORSE, NO_CHANGE, NOT_ENOUGH)
MIN_WEEKS, MAX_WEEKS = 2, 12
MAX_CHANGE = 300  # characters of what the team will try, after whitespace is collapsed
BOT = "vsm-bot"  # who concludes an experiment that ran its course (the settings log's "who")
MANN_WHITNEY, FISHER, WEEKLY_COUNTS = "mann-whitney", "fisher", "mann-whitney-weekly-counts"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_EXPERIMENT_ID = re.compile(r"[0-9]{1,18}")
# How long after its end an experiment waits for its sources to sync up to the end before it is
# concluded "not enough data for a verdict" (docs/metrics.md "Improvement experiments").
SYNC_WAIT = timedelta(days=2)
# How old a source's last success may be at a Stop early and still be its schedule, not a lag: at
# any press the last sync is minutes or hours old. The window judged ends at the last sync either
# way (what has not synced is unknown, not "no activity"); older than this, or failed since, the
# verdict also says so.
SYNC_TOLERANCE = timedelta(days=1)
# The least time an experiment must have run for a stop to compare anything: stopped sooner (a start
# by mistake), it ends with no verdict and no figures rather than a window of minutes.
MIN_RUN = timedelta(days=1)
# Why a stop within ``MIN_RUN`` of the start has no verdict (the detail, and the verdict's words).
TOO_SOON = "stopped within a day of its start, too soon to compare anything"
NORTH_STAR_NOTE = "the North Star over the same two windows, for context: not the experiment's effect"


# -- which metrics can be an experiment's, and how each is tested ----------------------------------
def judged_by(metric: Metric) -> str | None:
    """The test a metric's experiment is judged by, or None when it cannot be judged: no better
    direction (WIP, net flow, flow distribution), or no observations to compare (a figure that
    samples days or replays sprints rather than listing what happened)."""
    if metric.better not in ("lower", "higher"):
        return None
    if type(metric).observations is Metric.observations:
        return None
    if metric.kind == RATE:
        return FISHER
    if metric.kind == COUNT:
        return WEEKLY_COUNTS
    if metric.kind in (DURATION, CUSTOM):
        return MANN_WHITNEY
    return None


def why_not(metric: Metric) -> str:
    if metric.better not in ("lower", "higher"):
        return f"{metric.name} has no better direction, so no change in it is an improvement"
    return f"{metric.name} has no single observations to compare before and during an experiment"


# -- the experiment ---------------------------------------------------------------------------------
@dataclass
class Experiment:
    """One experiment as stored. Instants are UTC epoch seconds; ``result`` holds the metric on both
    windows and the test, ``north_star`` the North Star on the same windows (context only)."""

    id: int
    team: str
    metric: str
    change: str
    weeks: int
    timezone: str
    started: float
    ends: float
    state: str = RUNNING
    verdict: str | None = None
    detail: str | None = None
    measured_until: float | None = None
    result: dict = field(default_factory=dict)
    north_star: list = field(default_factory=list)
    concluded_at: float | None = None
    # The workspace whose team runs it (``metrics.workspace``): ids are global, so whoever reads one
    # by id (a button, the verdict job) checks it is the asking workspace's.
    workspace: Workspace = SINGLE

    @classmethod
    def from_row(cls, row: dict) -> Experiment:
        return cls(
            id=row["id"],
            team=row["team"],
            metric=row["metric"],
            change=row["change"],
            weeks=row["weeks"],
            timezone=row["timezone"],
            started=row["started"],
            ends=row["ends"],
            state=row["state"],
            verdict=row["verdict"],
            detail=row["detail"],
            measured_until=row["measured_until"],
            result=json.loads(row["result"]) if row["result"] else {},
            north_star=json.loads(row["north_star"]) if row["north_star"] else [],
            concluded_at=row["concluded_at"],
            workspace=Workspace(row["workspace"]),
        )

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def stopped_early(self) -> bool:
        return self.state == STOPPED

    @property
    def metric_name(self) -> str:
        found = CATALOGUE.get(self.metric)
        return found.name if found else self.metric

    def to_json(self) -> dict:
        """What ``vsm experiments --json`` prints for one experiment (instants as ISO 8601 UTC)."""
        return {
            "id": self.id,
            "team": self.team,
            "metric": self.metric,
            "metric_name": self.metric_name,
            "change": self.change,
            "weeks": self.weeks,
            "state": self.state,
            "stopped_early": self.stopped_early,
            "started": iso(self.started),
            "ends": iso(self.ends),
            "measured_until": iso(self.measured_until),
            "concluded_at": iso(self.concluded_at),
            "verdict": self.verdict,
            "detail": self.detail,
            "before": self.result.get("before"),
            "during": self.result.get("during"),
            "test": self.result.get("test"),
            # Why there is no verdict on the whole window: a source that had not synced to its end
            # (none, when the data was current), and the end of a window judged early, cut short
            # at the last complete sync.
            "not_judged": self.result.get("unjudged"),
            "judged_to_sync": self.result.get("judged_to_sync"),
            "north_star": self.north_star,
            "north_star_note": NORTH_STAR_NOTE if self.north_star else None,
        }


@dataclass
class Progress:
    """A running experiment's metric so far against the same length of time just before it: what
    the digest shows while it runs (past its end, only that it waits for its verdict, and why). Not a verdict: the test is only run when it ends (or is stopped),
    and ``enough`` says whether both sides already hold the observations a verdict needs."""

    experiment: Experiment
    before: dict
    during: dict
    enough: bool
    days_done: float
    ended: bool = False  # past its end, waiting for its verdict: no figures
    waiting: str | None = None  # past its end: why its verdict waits (None: the next run gives it)
    lag: str | None = None  # running: why the figures stop at a source's last sync (None: they don't)

    def to_json(self) -> dict:
        return {
            "experiment": self.experiment.id,
            "metric": self.experiment.metric,
            "metric_name": self.experiment.metric_name,
            "change": self.experiment.change,
            "days_done": round(self.days_done, 1),
            "days": 7 * self.experiment.weeks,
            "ends": iso(self.experiment.ends),
            "before": self.before,
            "during": self.during,
            "enough_for_a_verdict": self.enough,
            "ended": self.ended,
            "waiting_for": self.waiting,
            "figures_cut": self.lag,
        }


# -- checks -------------------------------------------------------------------------------------------
class Refused(VsmError):
    """A start refused on one of its inputs; ``field`` names it (``change``, ``metric`` or ``weeks``),
    so a form can answer on the field that caused it rather than guess from the words."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _instant(now: datetime | float) -> float:
    """``now`` as epoch seconds, refused unless finite and in the years a window may hold."""
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise VsmError("now: a time without a zone is ambiguous")
        now = now.timestamp()
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise VsmError(f"now: expected an instant, not {now!r}")
    try:
        check_day(datetime.fromtimestamp(now, UTC).date(), "now")
    except (OverflowError, OSError, ValueError):
        raise VsmError("now is out of range") from None
    return float(now)


def _change_text(change: object) -> str:
    """What the team will try, as plain text on one line: whitespace (newlines included) collapsed,
    1–300 characters, no control or direction-override characters (which would reorder or hide text
    in a digest)."""
    if not isinstance(change, str):
        raise Refused("change", "say what the team will try, in plain text")
    text = " ".join(change.split())
    if not text:
        raise Refused("change", "say what the team will try (1 to 300 characters)")
    if len(text) > MAX_CHANGE:
        raise Refused(
            "change", f"what the team will try is {len(text)} characters long: at most {MAX_CHANGE}"
        )
    if _CONTROL.search(text):
        raise Refused("change", "what the team will try must be plain text (no control characters)")
    return text


def _weeks(weeks: object) -> int:
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not MIN_WEEKS <= weeks <= MAX_WEEKS:
        raise Refused("weeks", f"an experiment lasts a whole number of weeks from {MIN_WEEKS} to {MAX_WEEKS}")
    return weeks


def _who(who: object) -> str:
    if not isinstance(who, str) or not who.strip():
        raise VsmError("who started or stopped the experiment is needed for the settings log")
    return who


def _team(db: sqlite_utils.Database, team: Team | str, *, ws: Workspace = SINGLE) -> Team:
    """The team as stored now in workspace ``ws``: its metrics and zone at the moment of the write,
    not as a form saw them."""
    return get_team(db, team.name if isinstance(team, Team) else team, ws=ws)


# -- windows --------------------------------------------------------------------------------------------
def _local(ts: float, timezone: str) -> datetime:
    return datetime.fromtimestamp(ts, zone(timezone))


def end_of(started: float, weeks: int, timezone: str) -> float:
    """``weeks`` × 7 local days after the start, at the same wall-clock time in the team's zone."""
    return (_local(started, timezone) + timedelta(days=7 * weeks)).timestamp()


def windows(exp: Experiment, until: float) -> tuple[Window, Window]:
    """(before, during): during = from the start to ``until``; before = the same length of time (in
    local wall-clock time) just before the start."""
    start = _local(exp.started, exp.timezone)
    end = _local(until, exp.timezone)
    length = end.replace(tzinfo=None) - start.replace(tzinfo=None)  # wall-clock time, as days are
    before = (start.replace(tzinfo=None) - length).replace(tzinfo=start.tzinfo, fold=0)
    return Window(before, start), Window(start, end)


def _wall_days(w: Window) -> float:
    return (w.until.replace(tzinfo=None) - w.since.replace(tzinfo=None)).total_seconds() / 86400


def _length_words(w: Window) -> str:
    days = _wall_days(w)
    if days % 7 == 0:
        n = int(days // 7)
        return "the week" if n == 1 else f"the {n} weeks"
    if days < 1:  # stopped within a day of its start
        return f"the {one_decimal(24 * days)} hours"
    return f"the {one_decimal(days)} days"


def _week_bounds(w: Window) -> list[tuple[float, float]]:
    """The whole weeks of a window, counted from its start (not calendar weeks: an experiment starts
    on any day), each 7 local days; a partial last week is left out, as a partial week always looks
    low."""
    out = []
    s = w.since
    while True:
        e = (s.replace(tzinfo=None) + timedelta(days=7)).replace(tzinfo=s.tzinfo)
        if e.timestamp() > w.end:
            return out
        out.append((s.timestamp(), e.timestamp()))
        s = e


# -- the comparison ------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """The metric on both windows, and the test of one against the other."""

    test: str
    before: dict
    during: dict
    samples: tuple[list[float], list[float]]  # (before, during): what the test compares
    verdict: str = NOT_ENOUGH
    detail: str = ""
    p: float | None = None

    @property
    def enough(self) -> bool:
        return min(len(self.samples[0]), len(self.samples[1])) >= stats.MIN_SIDE

    def result(self) -> dict:
        test = {
            "name": self.test,
            "p": None if self.p is None else round(self.p, 6),
            "n_before": len(self.samples[0]),
            "n_during": len(self.samples[1]),
            "alpha": stats.ALPHA,
        }
        return {"before": self.before, "during": self.during, "test": test}


def _split(obs: list[Observation], before: Window, during: Window) -> tuple[list, list]:
    obs.sort(key=lambda o: o.at)
    between = slicer(obs)
    return between(before.start, before.end), between(during.start, during.end)


def _figure(metric: Metric, obs: list[Observation], w: Window) -> dict:
    """The metric's figure on a window, as ``vsm metric --json`` shapes values (durations p50/p85 in
    hours). A count is per week of the window's wall-clock length, since an experiment's windows
    need not start at midnight."""
    if metric.kind == COUNT:
        weeks = _wall_days(w) / 7
        value = round(len(obs) / weeks, 4) if weeks else None
    else:
        value = metric.aggregate(obs, w)
    return {
        "since": iso(w.start),
        "until": iso(w.end),
        "value": value,
        "sample_size": len(obs),
    }


def _weekly_counts(obs: list[Observation], w: Window, history: float | None) -> list[float]:
    """One count per whole week of ``w`` from the week holding the start of the metric's history on
    (as the XmR baseline counts them): weeks that ended before the history began are unknown, not
    zeros. No history at all: no weeks."""
    if history is None:
        return []
    ats = [o.at for o in obs]  # sorted by _split
    return [float(bisect_left(ats, e) - bisect_left(ats, s)) for s, e in _week_bounds(w) if e > history]


def _u_above(a: list[float], b: list[float]) -> float:
    """Mann–Whitney's U of ``a`` over ``b``: pairs where a's value is larger, ties counted half. Above
    ``len(a)·len(b)/2`` means a's values tend larger: the direction of a significant difference."""
    bs = sorted(b)
    return sum(bisect_left(bs, x) + (bisect_right(bs, x) - bisect_left(bs, x)) / 2 for x in a)


def _show(metric: Metric) -> Callable[[float], str]:
    """How a median of the test's values is written in the detail, in the metric's unit."""
    if metric.kind == DURATION:
        return duration_text
    if metric.unit == "%":  # a per-item ratio (flow efficiency)
        return lambda x: f"{one_decimal(100 * x)}%"
    if metric.kind == COUNT:
        return lambda x: f"{one_decimal(x)} {metric.things} a week"
    return lambda x: f"{one_decimal(x)} {metric.unit}"


def compare(metric: Metric, data: TeamData, before: Window, during: Window) -> Comparison:
    """The metric's observations during the experiment against those just before it, tested by
    docs/metrics.md's rule; the verdict and a one-line detail with the test and its numbers."""
    test = judged_by(metric)
    if test is None:
        raise VsmError(why_not(metric))
    obs, _notes = metric.observations(data, before.start, during.end)
    in_before, in_during = _split(obs, before, during)
    if test == WEEKLY_COUNTS:
        history = data.history_start(metric.history) if metric.history else None
        samples = (_weekly_counts(in_before, before, history), _weekly_counts(in_during, during, history))
    else:
        samples = ([o.value for o in in_before], [o.value for o in in_during])
    c = Comparison(test, _figure(metric, in_before, before), _figure(metric, in_during, during), samples)
    judge(c, metric, _length_words(before))
    return c


def judge(c: Comparison, metric: Metric, before_words: str) -> None:
    """The verdict: improved or worse only when the two-sided test is significant at α = 0.05 (in
    or against the better direction), else no real change; under 10 a side, not enough data."""
    b, d = c.samples
    what = "weeks" if c.test == WEEKLY_COUNTS else metric.things
    before_label = f"in {before_words} before"
    if not c.enough:
        c.verdict = NOT_ENOUGH
        c.detail = (
            f"{NOT_ENOUGH}: {len(d)} {what} during the experiment, {len(b)} {before_label} "
            f"({stats.MIN_SIDE} a side needed)"
        )
        return
    if c.test == FISHER:
        hits_d, hits_b = int(sum(d)), int(sum(b))
        c.p = stats.fisher_p(hits_d, len(d), hits_b, len(b))
        share_d, share_b = 100 * hits_d / len(d), 100 * hits_b / len(b)
        went_up = share_d > share_b
        numbers = (
            f"Fisher's exact test, two-sided, α = 0.05: {stats.p_text(c.p)}; {one_decimal(share_d)}% during "
            f"the experiment ({hits_d} of {len(d)} {metric.things}) vs {one_decimal(share_b)}% "
            f"{before_label} ({hits_b} of {len(b)})"
        )
    else:
        c.p = stats.mann_whitney_p(d, b)
        went_up = _u_above(d, b) > len(d) * len(b) / 2
        show = _show(metric)
        weekly = c.test == WEEKLY_COUNTS
        name = "Mann–Whitney U test" + (" on weekly counts" if weekly else "")
        n_d, n_b = (f"{len(x)} weeks" if weekly else f"n = {len(x)}" for x in (d, b))
        numbers = (
            f"{name}, two-sided, α = 0.05: {stats.p_text(c.p)}; median {show(stats.median(d))} during the "
            f"experiment ({n_d}) vs {show(stats.median(b))} {before_label} ({n_b})"
        )
    if c.p < stats.ALPHA:
        c.verdict = IMPROVED if went_up == (metric.better == "higher") else WORSE
    else:
        c.verdict = NO_CHANGE
    c.detail = numbers


def _north_star(
    db: sqlite_utils.Database, data: TeamData, before: Window, during: Window, *, ws: Workspace = SINGLE
) -> list[dict]:
    """The org's North Star metrics (the org of workspace ``ws``) for this team on the same two
    windows: shown beside a verdict for context, never as its effect. One data load shared by every
    figure, as a digest does."""
    out = []
    for mid in north_star_ids(get_org(db, ws=ws)):
        metric = CATALOGUE[mid]
        row = {"metric": mid, "name": metric.name, "unit": metric.unit}
        try:
            for side, w in (("before", before), ("during", during)):
                r = metric.compute(data, w)
                row[side] = {
                    "value": r.value,
                    "sample_size": r.sample_size,
                    "no_data_reason": r.no_data_reason,
                }
        except VsmError:  # context only: a figure that cannot be computed never blocks the verdict
            continue
        out.append(row)
    return out


# -- is the data current? ------------------------------------------------------------------------------
# The tools each kind of data can come from, by the kinds ``metrics.org_digest.source_kinds`` tells
# from ``sync_status`` (a team's scope then says which of them are its own: ``team_sources``).
_TOOLS = {
    ITEMS: {"jira"},
    SPRINTS: {"jira"},
    PRS: {"github", "gitlab"},
    DEPLOYMENTS: {"github", "gitlab"},
    INCIDENTS: {"github", "pagerduty"},
}
_TOOL_NAMES = {"jira": "Jira", "github": "GitHub", "gitlab": "GitLab", "pagerduty": "PagerDuty"}
# Which kind of data each ``sync_status`` stream brings (the connectors' ``streams()`` in
# metrics/sources/: Jira issues and sprints, GitHub pulls, deployments and incidents, GitLab merge
# requests and deployments or pipelines, PagerDuty incidents). A metric's freshness is judged on
# the streams its data comes from only: a failing incidents stream says nothing about deployments.
STREAM_DATA = {
    "issues": ITEMS,
    "sprints": SPRINTS,
    "pulls": PRS,
    "merge_requests": PRS,
    "deployments": DEPLOYMENTS,
    "pipelines": DEPLOYMENTS,
    "incidents": INCIDENTS,
}


@dataclass(frozen=True)
class Source:
    """One synced source a metric is counted from, as ``sync_status`` last saw the streams the
    metric's data comes from: ``as_of`` their oldest last success (None: one never succeeded),
    ``failed`` whether an attempt on one of them failed since its last success."""

    name: str
    tool: str
    as_of: float | None
    failed: bool

    def current_to(self, until: float) -> bool:
        """Synced at or after ``until`` with no failure since: its data up to ``until`` is complete."""
        return self.as_of is not None and self.as_of >= until and not self.failed

    def lags(self, until: float, press: float) -> bool:
        """Whether a press at ``press`` (Stop early) must say that this source's data stops short of
        ``until``: it never synced, or its data does not reach ``until`` and it either failed since
        its last success or that success is more than ``SYNC_TOLERANCE`` before the press. A sync
        hours old on a healthy schedule still cuts the window (``pressed_until``), but silently: it
        only costs those hours, and the window before is cut to the same length."""
        if self.as_of is None:
            return True
        if self.as_of >= until:
            return False  # a failure after a sync that reached ``until`` leaves that sync's data whole
        return self.failed or self.as_of < press - SYNC_TOLERANCE.total_seconds()


def _streams(db: sqlite_utils.Database, source: str) -> dict[str, tuple[float | None, bool]]:
    """Each of ``source``'s streams: (last success, failed since)."""
    rows = db.execute(
        "select stream, last_success, last_error from sync_status where source = ?", [source]
    ).fetchall()
    return {stream: (parse_instant(ok) if ok else None, bool(err)) for stream, ok, err in rows}


def sources_of(db: sqlite_utils.Database, team: Team, metric: Metric) -> list[Source]:
    """The synced sources the metric is counted from (``counted_from`` and ``history``) that the
    team's scope names (two Jira sites: only the one holding the team's projects), each judged on
    the streams that bring the metric's kinds of data (``STREAM_DATA``). A source that never ran such
    a stream has never synced that data. Empty for data that never came through a sync (nothing to
    wait for)."""
    # Function-level: metrics.org_digest imports this module (its digest lists concluded experiments).
    from metrics.org_digest import source_kinds, team_sources

    kinds = source_kinds(db)
    if not kinds:
        return []
    data_kinds = {kind for kind in {*metric.counted_from(), *metric.history} if in_scope(team, kind)}
    out = []
    for name in team_sources(db, team, kinds):
        needed = {kind for kind in data_kinds if kinds[name] in _TOOLS.get(kind, ())}
        if not needed:
            continue
        tool = _TOOL_NAMES.get(kinds[name], name)
        same = [s for s, k in kinds.items() if k == kinds[name]]
        rows = {stream: v for stream, v in _streams(db, name).items() if STREAM_DATA.get(stream) in needed}
        streams = list(rows.values())
        ran = {STREAM_DATA[stream] for stream in rows}
        as_of = None
        if streams and ran == needed and all(ok is not None for ok, _ in streams):
            as_of = min(ok for ok, _ in streams if ok is not None)
        out.append(
            Source(
                name,
                tool if len(same) == 1 else f"{tool} ({name})",
                as_of,
                any(failed for _, failed in streams),
            )
        )
    return out


def behind(sources: list[Source], until: float) -> list[Source]:
    """The sources whose data is not known complete up to ``until``."""
    return [s for s in sources if not s.current_to(until)]


def synced_until(sources: list[Source]) -> float | None:
    """The instant up to which every source's data is complete: the oldest last success (a failure
    since does not undo what that sync fetched). None when one never synced."""
    if any(s.as_of is None for s in sources):
        return None
    return min((s.as_of for s in sources if s.as_of is not None), default=math.inf)


def _day(ts: float, timezone: str, year_of: float) -> str:
    """``3 Nov``, with the year when it is not ``year_of``'s."""
    t, ref = _local(ts, timezone), _local(year_of, timezone)
    return f"{t.day} {t:%b}" + ("" if t.year == ref.year else f" {t.year}")


def _gap_words(seconds: float) -> str:
    days = ceil(seconds / 86400)
    if days >= 14 and days % 7 == 0:
        return f"the last {days // 7} weeks"
    return "the last day" if days <= 1 else f"the last {days} days"


def lag_reason(sources: list[Source], exp: Experiment, until: float) -> str:
    """Why the experiment's data is not complete up to ``until``, in words: "Jira has not synced since
    3 Nov: the last 2 weeks cannot be judged"."""
    late = behind(sources, until)
    said = []
    for s in late:
        if s.as_of is None:
            said.append(f"{s.tool} has never synced")
        elif s.as_of < until:
            said.append(f"{s.tool} has not synced since {_day(s.as_of, exp.timezone, until)}")
        else:
            said.append(f"{s.tool}'s last sync failed")
    oldest = synced_until(late)
    if oldest is None or oldest <= exp.started:
        tail = "nothing since the experiment started can be judged"
    elif oldest < until:
        tail = f"{_gap_words(until - oldest)} cannot be judged"
    else:
        tail = "its data cannot be confirmed complete to the experiment's end"
    return f"{' and '.join(said)}: {tail}"


def waiting_for(db: sqlite_utils.Database, exp: Experiment) -> str | None:
    """Why an experiment past its end is not concluded yet (its data is not current to the end),
    or None when it can be judged now. Its team is read in the experiment's own workspace."""
    metric = CATALOGUE.get(exp.metric)
    try:
        team = get_team(db, exp.team, ws=exp.workspace)
    except VsmError:
        return None
    if metric is None or judged_by(metric) is None:
        return None
    sources = sources_of(db, team, metric)
    return lag_reason(sources, exp, exp.ends) if behind(sources, exp.ends) else None


# -- the store ------------------------------------------------------------------------------------------
def get(db: sqlite_utils.Database, experiment_id: int, *, ws: Workspace = SINGLE) -> Experiment | None:
    """The experiment of that id in workspace ``ws``; None for another workspace's (ids are global, and
    a button's id is what a payload says: another workspace's is not known here)."""
    row = next(
        db.query("select * from experiments where id = ? and workspace = ?", [experiment_id, ws]), None
    )
    return Experiment.from_row(row) if row else None


def _said(exp: Experiment) -> str:
    return f"#{exp.id} on {words(exp.metric_name)} ({exp.change})"


def start(
    db: sqlite_utils.Database,
    team: Team | str,
    metric_id: str,
    change: str,
    weeks: int,
    who: str,
    now: datetime | float,
    *,
    ws: Workspace = SINGLE,
) -> Experiment:
    """Start an experiment for the team of workspace ``ws``, checked at the moment of the write: the metric is one of the team's
    determinant metrics with a better direction and observations to test, the text and length are
    in range, and the team runs no other experiment on that metric (a team of the same name in
    another workspace is another team). Logged as "started experiment"
    in the team's settings log in the same transaction. Bad input raises VsmError (``Refused``, naming
    the input, for the change, metric and weeks) and stores nothing."""
    at = _instant(now)
    who = _who(who)
    text = _change_text(change)
    n_weeks = _weeks(weeks)
    t = _team(db, team, ws=ws)
    mid = (metric_id or "").strip().lower() if isinstance(metric_id, str) else ""
    metric = CATALOGUE.get(mid)
    if metric is None or mid not in t.metrics:
        chosen = ", ".join(t.metrics) or "none yet"
        raise Refused("metric", f"choose one of {t.name}'s metrics for an experiment (chosen: {chosen})")
    if judged_by(metric) is None:
        raise Refused("metric", why_not(metric))
    if judged_by(metric) == WEEKLY_COUNTS and n_weeks < stats.MIN_SIDE:
        raise Refused(
            "weeks",
            f"{metric.name} is compared week by week: an experiment on it needs at least "
            f"{stats.MIN_SIDE} weeks to get a verdict",
        )
    ends = end_of(at, n_weeks, t.timezone)
    with transaction(db):
        running = next(
            db.query(
                "select id from experiments where workspace = ? and team = ? and metric = ? and state = ?",
                [ws, t.name, mid, RUNNING],
            ),
            None,
        )
        if running:
            raise Refused(
                "metric",
                f"{t.name} already runs experiment #{running['id']} on {words(metric.name)}: "
                "stop it first, or choose another metric",
            )
        cursor = db.execute(
            "insert into experiments (workspace, team, metric, change, weeks, timezone, started, ends, state) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [ws, t.name, mid, text, n_weeks, t.timezone, at, ends, RUNNING],
        )
        exp = get(db, cursor.lastrowid, ws=ws)
        log_change(
            db,
            t.name,
            now_iso(),
            who,
            f"started experiment {_said(exp)} for {n_weeks} weeks",
            {"experiment": [None, {"id": exp.id, "metric": mid, "change": text, "weeks": n_weeks}]},
            ws=ws,
        )
    return exp


def due(db: sqlite_utils.Database, now: datetime | float) -> list[Experiment]:
    """Running experiments whose end has passed, every workspace's (each carries its own): what the
    scheduler concludes."""
    at = _instant(now)
    rows = db.query(
        "select * from experiments where state = ? and ends <= ? order by ends, id", [RUNNING, at]
    )
    return [Experiment.from_row(r) for r in rows]


def conclude(db: sqlite_utils.Database, exp: Experiment, now: datetime | float) -> Experiment:
    """The verdict on an experiment that ran its course, stored and logged once: an experiment
    already concluded (a retry, or a stop that came first) is returned as stored, unchanged. One
    still running before its end is refused: ``stop`` judges an experiment early.

    Judged only when the metric's sources are current to the end (``waiting_for``). Until then it is
    returned still running, and the scheduler asks again at its next run; ``SYNC_WAIT`` after the end
    it is concluded *not enough data for a verdict*, with the reason."""
    at = _instant(now)
    current = get(db, exp.id, ws=exp.workspace)
    if current is not None and current.running and at < current.ends:
        raise VsmError(f"experiment #{exp.id} runs until {iso(current.ends)}: stop it to judge it early")
    waiting = current is not None and current.running and at < current.ends + SYNC_WAIT.total_seconds()
    if waiting and waiting_for(db, current):
        return current
    return _finish(db, exp, at, CONCLUDED, BOT, pressed=False)


def stop(
    db: sqlite_utils.Database,
    experiment_id: int | str,
    team: Team | str,
    who: str,
    now: datetime | float,
    *,
    ws: Workspace = SINGLE,
) -> Experiment:
    """Stop a running experiment early: the verdict on the data so far (the window judged ends now,
    or at the last sync, the one before it has the same length), marked as stopped early, logged
    with who stopped it.
    Only the team's own experiment can be stopped by it, in its own workspace ``ws`` (another
    workspace's team of the same name has no experiment here); one that is over raises VsmError.

    "The data so far" is what the sources have synced: the window judged ends at the oldest last
    success of the metric's streams when that is before the press (``pressed_until``), silently when
    the sync is on its schedule (hours old), said in the verdict when a source lags (failed since its
    last success, or that success is more than ``SYNC_TOLERANCE`` before the press). Refusing instead would leave a team that decided to stop with an experiment
    it cannot stop for as long as a token stays expired, which it may not be able to fix; judging
    "now" would count the unsynced days as empty. Pressed after the end (an old button), it ran
    its course: judged as the scheduled run judges it, to its end, and while its data is not in yet
    (``waiting_for``, within ``SYNC_WAIT``) nothing changes and ``Waiting`` says why. Stopped within
    ``MIN_RUN`` of its start, it ends with no verdict and no figures, rather than being refused: a
    team that started one by mistake can stop it at once and start the right one."""
    at = _instant(now)
    who = _who(who)
    eid = experiment_id if isinstance(experiment_id, int) and not isinstance(experiment_id, bool) else None
    if isinstance(experiment_id, str) and _EXPERIMENT_ID.fullmatch(experiment_id.strip()):
        eid = int(experiment_id.strip())
    name = team.name if isinstance(team, Team) else str(team)
    exp = get(db, eid, ws=ws) if eid is not None and 0 < eid < 2**63 else None
    if exp is None or exp.team.lower() != name.lower():
        said = f"#{eid}" if eid is not None else shown(experiment_id)
        raise VsmError(f"{name} has no experiment {said}")
    if not exp.running:
        raise VsmError(f"experiment #{exp.id} is over already ({exp.verdict})")
    if at <= exp.started:
        raise VsmError(f"experiment #{exp.id} has not started yet")
    if at >= exp.ends:
        # Pressed after the end (an old button): it ran its course, so it is not stopped early. It
        # is judged as the scheduled run judges it, to its end once its data is in; until then it is
        # left running and the press is told what the verdict waits for.
        waits = at < exp.ends + SYNC_WAIT.total_seconds() and waiting_for(db, exp)
        if waits:
            raise Waiting(exp, waits, at)
        done = _finish(db, exp, at, CONCLUDED, who, pressed=False)
    else:
        done = _finish(db, exp, at, STOPPED, who, pressed=True)
    if done.running or done.concluded_at != at:
        raise VsmError(f"experiment #{exp.id} is over already ({done.verdict})")
    return done


class Waiting(VsmError):
    """A Stop pressed after the experiment's end while its data is not in yet: nothing is changed,
    and the words say when its verdict comes."""

    def __init__(self, exp: Experiment, reason: str, at: float) -> None:
        latest = _day(exp.ends + SYNC_WAIT.total_seconds(), exp.timezone, at)
        super().__init__(
            f"experiment #{exp.id} on {words(exp.metric_name)} ended on {_day(exp.ends, exp.timezone, at)}, "
            f"so it is not stopped early: its verdict on the whole run waits for the data ({reason}) and "
            f"is posted to the team's channel when it arrives, at the latest on {latest}"
        )
        self.experiment = exp
        self.reason = reason


def pressed_until(sources: list[Source], exp: Experiment, at: float) -> tuple[float, str | None]:
    """The end of the window a press of Stop at ``at`` judges (and the digest's "so far"), and why it
    is cut short in words (None: it is not, or only by a healthy schedule). It ends at the press,
    or at the oldest last success of the metric's streams when that is earlier: what has not synced
    yet is unknown, not "no activity" (a daily sync 23 hours old would otherwise push a count down
    by a tenth). The cut is said only when a source lags (``Source.lags``: never synced, failed
    since its last success, or that success more than ``SYNC_TOLERANCE`` old); a sync a few hours
    old on its schedule costs only those hours. Never before the start."""
    until = min(at, exp.ends)
    short = behind(sources, until)
    if not short:
        return until, None
    synced = synced_until(short)
    cut = exp.started if synced is None else max(exp.started, min(synced, until))
    late = [s for s in short if s.lags(until, at)]
    return cut, (lag_reason(late, exp, until) if late else None)


def _judge(
    db: sqlite_utils.Database, exp: Experiment, team: Team, metric: Metric, at: float, pressed: bool
) -> tuple[float, str, str, dict, list[dict]]:
    """(until, verdict, detail, result, north star) for ``exp`` judged at ``at``. Scheduled
    (``pressed`` False), to its end (``conclude`` has waited for the data; still behind, no verdict
    and no figures). Pressed (Stop), to the press or the end, cut at the last sync of a source that
    lags (``pressed_until``), said. A window under ``MIN_RUN`` compares nothing: no verdict, no
    figures, rather than "0 in the 0.0 hours before"."""
    sources = sources_of(db, team, metric)
    extra: dict = {}
    reason = None
    if not pressed:
        until = exp.ends
        if behind(sources, until):
            reason = lag_reason(sources, exp, until)
            return until, NOT_ENOUGH, f"{NOT_ENOUGH}: {reason}", {"unjudged": reason}, []
    else:
        until, reason = pressed_until(sources, exp, at)
        if reason:
            extra = {"judged_to_sync": {"until": iso(until), "reason": reason}}
    if until - exp.started < MIN_RUN.total_seconds():
        if reason:
            return until, NOT_ENOUGH, f"{NOT_ENOUGH}: {reason}", {"unjudged": reason}, []
        if min(at, exp.ends) - exp.started >= MIN_RUN.total_seconds():
            # Pressed after a day, but the last scheduled sync fell within the first one.
            t = _local(until, exp.timezone)
            short = f"its data has synced only to {_day(until, exp.timezone, at)} {t:%H:%M}, less than a day into it"
            return until, NOT_ENOUGH, f"{NOT_ENOUGH}: {short}", {"unjudged": short}, []
        return until, NOT_ENOUGH, f"{NOT_ENOUGH}: {TOO_SOON}", {"too_soon": TOO_SOON}, []
    before, during = windows(exp, until)
    data = TeamData(db, team, at)
    c = compare(metric, data, before, during)
    north = _north_star(db, data, before, during, ws=exp.workspace)
    return until, c.verdict, c.detail, c.result() | extra, north


def _finish(
    db: sqlite_utils.Database, exp: Experiment, at: float, state: str, who: str, pressed: bool
) -> Experiment:
    """Judge ``exp`` (``_judge``), then store it only if it is still running, with its settings-log
    row, in one transaction."""
    current = get(db, exp.id, ws=exp.workspace)
    if current is None or not current.running:
        return current or exp
    metric = CATALOGUE.get(current.metric)
    try:
        team = get_team(db, current.team, ws=current.workspace)
    except VsmError:
        team = None
    if team is None or metric is None or judged_by(metric) is None:
        until = min(at, current.ends) if pressed else current.ends
        verdict, detail = NOT_ENOUGH, f"{NOT_ENOUGH}: the team or its metric no longer exists"
        result: dict = {}
        north: list[dict] = []
    else:
        until, verdict, detail, result, north = _judge(db, current, team, metric, at, pressed)
    with transaction(db):
        cursor = db.execute(
            "update experiments set state = ?, verdict = ?, detail = ?, measured_until = ?, result = ?, "
            "north_star = ?, concluded_at = ? where id = ? and state = ?",
            [
                state,
                verdict,
                detail,
                until,
                json.dumps(result, allow_nan=False),
                json.dumps(north, allow_nan=False),
                at,
                current.id,
                RUNNING,
            ],
        )
        if cursor.rowcount == 1:
            early = f"stopped experiment {_said(current)} early"
            what = early if state == STOPPED else f"experiment {_said(current)} ended"
            log_change(
                db,
                current.team,
                now_iso(),
                who,
                f"{what}: {verdict}",
                {"experiment": [RUNNING, {"id": current.id, "state": state, "verdict": verdict}]},
                ws=current.workspace,
            )
    return get(db, current.id, ws=current.workspace)  # type: ignore[return-value]


def experiments(db: sqlite_utils.Database, team: Team | str, *, ws: Workspace = SINGLE) -> list[Experiment]:
    """The team's experiments (the team of workspace ``ws``), running and concluded, newest first
    (``vsm experiments``). Reads only."""
    name = _team(db, team, ws=ws).name
    rows = db.query(
        "select * from experiments where workspace = ? and team = ? order by started desc, id desc",
        [ws, name],
    )
    return [Experiment.from_row(r) for r in rows]


def running(db: sqlite_utils.Database, team: Team | str, *, ws: Workspace = SINGLE) -> list[Experiment]:
    """The team's running experiments, oldest first: what its digest shows in progress."""
    return [e for e in reversed(experiments(db, team, ws=ws)) if e.running]


def concluded_between(
    db: sqlite_utils.Database, since: float, until: float, *, ws: Workspace = SINGLE
) -> list[Experiment]:
    """Every team's experiments in workspace ``ws`` concluded (run to their end or stopped) in
    ``[since, until)``, by team name then time: what the org digest lists with their verdicts (teams
    by name, never ranked)."""
    rows = db.query(
        "select * from experiments where workspace = ? and state != ? and concluded_at >= ? "
        "and concluded_at < ? order by team, concluded_at, id",
        [ws, RUNNING, float(since), float(until)],
    )
    return [Experiment.from_row(r) for r in rows]


def concluded_for(
    db: sqlite_utils.Database, team: str, since: float, until: float, *, ws: Workspace = SINGLE
) -> list[Experiment]:
    """One team's experiments (the team of workspace ``ws``) concluded in ``[since, until)``, oldest
    first: what its digest lists. Filtered in SQL by workspace and team (the ``workspace, team,
    started`` index serves it), so a digest reads only its own team's rows however many teams the
    organisation has."""
    rows = db.query(
        "select * from experiments where workspace = ? and team = ? and state != ? and concluded_at >= ? "
        "and concluded_at < ? order by concluded_at, id",
        [ws, team, RUNNING, float(since), float(until)],
    )
    return [Experiment.from_row(r) for r in rows]


def progress(
    db: sqlite_utils.Database,
    exp: Experiment,
    now: datetime | float,
    data: TeamData | None = None,
    *,
    ws: Workspace = SINGLE,
) -> Progress:
    """A running experiment's metric so far against the same length of time just before it, for the
    digest: the same comparison ``stop`` would judge now (``pressed_until``: to now, or to the last
    sync of a source that lags, with why in ``lag``), without the test. The figures only.

    Past its end it is waiting for its verdict: no figures (weeks a sync has not filled would drag
    them down), only ``waiting``, why (``waiting_for``; None when the data is current and the next
    scheduled run concludes it). ``data``: the team's data already loaded as of ``now`` (the
    digest's), so a digest showing its experiments loads the team once. ``ws``: the asking
    workspace; another workspace's experiment is refused."""
    at = _instant(now)
    if exp.workspace != ws:
        raise VsmError(f"experiment #{exp.id} is not one of {shown_ws(ws)}'s")
    metric = CATALOGUE.get(exp.metric)
    if metric is None or judged_by(metric) is None:
        raise VsmError(f"experiment #{exp.id}: its metric {exp.metric!r} cannot be judged")
    if at >= exp.ends:
        return Progress(exp, {}, {}, False, 7 * exp.weeks, ended=True, waiting=waiting_for(db, exp))
    data = data if data is not None else TeamData(db, _team(db, exp.team, ws=ws), at)
    until, lag = pressed_until(sources_of(db, data.team, metric), exp, at)
    before, during = windows(exp, until)
    c = compare(metric, data, before, during)
    return Progress(exp, c.before, c.during, c.enough, (at - exp.started) / 86400, lag=lag)
