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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from metrics import stats
from metrics.dataset import TeamData
from metrics.timeutil import WEEK, Window, iso, local_midnight

DURATION, COUNT, RATE, CUSTOM = "duration", "count", "rate", "custom"
LOW_SAMPLE = 5
BASELINE_WEEKS = 20  # XmR baseline: 12–20 completed weeks before the current period
MIN_BASELINE_WEEKS = 12


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
    signal: str | None = None  # plain-language signal, None = within normal variation
    extra: dict = field(default_factory=dict)

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
            "notes": self.notes,
            "extra": self.extra,
            "items": list(self.items),
        }


def low_sample_note(result: Result) -> list[str]:
    return [f"low sample: {result.sample_size} observations"] if result.low_sample else []


def hours(seconds: float) -> float:
    return round(seconds / 3600, 4)


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


def baseline_window(window: Window) -> Window:
    """The 20 local weeks before the window's first week (the XmR and two-sample baseline)."""
    first = window.week_starts()[0]
    start = first - timedelta(weeks=BASELINE_WEEKS)
    return Window(local_midnight(start, window.tz), local_midnight(first, window.tz))


class Metric:
    id: str = ""
    name: str = ""
    unit: str = ""
    better: str = ""  # lower | higher | context | ≈ 0 | —
    family: str = ""
    definition: str = ""
    kind: str = CUSTOM

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
        base = baseline_window(window)
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
            point = self.weekly(between(s, e))
            series.append(
                {"week": datetime.fromtimestamp(s, window.tz).date().isoformat(), "value": point}
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
        result.signal = self.signal(obs, window, base, data.now)
        if notes:  # they were counted over the whole loaded range: say only what the window holds
            result.notes = self.notes_for(data, window)
        result.notes += low_sample_note(result)
        return result

    def notes_for(self, data: TeamData, window: Window) -> list[str]:
        """Data-quality notes for the window alone (the data loads are cached, so this is cheap)."""
        return self.observations(data, window.start, window.end)[1]

    def signal(self, obs: list[Observation], window: Window, base: Window, now: float) -> str | None:
        """XmR rules on completed weekly points, else a two-sample test of window vs baseline.
        ``obs`` is sorted by time (``compute`` sorts it)."""
        between = _slicer(obs)

        def points(w: Window) -> list[float]:
            out = []
            for s, e, complete in series_weeks(w, now):
                if not complete or s < w.start or s >= w.end:
                    continue
                v = self.weekly(between(s, e))
                if v is not None:
                    out.append(v)
            return out

        baseline, current = points(base), points(window)
        if len(baseline) >= MIN_BASELINE_WEEKS and current:
            rule = stats.xmr_signal(baseline, current)
            if rule:
                return rule
        in_base = [o.value for o in between(base.start, base.end)]
        in_window = [o.value for o in between(window.start, window.end)]
        if self.kind == DURATION:
            p = stats.mann_whitney_p(in_window, in_base)
            if p is not None and p < stats.ALPHA:
                up = (stats.median(in_window) or 0) > (stats.median(in_base) or 0)
                return (
                    f"{'longer' if up else 'shorter'} than the previous 20 weeks (Mann–Whitney p = {p:.3f})"
                )
        if self.kind == RATE:
            p = stats.fisher_p(int(sum(in_window)), len(in_window), int(sum(in_base)), len(in_base))
            if p is not None and p < stats.ALPHA:
                up = sum(in_window) / len(in_window) > sum(in_base) / len(in_base)
                return f"{'higher' if up else 'lower'} than the previous 20 weeks (Fisher p = {p:.3f})"
        return None


__all__ = ["Metric", "Observation", "Result", "DURATION", "COUNT", "RATE", "CUSTOM", "WEEK"]
