"""The flow (Kanban) family of docs/metrics.md: every figure starts from the replayed stage dates.

Shared rules, applied the same way in every metric here:

- An item is *flow-eligible* when it has a committed date (rule 6: items closed without flow never
  entered the team's system and stay out of cycle time, throughput, WIP, flow efficiency and net flow).
- Discarded resolutions (*Won't Do*, *Duplicate*) stay out of throughput, cycle time and flow
  efficiency only, as docs/metrics.md lists. Read literally, they (and items closed without flow) still
  count in lead time, flow distribution and time to value; the explain items flag them.
- Historical WIP uses the final stage dates (as a cumulative-flow diagram does): an item is in WIP at
  ``t`` iff ``committed <= t < done`` (done = +inf when not done).
- Notes describe the window only (the shared aggregation loads 20 more weeks for its baseline).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from functools import partial

from metrics import stats
from metrics.catalogue.base import (
    COUNT,
    CUSTOM,
    DURATION,
    ITEMS,
    Metric,
    Observation,
    Result,
    be,
    counted,
    duration_text,
    hours,
    last_tested_week,
    low_sample_note,
    series_weeks,
    tested_points,
    xmr_verdict,
)
from metrics.dataset import Item, TeamData
from metrics.store.statuses import status_table
from metrics.timeutil import Window, iso, local_midnight
from metrics.workflow import Flow, Workflow, active_seconds

FAMILY = "flow"
CATEGORIES = ("feature", "defect", "debt", "risk", "unclassified")
AGING_LOOKBACK_DAYS = 90
AGING_MIN_DONE = 5
LINK_MARGIN_DAYS = 30  # how far before a range items, linked PRs and deployments are looked for


# -- shared helpers ------------------------------------------------------------------------------------
def _in_play(it: Item, start: float, end: float) -> bool:
    """Created before the range ends and not done before it starts: the item can matter to it."""
    return it.created < end and (it.flow.done is None or it.flow.done >= start)


# Data-quality notes say what happened to which items in a team's words, filled in by ``note``:
# ``{items}`` ("1 item", "4 items") and ``{are}`` agree with the count.
CLOSED_LEFT_OUT = "{items} went straight from Backlog to Done and {are} not in {metric}"
CLOSED_INCLUDED = "{items} went straight from Backlog to Done; {metric} counts {them} all the same"
DISCARDED_LEFT_OUT = "{items} closed as discarded (Won't Do, Duplicate and the like) {are} not in {metric}"
DISCARDED_INCLUDED = "{items} closed as discarded (Won't Do, Duplicate and the like); {metric} counts {them}"
NEGATIVE = "{items} finished before {they} started (clock skew or bad data) {are} left out"


def note(template: str, n: int, metric: str = "", things: str = "items") -> str:
    """A data-quality note from one of the templates above, for ``n`` items."""
    return template.format(
        items=counted(n, things),
        are=be(n),
        they="it" if n == 1 else "they",
        them="it" if n == 1 else "them",
        metric=metric,
    )


def and_list(parts: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def quality_notes(
    items: list[Item],
    start: float,
    end: float,
    *,
    metric: str = "",
    closed_without_flow: str | None = CLOSED_LEFT_OUT,
    discarded: str | None = None,
    negative: int = 0,
) -> list[str]:
    """Data-quality notes for the range, in plain words: items closed without flow, discarded items,
    negative durations, and statuses the team's workflow does not map. ``metric`` names the figure
    ("cycle time") in the notes that say what it leaves out."""
    notes = []
    done_here = [it for it in items if it.flow.done is not None and start <= it.flow.done < end]
    if closed_without_flow:
        n = sum(it.flow.closed_without_flow for it in done_here)
        if n:
            notes.append(note(closed_without_flow, n, metric))
    if discarded:
        n = sum(it.discarded and not it.flow.closed_without_flow for it in done_here)
        if n:
            notes.append(note(discarded, n, metric))
    if negative:
        notes.append(note(NEGATIVE, negative))
    unmapped = sorted(
        {s for it in items if it.flow.unmapped and _in_play(it, start, end) for s in it.flow.unmapped}
    )
    if unmapped:
        notes.append(
            f"{and_list(unmapped)} {be(len(unmapped))} not mapped to a stage, so moves into "
            f"{'it' if len(unmapped) == 1 else 'them'} do not change an item's stage"
        )
    return notes


UNNAMED = "a status with no name"  # time in a status code the store has no name for


def unmapped_time_note(items: Iterable[Item]) -> list[str]:
    """Names each unmapped status with the time the cycles of ``items`` spent in it, most first.

    That time counts as waiting (docs/metrics.md): the note says so, so that a team whose efficiency
    dropped because nobody mapped "Blocked" sees why, and can map it to a waiting stage."""
    total: Counter = Counter()
    for it in items:
        total.update(it.flow.unmapped_time)
    if not total:
        return []
    parts = [f"{duration_text(t)} in {s or UNNAMED}" for s, t in sorted(total.items(), key=_most_first)]
    return [
        f"items spent {and_list(parts)}, {'a status' if len(parts) == 1 else 'statuses'} not mapped to "
        "a stage; that time counts as waiting"
    ]


def _most_first(entry: tuple[str, float]) -> tuple[float, str]:
    return -entry[1], entry[0]


def delivered(it: Item) -> bool:
    """Done, flowed through the team's system, not discarded: what throughput and cycle time count."""
    return it.flow.done is not None and it.flow.committed is not None and not it.discarded


