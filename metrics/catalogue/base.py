"""What every metric is, and the shared aggregation that most of them need.

A metric is a small class with its catalogue entry (id, name, unit, better direction, one-line
definition) and one job: ``observations`` lists what happened (one per done item, merged PR,
deployment...), each placed in time by its end event. The ``kind`` then decides how observations
become a figure, a previous-period figure, a weekly series and a signal, identically for every metric
of that kind. Metrics that are not a plain aggregation (WIP, forecast, sprint figures) override
``compute``.

No data is never a figure (docs/metrics.md "No data is not zero", "Windows", "Signal versus noise").
A figure is *unknown* when the team's scope names no source for it, the source was never synced, or
the period lies before the synced history began: its value and previous figure are None (null in
JSON, never 0), its weekly points are None (unknown, not zero-filled weeks), no signal is tested, so
no target is judged and no target nudge is sent (``metrics.targets.target_status`` judges only a
value; ``metrics.nudges`` skips unknown figures), and ``no_data_reason`` says why (``unknown``).
The same holds for the weeks of a known figure's series that lie before the first week of its
history (``Metric.described``), and for a figure whose events are known but whose judge is not
(deployments with no incident source synced: no change can count as failed, so change failure rate
is unknown, not 0%). When the data is known and nothing happened (a synced scope, no item finished),
a count or a rate is a real 0, judged as such, and ``no_data_reason`` says what did not happen
("no items finished in this period").
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
from metrics.store.sync_status import freshness
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
    # The statistics behind ``signal`` (the rule, limits and X̄, or the test, its p-value and n a
    # side): ``signal`` is one line a team lead reads, this is what Explain shows to whoever asks.
    signal_detail: str | None = None
    # Which way ``signal`` says the figure went: True up, False down, None without a signal. Set by
    # the rule that found it (XmR, Mann–Whitney, Fisher), so whether it got better or worse is read
    # from the finding, never from the words ``signal`` happens to be written in.
    signal_up: bool | None = None
    # Why ``previous`` is None although the previous period has passed: it began before this team's
    # history did ("no earlier data"), so its figure is unknown, not zero (``Metric.described``).
    previous_note: str | None = None
    # With ``sample_size == 0``, the likely reason in plain words (an empty scope, a source not synced
    # yet, nothing finished), so that an empty figure never reads as a calm one.
    no_data_reason: str | None = None

    def judged(self, verdict: Verdict) -> Result:
        """The figure with the signal rules' verdict on it."""
        self.signal, self.signal_note, self.limits = verdict.signal, verdict.note, verdict.limits
        self.signal_detail, self.signal_up = verdict.detail, verdict.signal_up
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
            "previous_note": self.previous_note,
            "series": self.series,
            "signal": self.signal,
            "signal_detail": self.signal_detail,
            "signal_note": self.signal_note,
            "no_data_reason": self.no_data_reason,
            "limits": self.limits,
            "notes": self.notes,
            "extra": self.extra,
            "items": list(self.items),
        }


def counted(n: int, things: str) -> str:
    """ "1 item", "4 items", "1 day sampled": ``things`` in the plural, its first plural word made
    singular for one (a data-quality note reads as a sentence, not as "1 items")."""
    if n == 1:
        words = things.split(" ")
        for i, w in enumerate(words):
            if w.endswith("s"):
                words[i] = w[:-1]
                break
        things = " ".join(words)
    return f"{n} {things}"


def be(n: int) -> str:
    return "is" if n == 1 else "are"


def low_sample_note(result: Result, what: str = "observations") -> list[str]:
    """Says how few observations a figure rests on, in the metric's own words ("only 3 items"): the
    "low sample" marker docs/metrics.md asks for, which a reader can act on (wait, or widen the period)."""
    return [f"low sample: only {counted(result.sample_size, what)}"] if result.low_sample else []


def duration_text(seconds: float) -> str:
    """docs/metrics.md's display of a duration: one decimal, hours below 24 h, else days."""
    h = seconds / 3600
    return f"{one_decimal(h)} h" if h < 24 else f"{one_decimal(h / 24)} d"


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


def slicer(obs: list[Observation]) -> Callable[[float, float], list[Observation]]:
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


NO_DATA = "no data in this period"  # a zero-sample figure's signal note: never "within normal variation"
NO_EARLIER_DATA = "no earlier data"  # the previous period began before the team's history did


