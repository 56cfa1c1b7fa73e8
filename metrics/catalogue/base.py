"""What every metric is, and the shared aggregation that most of them need.

A metric is a small class with its catalogue entry (id, name, unit, better direction, one-line
definition) and one job: ``observations`` lists what happened (one per done item, merged PR,
deployment...), each placed in time by its end event. The ``kind`` then decides how observations
become a figure, a previous-period figure, a weekly series and a signal, identically for every metric
of that kind. Metrics that are not a plain aggregation (WIP, forecast, sprint figures) override
``compute``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial

from metrics import stats
from metrics.dataset import TeamData
from metrics.timeutil import WEEK, Window, iso, local_midnight, week_start

DURATION, COUNT, RATE, CUSTOM = "duration", "count", "rate", "custom"
LOW_SAMPLE = 5
BASELINE_WEEKS = 20  # XmR baseline: 12–20 completed weeks before the current period
MIN_BASELINE_WEEKS = 12
# The sources a metric's history can come from (``Metric.history``, ``TeamData.history_start``).
ITEMS, PRS, DEPLOYMENTS, INCIDENTS, SPRINTS = "items", "prs", "deployments", "incidents", "sprints"


@dataclass
class Observation:
    at: float  # the end event that places it in a window (done, merge, deploy finish, resolution)
    value: float  # seconds for durations; 1 or 0 for rates; 1 for counts
    item: dict | Callable[[], dict]  # JSON-ready: what Explain lists; a callable is built only if shown

    def explain(self) -> dict:
        return self.item() if callable(self.item) else self.item


class LazyItems(Sequence):
    """The items behind a figure, built on first use: a digest shows figures, not their items, and
    turning thousands of observations into JSON-ready dicts is most of a small metric's time."""

    def __init__(self, build: Callable[[], list[dict]]):
        self._build: Callable[[], list[dict]] | None = build
        self._items: list[dict] = []

    def _get(self) -> list[dict]:
        if self._build is not None:
            self._items, self._build = self._build(), None
        return self._items

    def __getitem__(self, index):
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __eq__(self, other) -> bool:
        return self._get() == (list(other) if isinstance(other, Sequence) else other)

    def __repr__(self) -> str:
        return repr(self._get())