def open_at(items: list[Item], at: float) -> list[Item]:
    """The items in WIP at ``at``: committed by then and not done (``WipCounter``'s rule)."""
    return [
        it
        for it in items
        if it.flow.committed is not None
        and it.flow.committed <= at
        and (it.flow.done is None or max(it.flow.done, it.flow.committed) > at)
    ]


def statuses_at(data: TeamData, items: list[Item], at: float) -> dict[str, str]:
    """Each item's status at ``at`` (key -> name), as the team wrote it in its workflow mapping
    ("Peer Review"), else as the tool names it ("Blocked"): what the aging nudge says of an item, so
    Explain names the status the team knows rather than a stage id. At a past instant it is the last
    status the item entered by then (its first status when it had moved only later), read from its
    transitions; an item that has not moved since is in its current status. ``items`` are the few
    open ones a figure lists, so this reads only their transitions, by the (source, key) index.
    """
    from metrics.behind import status_name  # behind imports the catalogue: imported when used

    names: dict[str, str] = {it.key: it.status for it in items}
    moved = [it for it in items if it.flow.timeline and it.flow.timeline[-1][0] > at]
    by_source: dict[str, list[str]] = {}
    for it in moved:
        by_source.setdefault(it.source, []).append(it.key)
    codes = status_table(data.db, sorted(by_source))
    for src, keys in by_source.items():
        named = codes[src]
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            rows = data.db.execute(
                "select key, at, seq, from_code, to_code from transitions where source = ? "
                f"and key in ({','.join('?' * len(part))}) order by key, at, seq",
                [src, *part],
            ).fetchall()
            first: dict[str, int] = {}
            for key, t, _seq, from_code, to_code in rows:
                first.setdefault(key, from_code)
                if t <= at:
                    first[key] = -1  # entered a status by ``at``: the last such one is the answer
                    names[key] = _name(named, to_code, names[key])
            for key, code in first.items():
                if code != -1:
                    names[key] = _name(named, code, names[key])
    return {key: status_name(data.workflow, name) for key, name in names.items()}


def _name(codes: dict, code: int, default: str) -> str:
    sid, name = codes.get(code, (None, None))
    return name or sid or default


def stage_name_at(workflow: Workflow, flow: Flow, ts: float) -> str | None:
    """The stage an item was in at ``ts``; an unmapped status keeps the last mapped stage (ignored)."""
    current = None
    for at, stage in flow.timeline:
        if at > ts:
            break
        if stage is not None:
            current = stage
    return workflow.stages[current].name if current is not None else None