@dataclass(frozen=True)
class Words:
    """How a metric's change is said to a team lead: the words for up and down ("slower"/"faster"
    for a duration, else "higher"/"lower"), whether up is better or worse by the metric's direction
    (said beside a word that does not say it itself), and the unit its statistics are written in."""

    up: str = "higher"
    down: str = "lower"
    up_is: str = ""  # "better", "worse", or "" for context metrics (WIP, net flow)
    unit: str = ""  # after a number in ``signal_detail``: " h", "%", " lines", or "" for counts

    def said(self, up: bool) -> str:
        """ "higher (worse)", "slower": the direction, judged where the metric has a better one."""
        word = self.up if up else self.down
        if not self.up_is:
            return word
        judged = self.up_is if up else {"better": "worse", "worse": "better"}[self.up_is]
        return f"{word} ({judged})"

    def number(self, x: float) -> str:
        """A weekly point or limit as the figure is shown: durations (in hours) in hours below a
        day, else days; anything else with its unit."""
        if self.unit == " h":
            return duration_text(x * 3600)
        return f"{one_decimal(x)}{self.unit}"


NEUTRAL = Words()


@dataclass(frozen=True)
class Verdict:
    """What the signal rules said of a figure (in plain words, with the statistics apart in
    ``detail``), why they could not speak, and the limits they used."""

    signal: str | None = None
    note: str | None = None
    limits: dict | None = None
    detail: str | None = None
    signal_up: bool | None = None  # which way ``signal`` went (True up), from the finding itself


def finding_up(finding: stats.Finding) -> bool:
    """Whether an XmR finding is above the centre line (a point above the upper limit, 3 of 4 in
    the upper zone, a run above), the one place its direction is decided."""
    return finding.rule in ("above", "high", "run above")


def plain_signal(finding: stats.Finding, end_week: date, recent: bool, words: Words = NEUTRAL) -> str:
    """One line a team lead understands: which way the weeks went, against what, and when. A point is
    named by its week; a run by the week it ends, "recent" only when that is the period's last
    completed week (docs/metrics.md)."""
    said = words.said(finding_up(finding))
    label = stats.week_label(end_week)
    if not finding.is_run:
        return f"{said} than its normal weekly range (week of {label})"
    now = "recent " if recent else ""
    if finding.rule in ("high", "low"):
        return f"{said} than usual in 3 of 4 {now}weeks, ending the week of {label}"
    return f"{said} than usual for 8 {now}weeks in a row, ending the week of {label}"


def xmr_detail(
    finding: stats.Finding,
    lim: stats.Limits,
    current: list[tuple[date, float]],
    recent: bool,
    baseline_weeks: int,
    words: Words = NEUTRAL,
) -> str:
    """The statistics behind an XmR signal: the rule (docs/metrics.md's wording), the value or zone
    it crossed, X̄, mR̄ and the natural process limits, and how many weeks the baseline holds."""
    n = words.number
    end_week, value = current[finding.end]
    rule = stats.wording(finding, end_week, recent)
    if not finding.is_run:
        rule = f"{rule} (week of {stats.week_label(end_week)}: {n(value)})"
    elif finding.rule in ("high", "low"):
        zone = lim.centre + (1.33 if finding.rule == "high" else -1.33) * lim.mr_bar
        rule = f"{rule} (beyond X̄ {'+' if finding.rule == 'high' else '−'} 1.33·mR̄ = {n(zone)})"
    return (
        f"XmR chart: {rule}; X̄ = {n(lim.centre)}, mR̄ = {n(lim.mr_bar)}, natural process limits "
        f"{n(lim.lower)} to {n(lim.upper)}, from {baseline_weeks} baseline weeks"
    )


def xmr_verdict(
    base: Window,
    baseline: list[tuple[date, float]],
    current: list[tuple[date, float]],
    last_week: date | None,
    bounds: tuple[bool, float | None] = (True, None),
    words: Words = NEUTRAL,
) -> Verdict:
    """docs/metrics.md's XmR rules on (Monday, value) points against the ``baseline`` points of ``base``.
    Fewer than 12 weeks of history in ``base`` (or, for a sparse series, fewer than 12 weeks with a
    point) give no verdict but a note saying so, so that "no signal" is never read as "within normal
    variation". Otherwise the limits are kept with the verdict: a chart draws the very lines the
    verdict was judged against. ``bounds``: (floor at 0, ceiling) of the limits; ``words``: how the
    metric's direction is said."""
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
    recent = end == last_week
    return Verdict(
        plain_signal(finding, end, recent, words),
        limits=limits,
        detail=xmr_detail(finding, lim, current, recent, len(baseline), words),
        signal_up=finding_up(finding),
    )