@dataclass
class Result:
    metric: str
    team: str
    window: Window
    value: object
    unit: str
    sample_size: int
    previous: object
    series: list[dict]
    items: Sequence[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # data-quality notes, shown beside the figure
    signal: str | None = None  # plain-language signal, None = within normal variation (or not tested)
    extra: dict = field(default_factory=dict)
    # Why no signal could be given (e.g. "not enough history for a signal (7 weeks)"), so that a null
    # signal is never read as "within normal variation" when the rules could not be applied.
    signal_note: str | None = None
    # The XmR limits the verdict used: what any chart of the series draws (see ``xmr_verdict``).
    limits: dict | None = None

    def judged(self, verdict: Verdict) -> Result:
        """The figure with the signal rules' verdict on it."""
        self.signal, self.signal_note, self.limits = verdict.signal, verdict.note, verdict.limits
        return self

    @property
    def low_sample(self) -> bool:
        return 0 < self.sample_size < LOW_SAMPLE

    def to_json(self) -> dict:
        return {
            "metric": self.metric,
            "team": self.team,
            "since": iso(self.window.start),
            "until": iso(self.window.end),
            "value": self.value,
            "unit": self.unit,
            "sample_size": self.sample_size,
            "low_sample": self.low_sample,
            "previous": self.previous,
            "series": self.series,
            "signal": self.signal,
            "signal_note": self.signal_note,
            "limits": self.limits,
            "notes": self.notes,
            "extra": self.extra,
            "items": list(self.items),
        }


def low_sample_note(result: Result) -> list[str]:
    return [f"low sample: {result.sample_size} observations"] if result.low_sample else []


def hours(seconds: float) -> float:
    return round(seconds / 3600, 4)


def one_decimal(x: float) -> str:
    """Half-up at one decimal, as every figure is shown (the bot's formats and the catalogue's notes)."""
    return str(Decimal(repr(float(x))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def span(ref: dict, start: float, end: float, **extra) -> Observation | None:
    """A duration observation placed at its end, explained as ``ref`` + start, end and hours; None
    when it is negative (clock skew, bad data), which the caller counts as a data-quality note."""
    seconds = end - start
    if seconds < 0:
        return None
    return Observation(end, seconds, partial(_span_item, ref, start, end, seconds, extra))


def _span_item(ref: dict, start: float, end: float, seconds: float, extra: dict) -> dict:
    return ref | {"start": iso(start), "end": iso(end), "hours": hours(seconds)} | extra


def duration_value(values_s: list[float]) -> dict | None:
    """p50 and p85 in hours, or None for an empty sample (never 0)."""
    if not values_s:
        return None
    return {"p50": hours(stats.percentile(values_s, 0.5)), "p85": hours(stats.percentile(values_s, 0.85))}


def _at(o: Observation) -> float:
    return o.at


def _slicer(obs: list[Observation]) -> Callable[[float, float], list[Observation]]:
    """``between(s, e)``: the observations with ``s <= at < e`` of a time-sorted list."""
    ats = [o.at for o in obs]

    def between(s: float, e: float) -> list[Observation]:
        return obs[bisect_left(ats, s) : bisect_left(ats, e)]

    return between


def series_weeks(window: Window, now: float) -> list[tuple[float, float, bool]]:
    """(start, end, complete) of each local week overlapping the window; complete = ended by ``now``."""
    out = []
    for monday in window.week_starts():
        s = local_midnight(monday, window.tz).timestamp()
        e = local_midnight(monday + timedelta(days=7), window.tz).timestamp()
        out.append((s, e, e <= now))
    return out


def baseline_window(window: Window, history_start: float | None = float("-inf")) -> Window:
    """The up to 20 local weeks before the window's first week (the XmR and two-sample baseline),
    from the week holding ``history_start`` on: weeks before a source's history began are unknown, not
    zeros, and zero-filled they would make every ordinary week look high. ``None`` (no history at all)
    gives an empty baseline."""
    first = window.week_starts()[0]
    start = first - timedelta(weeks=BASELINE_WEEKS)
    if history_start is None:
        start = first
    elif history_start > local_midnight(start, window.tz).timestamp():
        start = min(first, week_start(history_start, window.tz))
    return Window(local_midnight(start, window.tz), local_midnight(first, window.tz))


def local_day(ts: float, window: Window) -> date:
    """The team-local date of an instant (of a week start: its Monday)."""
    return datetime.fromtimestamp(ts, window.tz).date()


def tested_points(points: Iterable[tuple[float, float | None, bool]], w: Window) -> list[tuple[date, float]]:
    """(Monday, value) of the weekly points the rules test, from (week start, value, complete): complete
    weeks that start inside ``w`` and have a value. A partial current week always looks low, and a week
    begun before the window is not the window's."""
    return [
        (local_day(s, w), v)
        for s, v, complete in points
        if complete and w.start <= s < w.end and v is not None
    ]


def last_tested_week(w: Window, now: float) -> date | None:
    """The period's last completed week: a run ending there is "recent"."""
    weeks = [s for s, _e, complete in series_weeks(w, now) if complete and s >= w.start]
    return local_day(weeks[-1], w) if weeks else None


def not_enough_history(weeks: int) -> str:
    return f"not enough history for a signal ({weeks} weeks)"


def too_few_points(points: int, weeks: int) -> str:
    return f"too few weeks with data for a signal ({points} of {weeks} weeks)"


@dataclass(frozen=True)
class Verdict:
    """What the signal rules said of a figure, why they could not speak, and the limits they used."""

    signal: str | None = None
    note: str | None = None
    limits: dict | None = None


def xmr_verdict(
    base: Window,
    baseline: list[tuple[date, float]],
    current: list[tuple[date, float]],
    last_week: date | None,
    bounds: tuple[bool, float | None] = (True, None),
) -> Verdict:
    """docs/metrics.md's XmR rules on (Monday, value) points against the ``baseline`` points of ``base``.
    Fewer than 12 weeks of history in ``base`` (or, for a sparse series, fewer than 12 weeks with a
    point) give no verdict but a note saying so, so that "no signal" is never read as "within normal
    variation". Otherwise the limits are kept with the verdict: a chart draws the very lines the
    verdict was judged against. ``bounds``: (floor at 0, ceiling) of the limits."""
    weeks = base.days // 7
    if weeks < MIN_BASELINE_WEEKS:
        return Verdict(note=not_enough_history(weeks))
    if len(baseline) < MIN_BASELINE_WEEKS:
        return Verdict(note=too_few_points(len(baseline), weeks))
    values = [v for _w, v in baseline]
    lim = stats.xmr_limits(values, *bounds)
    limits = {
        "centre": round(lim.centre, 4),
        "upper": round(lim.upper, 4),
        "lower": round(lim.lower, 4),
        "baseline_weeks": [w.isoformat() for w, _v in baseline],
    }
    finding = stats.xmr_finding(values, [v for _w, v in current], lim)
    if finding is None:
        return Verdict(limits=limits)
    end = current[finding.end][0]
    return Verdict(stats.wording(finding, end, end == last_week), limits=limits)


def previous_weeks(base: Window) -> str:
    """How a two-sample verdict names its baseline: "the previous 20 weeks", or fewer when the history
    is shorter."""
    return f"the previous {base.days // 7} weeks"


class Metric:
    id: str = ""
    name: str = ""
    unit: str = ""
    better: str = ""  # lower | higher | context | ≈ 0 | —
    family: str = ""
    definition: str = ""
    kind: str = CUSTOM
    # The sources the metric's history comes from (ITEMS, PRS, ...): its baseline starts no earlier
    # than the first week in which all of them have data for the team.
    history: tuple[str, ...] = ()

    def entry(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "unit": self.unit,
            "better": self.better,
            "family": self.family,
            "definition": self.definition,
        }

    # -- to implement ------------------------------------------------------------------------------
    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        """Observations with ``start <= at < end``, and data-quality notes."""
        raise NotImplementedError

    # -- shared aggregation ----------------------------------------------------------------------------
    def aggregate(self, obs: list[Observation], window: Window) -> object:
        values = [o.value for o in obs]
        if self.kind == DURATION:
            return duration_value(values)
        if self.kind == COUNT:
            return round(len(obs) / window.weeks, 4) if window.weeks else None
        if self.kind == RATE:
            return round(100 * sum(values) / len(values), 4) if values else None
        raise NotImplementedError(self.kind)

    def weekly_p85(self, obs: list[Observation]) -> float | None:
        """The week's p85 in hours, for durations: their target is judged on p85, so a chart draws the
        target against this line rather than against the weekly median the limits are about."""
        values = [o.value for o in obs]
        return hours(stats.percentile(values, 0.85)) if values else None

    @property
    def judged_on_p85(self) -> bool:
        return self.kind == DURATION

    def bounds(self) -> tuple[bool, float | None]:
        """(floor at 0, ceiling) of the process limits: counts cannot go below 0, rates past 100%."""
        return True, (100.0 if "%" in self.unit else None)

    def baseline(self, data: TeamData, window: Window) -> Window:
        """The baseline window, from the first week in which the metric's sources have data."""
        return baseline_window(window, data.history_start(self.history))

    def weekly(self, obs: list[Observation]) -> float | None:
        """One week's point: count, median hours, or percentage (zero-filled for counts)."""
        values = [o.value for o in obs]
        if self.kind == COUNT:
            return float(len(obs))
        if not values:
            return None
        if self.kind == DURATION:
            return hours(stats.median(values))
        return round(100 * sum(values) / len(values), 4)

    def compute(self, data: TeamData, window: Window) -> Result:
        base = self.baseline(data, window)
        prev = window.previous()
        start = min(base.start, prev.start)
        obs, notes = self.observations(data, start, window.end)
        # Sorted once, every window and week below is a slice found by bisection, not a scan.
        obs.sort(key=_at)
        between = _slicer(obs)
        current = between(window.start, window.end)
        previous = between(prev.start, prev.end)
        series = []
        for s, e, complete in series_weeks(window, data.now):
            week = between(s, e)
            series.append(
                {"week": local_day(s, window).isoformat(), "value": self.weekly(week)}
                | ({"p85": self.weekly_p85(week)} if self.judged_on_p85 else {})
                | ({} if complete else {"partial": True})
            )
        result = Result(
            metric=self.id,
            team=data.team.name,
            window=window,
            value=self.aggregate(current, window),
            unit=self.unit,
            sample_size=len(current),
            previous=self.aggregate(previous, prev),
            series=series,
            items=LazyItems(lambda: [o.explain() for o in current]),
            notes=notes,
        )
        result.judged(self.signal(obs, window, base, data.now))
        if notes:  # they were counted over the whole loaded range: say only what the window holds
            result.notes = self.notes_for(data, window)
        result.notes += low_sample_note(result)
        return result

    def notes_for(self, data: TeamData, window: Window) -> list[str]:
        """Data-quality notes for the window alone (the data loads are cached, so this is cheap)."""
        return self.observations(data, window.start, window.end)[1]

    def signal(self, obs: list[Observation], window: Window, base: Window, now: float) -> Verdict:
        """XmR rules on the completed weekly points, else a two-sample test of window vs baseline
        (which may speak even when the history is too short for XmR). ``obs`` is sorted by time
        (``compute`` sorts it); ``base`` starts no earlier than the metric's history."""
        between = _slicer(obs)

        def points(w: Window) -> list[tuple[date, float]]:
            weeks = series_weeks(w, now)
            return tested_points(((s, self.weekly(between(s, e)), c) for s, e, c in weeks), w)

        last_week = last_tested_week(window, now)
        verdict = xmr_verdict(base, points(base), points(window), last_week, self.bounds())
        if verdict.signal:
            return verdict
        in_base = [o.value for o in between(base.start, base.end)]
        in_window = [o.value for o in between(window.start, window.end)]
        two_sample = self.two_sample(in_window, in_base, base)
        return replace(verdict, signal=two_sample, note=None) if two_sample else verdict

    def two_sample(self, in_window: list[float], in_base: list[float], base: Window) -> str | None:
        """Mann–Whitney for durations, Fisher's exact for rates (docs/metrics.md), worded, or None."""
        if self.kind == DURATION:
            p = stats.mann_whitney_p(in_window, in_base)
            if p is not None and p < stats.ALPHA:
                up = (stats.median(in_window) or 0) > (stats.median(in_base) or 0)
                return (
                    f"{'longer' if up else 'shorter'} than {previous_weeks(base)} (Mann–Whitney p = {p:.3f})"
                )
        if self.kind == RATE:
            p = stats.fisher_p(int(sum(in_window)), len(in_window), int(sum(in_base)), len(in_base))
            if p is not None and p < stats.ALPHA:
                up = sum(in_window) / len(in_window) > sum(in_base) / len(in_base)
                return f"{'higher' if up else 'lower'} than {previous_weeks(base)} (Fisher p = {p:.3f})"
        return None


__all__ = ["Metric", "Observation", "Result", "Verdict", "DURATION", "COUNT", "RATE", "CUSTOM", "WEEK"]