class WipCounter:
    """Counts items with ``committed <= t < done`` for many instants at once: two sorted lists and a
    binary search per instant (the standard library's bisect: numpy would cost every command a tenth
    of a second of import for a few hundred look-ups)."""

    def __init__(self, items: list[Item]):
        starts, ends = [], []
        for it in items:
            c = it.flow.committed
            if c is None:
                continue
            starts.append(c)
            d = it.flow.done
            ends.append(math.inf if d is None else max(d, c))
        self.starts = sorted(starts)
        self.ends = sorted(ends)

    def at(self, times: list[float]) -> list[int]:
        return [bisect_right(self.starts, t) - bisect_right(self.ends, t) for t in times]


def day_samples(first: date, last: date, tz, now: float) -> list[tuple[date, float]]:
    """``(day, instant)`` for each local day in ``[first, last)`` that has begun by ``now``: the day's
    end, or ``now`` for the day in progress (a day that has not begun has no sample)."""
    out = []
    d = first
    while d < last:
        s = local_midnight(d, tz).timestamp()
        if s >= now:
            break
        e = local_midnight(d + timedelta(days=1), tz).timestamp()
        out.append((d, min(e, now)))
        d += timedelta(days=1)
    return out


def _avg(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _week_label(s: float, tz) -> str:
    return datetime.fromtimestamp(s, tz).date().isoformat()


def _point(week: str, value, complete: bool) -> dict:
    return {"week": week, "value": value} | ({} if complete else {"partial": True})


# -- item metrics (the shared aggregation) ----------------------------------------------------------------
Picked = tuple[Item, float, float, str | None]  # (item, end event, value, what explain() needs)
ZERO_CYCLE = "{items} finished the moment {they} started (zero cycle time) {are} not in {metric}"


class _ItemMetric(Metric):
    """One observation per item, by the shared aggregation; notes counted over the window only.

    ``select`` picks the observations of a range and counts what it left out; ``explain`` makes an
    explain item. ``compute`` re-counts the notes for the window without re-building the items.
    """

    closed_note: str | None = CLOSED_LEFT_OUT
    discarded_note: str | None = DISCARDED_LEFT_OUT
    history = (ITEMS,)
    things = "items"
    nothing = "no items finished in this period"

    def load(self, data: TeamData, start: float) -> list[Item]:
        return data.items(start)

    def select(
        self, data: TeamData, items: list[Item], start: float, end: float
    ) -> tuple[list[Picked], Counter]:
        raise NotImplementedError

    def explain(self, it: Item, at: float, value: float, info: str | None) -> dict:
        raise NotImplementedError

    def left_out(self, data: TeamData, items: list[Item], start: float, end: float) -> Counter:
        return self.select(data, items, start, end)[1]

    def notes(self, items: list[Item], start: float, end: float, left_out: Counter) -> list[str]:
        zero = left_out["zero"]
        notes = [note(ZERO_CYCLE, zero, self.name.lower())] if zero else []
        return notes + quality_notes(
            items,
            start,
            end,
            metric=self.name.lower(),
            closed_without_flow=self.closed_note,
            discarded=self.discarded_note,
            negative=left_out["negative"],
        )

    def observations(self, data: TeamData, start: float, end: float) -> tuple[list[Observation], list[str]]:
        items = self.load(data, start)
        picked, left_out = self.select(data, items, start, end)
        obs = [Observation(at, v, partial(self.explain, it, at, v, info)) for it, at, v, info in picked]
        return obs, self.notes(items, start, end, left_out)

    def notes_for(self, data: TeamData, window: Window) -> list[str]:
        items = self.load(data, window.start)
        return self.notes(
            items, window.start, window.end, self.left_out(data, items, window.start, window.end)
        )


def _span(it: Item, start: float, end: float, v: float) -> dict:
    return {"key": it.key, "start": iso(start), "end": iso(end), "hours": hours(v), "url": it.url}


class CycleTime(_ItemMetric):
    id = "cycle-time"
    family = FAMILY
    name = "Cycle time"
    unit = "duration"
    better = "lower"
    definition = "done − committed, per item done in window; p50, p85"
    kind = DURATION

    def select(
        self, data: TeamData, items: list[Item], start: float, end: float
    ) -> tuple[list[Picked], Counter]:
        picked, left_out = [], Counter()
        for it in items:
            if delivered(it) and start <= it.flow.done < end:
                d = it.flow.done - it.flow.committed
                if d < 0:
                    left_out["negative"] += 1
                else:
                    picked.append((it, it.flow.done, d, None))
        return picked, left_out

    def explain(self, it: Item, at: float, value: float, info: str | None) -> dict:
        return _span(it, it.flow.committed, at, value)


class LeadTime(_ItemMetric):
    """Created -> done for every item done in the window.

    docs/metrics.md excludes items closed without flow and discarded items from other metrics, not from
    lead time: they count here (lead time needs no commitment) and the explain items flag them.
    """

    id = "lead-time"
    family = FAMILY
    name = "Lead time"
    unit = "duration"
    better = "lower"
    definition = "done − created, per item done in window; p50, p85"
    kind = DURATION
    closed_note = CLOSED_INCLUDED
    discarded_note = DISCARDED_INCLUDED

    def select(
        self, data: TeamData, items: list[Item], start: float, end: float
    ) -> tuple[list[Picked], Counter]:
        picked, left_out = [], Counter()
        for it in items:
            done = it.flow.done
            if done is not None and start <= done < end:
                d = done - it.created
                if d < 0:
                    left_out["negative"] += 1
                else:
                    picked.append((it, done, d, None))
        return picked, left_out

    def explain(self, it: Item, at: float, value: float, info: str | None) -> dict:
        out = _span(it, it.created, at, value)
        if it.flow.closed_without_flow:
            out["closed_without_flow"] = True
        if it.discarded:
            out["discarded"] = True
        return out


class Throughput(_ItemMetric):
    id = "throughput"
    family = FAMILY
    name = "Throughput"
    unit = "items/week"
    better = "higher"
    definition = "items done per week; figure = mean over the window's weeks"
    kind = COUNT

    def select(
        self, data: TeamData, items: list[Item], start: float, end: float
    ) -> tuple[list[Picked], Counter]:
        return [
            (it, it.flow.done, 1.0, None) for it in items if delivered(it) and start <= it.flow.done < end
        ], Counter()

    def explain(self, it: Item, at: float, value: float, info: str | None) -> dict:
        return {"key": it.key, "done": iso(at), "url": it.url}


class FlowEfficiency(_ItemMetric):
    """Active time between committed and done over cycle time, per delivered item.

    value = median of the item ratios in %, ``extra.mean`` their mean. Cycle time 0 is skipped (and
    counted in a note). With the team's ``impediments_wait`` option, flagged time inside active stages
    counts as waiting. Time in an unmapped status after commitment counts as waiting (docs/metrics.md), and
    a note names those statuses with their hours: a low figure may be a mapping nobody finished.
    """

    id = "flow-efficiency"
    family = FAMILY
    name = "Flow efficiency"
    unit = "%"
    better = "higher"
    definition = (
        "per done item: time in active stages between committed and done (status timeline) ÷ cycle time; "
        "median of item ratios, mean also shown"
    )
    kind = CUSTOM

    @staticmethod
    def cycles(items: list[Item], start: float, end: float) -> Iterator[tuple[Item, float]]:
        """Delivered items done in ``[start, end)`` with their cycle time, zero or negative included."""
        for it in items:
            if delivered(it) and start <= it.flow.done < end:
                yield it, it.flow.done - it.flow.committed

    def select(
        self, data: TeamData, items: list[Item], start: float, end: float
    ) -> tuple[list[Picked], Counter]:
        picked, left_out = [], Counter()
        wait = data.team.impediments_wait
        for it, cycle in self.cycles(items, start, end):
            if cycle < 0:
                left_out["negative"] += 1
            elif cycle == 0:
                left_out["zero"] += 1
            else:
                active = active_seconds(data.workflow, it.flow, it.impediments if wait else ())
                picked.append((it, it.flow.done, active / cycle, None))
        return picked, left_out

    def left_out(self, data: TeamData, items: list[Item], start: float, end: float) -> Counter:
        """Only the counts: the notes need no active time."""
        return Counter("negative" if c < 0 else "zero" for _, c in self.cycles(items, start, end) if c <= 0)

    def notes(self, items: list[Item], start: float, end: float, left_out: Counter) -> list[str]:
        waited = [it for it in items if it.flow.unmapped_time]  # few: a cheap filter first
        measured = (it for it, cycle in self.cycles(waited, start, end) if cycle > 0)
        return super().notes(items, start, end, left_out) + unmapped_time_note(measured)

    def explain(self, it: Item, at: float, value: float, info: str | None) -> dict:
        cycle = at - it.flow.committed
        out = _span(it, it.flow.committed, at, cycle) | {
            "active_hours": hours(value * cycle),
            "efficiency": round(100 * value, 4),
        }
        if it.flow.unmapped_time:  # waiting time the team may not know it has: name it per item too
            out["unmapped_hours"] = {s or UNNAMED: hours(t) for s, t in sorted(it.flow.unmapped_time.items())}
        return out

    def aggregate(self, obs: list[Observation], window: Window) -> float | None:
        m = stats.median([o.value for o in obs])
        return None if m is None else round(100 * m, 4)

    def weekly(self, obs: list[Observation]) -> float | None:
        return self.aggregate(obs, None)  # type: ignore[arg-type]

    def compute(self, data: TeamData, window: Window) -> Result:
        result = super().compute(data, window)
        ratios = [i["efficiency"] for i in result.items]
        result.extra["mean"] = round(sum(ratios) / len(ratios), 4) if ratios else None
        return result


class TimeToValue(_ItemMetric):
    """Created -> the first production deployment that shipped the item's work, else -> done.

    A merged PR is linked to an item when the item's key is in the PR's refs; its deployment is the
    first successful production deployment that shipped it. With several linked PRs the latest such
    deployment counts (the work is in production once all of it is); linked PRs not deployed yet are
    ignored. An item with no deployed linked PR falls back to done. Only done items are measured, and
    an observation sits at its end event (that deployment's finish, or done). Read literally, items
    closed without flow and discarded ones count (no rule names this metric). Linked PRs and
    deployments are looked for from 30 days before the range (work done or merged earlier than that
    and deployed inside the range is missed: rare, and it keeps the load small).
    """

    id = "time-to-value"
    family = FAMILY
    name = "Time to value"
    unit = "duration"
    better = "lower"
    definition = (
        "created → first successful production deployment containing the work (latest over the item's "
        "linked merged PRs), else created → done; basis kept per item"
    )
    kind = DURATION
    closed_note = None
    discarded_note = DISCARDED_INCLUDED
    nothing = "no items finished or shipped in this period"

    def load(self, data: TeamData, start: float) -> list[Item]:
        return data.items(start - LINK_MARGIN_DAYS * 86400)

    @staticmethod
    def shipped(data: TeamData, start: float) -> dict[str, float]:
        """Item key -> the latest first deployment of its linked merged PRs."""
        load = start - LINK_MARGIN_DAYS * 86400
        first_deploy: dict[tuple[str, int], float] = {}
        for dep in data.deployments(load):  # sorted by finish: the first one that shipped a PR wins
            for change in dep.changes:
                first_deploy.setdefault(change, dep.finished)
        out: dict[str, float] = {}
        for pr in data.pull_requests(load):
            at = first_deploy.get((pr.repo, pr.number)) if pr.merged is not None else None
            if at is not None:
                for ref in {r.upper() for r in pr.refs}:
                    out[ref] = max(out.get(ref, at), at)
        return out

    def select(
        self, data: TeamData, items: list[Item], start: float, end: float
    ) -> tuple[list[Picked], Counter]:
        shipped = self.shipped(data, start)
        picked, left_out = [], Counter()
        for it in items:
            if it.flow.done is None:
                continue
            deployed = shipped.get(it.key.upper())
            basis, at = ("done", it.flow.done) if deployed is None else ("deployment", deployed)
            if start <= at < end:
                d = at - it.created
                if d < 0:
                    left_out["negative"] += 1
                else:
                    picked.append((it, at, d, basis))
        return picked, left_out

    def explain(self, it: Item, at: float, value: float, info: str | None) -> dict:
        return _span(it, it.created, at, value) | {"basis": info}


# -- WIP and flow load -------------------------------------------------------------------------------------
class Wip(Metric):
    """Items committed and not done, sampled at the end of each local day.

    value = window average of the daily samples; the day in progress is sampled at ``now`` and days
    not begun yet have no sample. ``extra.current`` is WIP at min(window end, now), with its items.
    items = the daily samples (the observations behind the average); series = weekly averages.
    """

    id = "wip"
    family = FAMILY
    name = "Work in progress"
    unit = "items"
    better = "context"
    definition = (
        "items committed and not done, sampled at the end of each local day; current value and window average"
    )
    kind = CUSTOM
    history = (ITEMS,)
    things = "days sampled"
    nothing = "the period has not begun yet"

    def compute(self, data: TeamData, window: Window) -> Result:
        tz, now = window.tz, data.now
        base, prev = self.baseline(data, window), window.previous()
        items = data.items(min(base.start, prev.start))
        wip = WipCounter(items)

        def samples(first: date, last: date) -> list[tuple[date, float, int]]:
            days = day_samples(first, last, tz, now)
            counts = wip.at([t for _, t in days])
            return [(d, t, n) for (d, t), n in zip(days, counts, strict=True)]

        def weekly(w: Window) -> list[tuple[float, float | None, bool]]:
            out = []
            for s, _e, complete in series_weeks(w, now):
                monday = datetime.fromtimestamp(s, tz).date()
                out.append((s, _avg([n for *_, n in samples(monday, monday + timedelta(7))]), complete))
            return out

        current = samples(window.since.date(), window.until.date())
        previous = samples(prev.since.date(), prev.until.date())
        at = min(window.end, now)
        open_now = open_at(items, at)
        status = statuses_at(data, open_now, at)
        current_items = [
            {
                "key": it.key,
                "stage": stage_name_at(data.workflow, it.flow, at),
                "status": status[it.key],
                "committed": iso(it.flow.committed),
                "url": it.url,
            }
            for it in open_now
        ]
        current_items.sort(key=lambda i: (i["committed"], i["key"]))
        points = weekly(window)
        result = Result(
            metric=self.id,
            team=data.team.name,
            window=window,
            value=_avg([n for *_, n in current]),
            unit=self.unit,
            sample_size=len(current),
            previous=_avg([n for *_, n in previous]),
            series=[_point(_week_label(s, tz), v, c) for s, v, c in points],
            items=[{"day": d.isoformat(), "at": iso(t), "wip": n} for d, t, n in current],
            notes=quality_notes(items, window.start, window.end, metric="WIP"),
            extra={"current": wip.at([at])[0], "current_items": current_items},
        )
        result.notes += low_sample_note(result, self.things)
        result.judged(
            xmr_verdict(
                base,
                tested_points(weekly(base), base),
                tested_points(points, window),
                last_tested_week(window, now),
                words=self.words(),
            )
        )
        return self.described(result, data)


class FlowLoad(Wip):
    """Flow load: the window average of WIP (the same figure, its own catalogue entry)."""

    id = "flow-load"
    family = FAMILY
    name = "Flow load"
    unit = "items"
    better = "context"
    definition = "= window average of `wip`"


# -- aging WIP -----------------------------------------------------------------------------------------------
class AgingWip(Metric):
    """Open committed items as of min(window end, now), their age and current stage.

    An item is flagged when its age exceeds the team's p85 cycle time over the 90 local days before
    that instant (delivered items, as ``cycle-time`` counts them); no flags while fewer than 5 such
    items were done. value = number of open items (docs/metrics.md: the figure is the open items,
    each with its age), so its change is the change in that count, lower being better; previous =
    the same count at the window's start; series = open items at each week's end (or now). How many
    of them are aging is what a team acts on, and no signal rule is applied to this figure, so
    ``signal_note`` (the line under the figure, where "within normal variation" would otherwise
    stand) says it: "2 of 8 open items are older than 85% of ...", or why nothing can be flagged.
    """

    id = "aging-wip"
    family = FAMILY
    name = "Aging WIP"
    unit = "items, duration"
    better = "lower"
    definition = (
        "open committed items, age = now − committed, current stage; "
        "flagged when age > the team's p85 `cycle-time` (last 90 days)"
    )
    kind = CUSTOM
    history = (ITEMS,)
    things = "open items"
    nothing = "no committed item is open"

    def compute(self, data: TeamData, window: Window) -> Result:
        tz, now = window.tz, data.now
        at = min(window.end, now)
        lookback = (datetime.fromtimestamp(at, tz) - timedelta(days=AGING_LOOKBACK_DAYS)).timestamp()
        weeks = series_weeks(window, now)
        items = data.items(min(lookback, min(window.start, now), weeks[0][0]))
        wip = WipCounter(items)

        picked, _ = CycleTime().select(data, items, lookback, at)
        cycles = [v for _it, _at, v, _info in picked]
        p85 = stats.percentile(cycles, 0.85) if len(cycles) >= AGING_MIN_DONE else None
        open_now = open_at(items, at)
        status = statuses_at(data, open_now, at)
        open_items = []
        for it in open_now:
            age = at - it.flow.committed
            flagged = p85 is not None and age > p85
            open_items.append(
                {
                    "key": it.key,
                    "stage": stage_name_at(data.workflow, it.flow, at),
                    "status": status[it.key],
                    "age_hours": hours(age),
                    "flagged": flagged,
                    "url": it.url,
                }
            )
        open_items.sort(key=lambda i: (-i["age_hours"], i["key"]))
        notes = quality_notes(items, window.start, window.end, closed_without_flow=None)
        flagged = sum(i["flagged"] for i in open_items)
        if p85 is None:
            done = f"only {counted(len(cycles), 'items')}" if cycles else "no items"
            aged = (
                f"no item is flagged as aging: {done} finished in the last {AGING_LOOKBACK_DAYS} days, "
                f"and it takes {AGING_MIN_DONE} to know what is usual"
            )
        else:
            aged = (
                f"{flagged} of {counted(len(open_items), 'open items')} {be(flagged)} older than usual: "
                f"over {duration_text(p85)}, the cycle time within which 85% of the items finished "
                f"in the last {AGING_LOOKBACK_DAYS} days were done"
            )
        series = []
        for s, e, complete in weeks:
            v = wip.at([min(e, now)])[0] if s < now else None
            series.append(_point(_week_label(s, tz), v, complete))
        prev_at = min(window.start, now)
        result = Result(
            metric=self.id,
            team=data.team.name,
            window=window,
            value=len(open_items),
            unit=self.unit,
            sample_size=len(open_items),
            previous=wip.at([prev_at])[0],
            series=series,
            items=open_items,
            notes=notes,
            extra={
                "flagged": flagged,
                "p85_hours": None if p85 is None else hours(p85),
                "done_90d": len(cycles),
                "as_of": iso(at),
            },
        )
        result.notes += low_sample_note(result, self.things)
        # Its previous figure is the count at the window's start: known once the history has begun.
        self.described(result, data, since=prev_at)
        if result.sample_size:
            # Not tested for signals: the line under the figure says how many items are aging
            # (what a reader acts on) rather than "within normal variation".
            result.signal_note = aged
        return result


# -- flow distribution -----------------------------------------------------------------------------------
class FlowDistribution(Metric):
    """Share of items done in the window per work type (the team's issue-type mapping).

    Rule 6 and the discarded rule name the metrics those items stay out of, and flow distribution is
    not one of them: read literally, every item done in the window counts here, closed without flow
    and discarded ones included (a note says how many).
    """

    id = "flow-distribution"
    family = FAMILY
    name = "Flow distribution"
    unit = "% by type"
    better = "context"
    definition = (
        "share of items done in window per work type `feature`/`defect`/`debt`/`risk` "
        "(issue-type mapping), else `unclassified`"
    )
    kind = CUSTOM
    history = (ITEMS,)
    things = "items"
    nothing = "no items finished in this period"

    @staticmethod
    def category(it: Item) -> str:
        return it.category if it.category in CATEGORIES else "unclassified"

    @classmethod
    def shares(cls, items: list[Item]) -> dict | None:
        if not items:
            return None
        counts = Counter(cls.category(it) for it in items)
        return {c: round(100 * counts[c] / len(items), 4) for c in CATEGORIES}

    def compute(self, data: TeamData, window: Window) -> Result:
        tz, now = window.tz, data.now
        prev = window.previous()
        weeks = series_weeks(window, now)
        items = data.items(min(prev.start, weeks[0][0]))

        def done_in(s: float, e: float) -> list[Item]:
            return [it for it in items if it.flow.done is not None and s <= it.flow.done < e]

        current = sorted(done_in(window.start, window.end), key=lambda it: it.flow.done)
        notes = quality_notes(
            items,
            window.start,
            window.end,
            metric="flow distribution",
            closed_without_flow=CLOSED_INCLUDED,
            discarded=DISCARDED_INCLUDED,
        )
        result = Result(
            metric=self.id,
            team=data.team.name,
            window=window,
            value=self.shares(current),
            unit=self.unit,
            sample_size=len(current),
            previous=self.shares(done_in(prev.start, prev.end)),
            series=[_point(_week_label(s, tz), self.shares(done_in(s, e)), c) for s, e, c in weeks],
            items=[
                {"key": it.key, "type": it.type, "category": self.category(it), "done": iso(it.flow.done)}
                for it in current
            ],
            notes=notes,
            extra={"counts": dict(Counter(self.category(it) for it in current))},
        )
        result.notes += low_sample_note(result, self.things)
        return self.described(result, data)


# -- net flow --------------------------------------------------------------------------------------------
class NetFlow(_ItemMetric):
    """Arrivals (committed) minus departures (done) per week; value = mean per week over the window.

    Departures count every flow-eligible item that reached done, discarded ones included: they leave
    WIP, and net flow says whether WIP grows. Items closed without flow neither arrive nor depart.
    """

    id = "net-flow"
    family = FAMILY
    name = "Net flow"
    unit = "items/week"
    better = "≈ 0"
    definition = (
        "per week: arrivals (committed date in week) − departures (done date in week); > 0 means WIP grows"
    )
    kind = CUSTOM
    things = "items started or finished"
    nothing = "no items started or finished in this period"

    discarded_note = None

    def select(
        self, data: TeamData, items: list[Item], start: float, end: float
    ) -> tuple[list[Picked], Counter]:
        picked = []
        for it in items:
            c, d = it.flow.committed, it.flow.done
            if c is None:
                continue
            if start <= c < end:
                picked.append((it, c, 1.0, "arrival"))
            if d is not None and start <= d < end:
                picked.append((it, d, -1.0, "departure"))
        return picked, Counter()

    def explain(self, it: Item, at: float, value: float, info: str | None) -> dict:
        return {"key": it.key, "event": info, "at": iso(at)}

    def aggregate(self, obs: list[Observation], window: Window) -> float | None:
        return round(sum(o.value for o in obs) / window.weeks, 4) if window.weeks else None

    def weekly(self, obs: list[Observation]) -> float:
        return float(sum(o.value for o in obs))

    def bounds(self) -> tuple[bool, float | None]:
        """Net flow goes negative, so its lower process limit is not floored at 0."""
        return False, None


METRICS: list[Metric] = [
    CycleTime(),
    LeadTime(),
    Throughput(),
    Wip(),
    AgingWip(),
    FlowEfficiency(),
    FlowDistribution(),
    FlowLoad(),
    NetFlow(),
    TimeToValue(),
]