def previous_weeks(base: Window) -> str:
    """How a two-sample verdict names its baseline: "the 20 weeks before", or fewer when the history
    is shorter."""
    weeks = base.days // 7
    return "the week before" if weeks == 1 else f"the {weeks} weeks before"


def mann_whitney_verdict(
    in_window: list[float],
    in_base: list[float],
    base: Window,
    words: Words,
    things: str,
    show: Callable[[float], str],
) -> Verdict | None:
    """Mann–Whitney U of this period's observations against the baseline's, worded, or None when
    it is not significant (or either side has fewer than 10). ``show`` writes a median in the
    metric's unit for the detail."""
    p = stats.mann_whitney_p(in_window, in_base)
    if p is None or p >= stats.ALPHA:
        return None
    mw, mb = stats.median(in_window) or 0, stats.median(in_base) or 0
    before = previous_weeks(base)
    return Verdict(
        f"{words.said(mw > mb)} than {before} ({things} in this period vs before)",
        signal_up=mw > mb,
        detail=(
            f"Mann–Whitney U test, two-sided, α = 0.05: {stats.p_text(p)}; median {show(mw)} in this period "
            f"(n = {len(in_window)}) vs {show(mb)} in {before} (n = {len(in_base)})"
        ),
    )


def fisher_verdict(
    hits: tuple[int, int], sizes: tuple[int, int], base: Window, words: Words, things: str
) -> Verdict | None:
    """Fisher's exact test of this period's share against the baseline's (``hits``/``sizes``: this
    period, then the baseline), worded, or None when not significant or under 10 a side."""
    p = stats.fisher_p(hits[0], sizes[0], hits[1], sizes[1])
    if p is None or p >= stats.ALPHA:
        return None
    share = [100 * h / n for h, n in zip(hits, sizes, strict=True)]
    before = previous_weeks(base)
    return Verdict(
        f"{words.said(share[0] > share[1])} than {before} ({things} in this period vs before)",
        signal_up=share[0] > share[1],
        detail=(
            f"Fisher's exact test, two-sided, α = 0.05: {stats.p_text(p)}; {one_decimal(share[0])}% in this "
            f"period ({hits[0]} of {sizes[0]}) vs {one_decimal(share[1])}% in {before} "
            f"({hits[1]} of {sizes[1]})"
        ),
    )


# -- why a figure has no data, and whether its previous period is known -------------------------------
# What a team's scope must name for each source to have data (a team with none of them has nothing
# to count), said as the reason a figure is empty.
NOT_IN_SCOPE = {
    ITEMS: "no Jira projects in this team's scope",
    PRS: "no repositories in this team's scope",
    DEPLOYMENTS: "no services or repositories in this team's scope",
    INCIDENTS: "no services or repositories in this team's scope",
    SPRINTS: "no Jira boards or projects in this team's scope",
}
# (table, what its rows are, what the team's scope names) per source.
STORED = {
    ITEMS: ("work_items", "Jira issues", "projects"),
    PRS: ("pull_requests", "pull requests", "repositories"),
    DEPLOYMENTS: ("deployments", "deployments", "services and repositories"),
    INCIDENTS: ("incidents", "incidents", "services and repositories"),
    SPRINTS: ("sprints", "sprints", "boards and projects"),
}


def in_scope(team, source: str) -> bool:
    """Whether the team's scope names anything the source could hold data for."""
    if source == ITEMS:
        return bool(team.jira_projects)
    if source == PRS:
        return bool(team.all_repos)
    if source == SPRINTS:
        return bool(team.boards or team.jira_projects)
    return bool(team.services or team.all_repos)


def tool_of(team, source: str) -> str:
    """The tool a source's rows come from, as a team knows it."""
    if source in (ITEMS, SPRINTS):
        return "Jira"
    if source == INCIDENTS:
        return "PagerDuty"
    tools = [t for t, named in (("GitHub", team.repos), ("GitLab", team.gitlab_projects)) if named]
    return " and ".join(tools) or "GitHub"


def not_synced(data: TeamData, source: str) -> str:
    """Why a source in the team's scope holds nothing for it: the store has never had a successful
    sync ("GitHub has not been synced yet"), or it holds rows, just none of this team's scope."""
    table, rows, scope = STORED[source]
    if source in (DEPLOYMENTS, INCIDENTS):  # say what the team names: "services", "repositories"
        named = [
            w for w, on in (("services", data.team.services), ("repositories", data.team.all_repos)) if on
        ]
        scope = " and ".join(named) or scope
    empty = data.db.execute(f"select 1 from {table} limit 1").fetchone() is None
    synced = any(f["as_of"] for f in freshness(data.db))
    if empty and not synced:
        return f"{tool_of(data.team, source)} has not been synced yet"
    return f"no {rows} synced yet for this team's {scope}"


def history_known_from(data: TeamData, sources: tuple[str, ...], since: float, tz) -> bool:
    """Whether every week from ``since`` on lies in the metric's history: ``since`` is on or after
    the first week in which its sources have data for the team (the week docs/metrics.md's XmR
    baseline starts from). Before that week a figure is unknown, not zero."""
    first = data.history_start(sources)
    return first is not None and since >= local_midnight(week_start(first, tz), tz).timestamp()


def before_history(result: Result, first: float | None) -> Result:
    """The weekly points of the weeks before the first week of the metric's history set to None:
    nobody observed them, and zero-filled they would draw a flat stretch (or a WIP of the items
    still open today) beside a figure as if the team had been idle. ``first`` is the history's first
    instant (``TeamData.history_start``); None means no history at all, so every point is unknown."""
    cut = None if first is None else week_start(first, result.window.tz)
    for p in result.series:
        if "week" in p and (cut is None or date.fromisoformat(p["week"]) < cut):
            p["value"] = None
            if "p85" in p:
                p["p85"] = None
    return result


def unknown(result: Result, reason: str) -> Result:
    """The figure as unknown rather than zero: the team's scope names no source for it, the source was
    never synced, or the period lies before the synced history. Nothing was observed, so nothing is
    reported: no value or previous figure (null in JSON, never 0), no weekly points (unknown, not
    zero-filled weeks), no signal, and so no target is judged and no target nudge is sent
    (``metrics.targets.target_status`` judges only a value). A figure whose sources are synced and
    in scope but saw nothing happen (no item finished) is a real zero and stays one."""
    result.value = result.previous = None
    result.sample_size = 0
    result.series = [{**p, "value": None} | ({"p85": None} if "p85" in p else {}) for p in result.series]
    result.signal, result.signal_detail, result.limits = None, None, None
    result.signal_up = None
    result.signal_note = NO_DATA
    result.no_data_reason = reason
    return result


FAILED = "its figures could not be computed just now (logged)"


def failed(metric_id: str, unit: str, team: str, window: Window) -> Result:
    """A team's figure whose computation raised (a damaged settings row, data no rule expected): an
    unknown figure saying so, so that one team's failure leaves every other team's figure, the org's
    pooled figure and the digests that show them standing. The caller logs the error."""
    return unknown(Result(metric_id, team, window, None, unit, 0, None, []), FAILED)


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
    # What one observation is, in the plural ("items", "deployments", "days sampled"): what n counts
    # wherever a figure is shown, and the words of its low-sample note and two-sample signal.
    things: str = "items"

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

    def words(self) -> Words:
        """How this metric's changes are said: a duration goes "slower"/"faster" (which says better
        or worse by itself); any other metric with a better direction says "(better)"/"(worse)"
        beside "higher"/"lower"; context metrics (WIP, net flow) only say which way."""
        if self.kind == DURATION:
            return Words("slower", "faster", "", " h")
        up_is = {"higher": "better", "lower": "worse"}.get(self.better, "")
        return Words(up_is=up_is, unit="%" if "%" in self.unit else "")

    def counted_from(self) -> tuple[str, ...]:
        """The sources without which the figure has no observations at all (the first of
        ``history`` unless a metric needs several): what ``no_data_reason`` checks."""
        return self.history[:1]

    def no_data_reason(self, data: TeamData, window: Window) -> str:
        """The likely reason a figure has no observations, in plain words, most basic first: the
        team's scope names nothing for a source, the source holds nothing for the scope yet, the
        period lies before the synced history, or nothing happened in it (``nothing``)."""
        return self.unknown_reason(data, window) or self.nothing

    def unknown_reason(self, data: TeamData, window: Window, empty: bool = True) -> str | None:
        """Why the figure cannot be known at all (``unknown``), or None when its sources are in the
        team's scope and synced for the period: then an empty period is a real zero. A figure with
        observations (``empty`` False) is unknown only for want of a source in scope or synced."""
        sources = self.counted_from()
        for source in sources:
            if not in_scope(data.team, source):
                return NOT_IN_SCOPE[source]
        for source in sources:
            if data.history_start((source,)) is None:
                return not_synced(data, source)
        if empty and sources and data.history_start(sources) >= window.end:
            return "this period is before the synced history begins"
        return None

    def described(self, result: Result, data: TeamData, since: float | None = None) -> Result:
        """The figure with what it cannot say, said: ``previous_note`` when the previous period
        (from ``since``, by default its start) begins before the team's history for this metric
        did, and ``no_data_reason`` with a "no data in this period" signal note when it is empty.

        The previous figure is unknown as soon as the previous period *starts* before the first week
        with data, not only when most of it does: any part of it before the history would be counted
        as zeros nobody observed, and a change against invented zeros ("↑ 220%") is worse than none.
        """
        if self.history and not history_known_from(
            data, self.history, result.window.previous().start if since is None else since, result.window.tz
        ):
            result.previous, result.previous_note = None, NO_EARLIER_DATA
        if self.history:
            before_history(result, data.history_start(self.history))
        missing = self.unknown_reason(data, result.window, empty=result.sample_size == 0)
        if missing:  # even a figure that counts days (WIP) knows nothing of a source it never saw
            unknown(result, missing)
        elif result.sample_size == 0:
            result.no_data_reason = self.nothing
            if result.signal is None and result.signal_note is None:
                result.signal_note = NO_DATA
        return result

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
        between = slicer(obs)
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
        result.notes += low_sample_note(result, self.things)
        return self.described(result, data)

    def notes_for(self, data: TeamData, window: Window) -> list[str]:
        """Data-quality notes for the window alone (the data loads are cached, so this is cheap)."""
        return self.observations(data, window.start, window.end)[1]

    def signal(self, obs: list[Observation], window: Window, base: Window, now: float) -> Verdict:
        """XmR rules on the completed weekly points, else a two-sample test of window vs baseline
        (which may speak even when the history is too short for XmR). ``obs`` is sorted by time
        (``compute`` sorts it); ``base`` starts no earlier than the metric's history."""
        between = slicer(obs)

        def points(w: Window) -> list[tuple[date, float]]:
            weeks = series_weeks(w, now)
            return tested_points(((s, self.weekly(between(s, e)), c) for s, e, c in weeks), w)

        last_week = last_tested_week(window, now)
        verdict = xmr_verdict(base, points(base), points(window), last_week, self.bounds(), self.words())
        if verdict.signal:
            return verdict
        in_base = [o.value for o in between(base.start, base.end)]
        in_window = [o.value for o in between(window.start, window.end)]
        two_sample = self.two_sample(in_window, in_base, base)
        if two_sample is None:
            return verdict
        return replace(
            verdict,
            signal=two_sample.signal,
            detail=two_sample.detail,
            note=None,
            signal_up=two_sample.signal_up,
        )

    def two_sample(self, in_window: list[float], in_base: list[float], base: Window) -> Verdict | None:
        """Mann–Whitney for durations, Fisher's exact for rates (docs/metrics.md), worded, or None."""
        if self.kind == DURATION:
            return mann_whitney_verdict(in_window, in_base, base, self.words(), self.things, duration_text)
        if self.kind == RATE:
            hits = (int(sum(in_window)), int(sum(in_base)))
            return fisher_verdict(hits, (len(in_window), len(in_base)), base, self.words(), self.things)
        return None


__all__ = [
    "Metric",
    "Observation",
    "Result",
    "Verdict",
    "Words",
    "DURATION",
    "COUNT",
    "RATE",
    "CUSTOM",
    "WEEK",
]
