"""Scrum: sprint completion (say/do), sprint scope change, sprint carry-over.

Which sprints: those on ``team.boards`` when set, else every sprint holding an item of the team's Jira
projects. Only the team's own items (keys of ``team.jira_projects``) are counted: their done state is
read through the team's workflow mapping, which says nothing about other projects' statuses.

A sprint runs from ``start`` to its end: ``complete`` if closed, else ``end``. It counts once closed, or
once its end date has passed while still open (figures as of the end date, so a team that forgets to
close a sprint still sees it); a sprint still running, or never started, does not count yet. It belongs
to the window holding its end.

Membership is replayed from ``sprint_events`` (the Sprint-field history):
- committed at start: the item's last event at or before the start is ``add``;
- in the sprint at its end: last event strictly before the end is ``add``; changes at or after the end
  (Jira moves unfinished items when a sprint is closed) are carry-over, never removals;
- added: not committed, with an ``add`` between start and end (added then removed counts once, as
  added); removed: committed but no longer in the sprint at its end (removed and re-added is no change).

Done at the end: the item's status at the sprint's end instant is in the team's done stage (the status
timeline ``metrics.workflow.replay`` builds, read for the sprint items only: see ``done_timelines``), so
an item reopened after the sprint still counts as done in it, and one moved to done after it does not.

Several sprints in a window are pooled: sum of numerators ÷ sum of denominators; zero commitment (or an
empty sprint, for carry-over) gives no value.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime

from metrics import stats
from metrics.catalogue.base import (
    CUSTOM,
    ITEMS,
    SPRINTS,
    Metric,
    Result,
    Verdict,
    be,
    fisher_verdict,
    low_sample_note,
    series_weeks,
)
from metrics.catalogue.base import counted as n_of
from metrics.dataset import TeamData
from metrics.store.statuses import status_table
from metrics.timeutil import Window, iso


def _in(values) -> str:
    return ",".join("?" * len(values)) or "NULL"


@dataclass
class SprintFigures:
    """One counted sprint's item counts (the team's items only)."""

    source: str
    id: str
    name: str
    board: str | None
    start: float
    end: float
    closed: bool
    committed: int = 0
    completed: int = 0  # committed, still in the sprint at its end, done at its end
    added: int = 0
    removed: int = 0
    at_end: int = 0
    carried_over: int = 0  # in the sprint at its end and not done
    # The work behind the counts, by item key, so a figure can name it (metrics.behind): committed and
    # not completed (the instant it was removed, None when it stayed in and was not done), added after
    # the start (its first add), carried over. Not in ``row``, which is the sprint's counts.
    undone: dict[str, float | None] = field(default_factory=dict)
    added_at: dict[str, float] = field(default_factory=dict)
    carried: list[str] = field(default_factory=list)

    def row(self) -> dict:
        return {
            "sprint": self.name,
            "id": self.id,
            "board": self.board,
            "start": iso(self.start),
            "end": iso(self.end),
            "closed": self.closed,
            "committed": self.committed,
            "completed": self.completed,
            "added": self.added,
            "removed": self.removed,
            "in_sprint_at_end": self.at_end,
            "carried_over": self.carried_over,
            "left_undone": self.committed - self.completed,
        }


def _team_key(key: str, projects: set[str]) -> bool:
    return key.rsplit("-", 1)[0] in projects


Events = dict[tuple[str, str], dict[str, list[tuple[float, str]]]]  # sprint -> item key -> (at, change)


def _load(data: TeamData, since: float) -> tuple[list[dict], Events, int]:
    """The team's sprints ending at/after ``since``, their membership events on the team's items, and
    how many events on other projects' items were left out."""
    projects = set(data.team.jira_projects)
    events: Events = {}
    foreign = 0

    def add(source: str, sprint_id: str, key: str, at: float, change: str) -> None:
        events.setdefault((source, sprint_id), {}).setdefault(key, []).append((at, change))

    if data.team.boards:
        boards = [str(b) for b in data.team.boards]
        sprints = list(
            data.db.query(
                f"select * from sprints where board in ({_in(boards)}) and coalesce(complete, end) >= ?",
                [*boards, since],
            )
        )
        by_source: dict[str, list[str]] = {}
        for s in sprints:
            by_source.setdefault(s["source"], []).append(s["id"])
        for source, ids in by_source.items():
            for i in range(0, len(ids), 900):
                part = ids[i : i + 900]
                for row in data.db.execute(
                    f"select source, sprint_id, key, at, change from sprint_events "
                    f"where source = ? and sprint_id in ({_in(part)})",
                    [source, *part],
                ).fetchall():
                    if _team_key(row[2], projects):
                        add(*row)
                    else:
                        foreign += 1
        return sprints, events, foreign
    for p in sorted(projects):
        # Key range "P-" .. "P." (the next character after "-") uses the key index; the join keeps
        # only the events of sprints that can matter.
        for row in data.db.execute(
            "select e.source, e.sprint_id, e.key, e.at, e.change from sprint_events e "
            "join sprints s on s.source = e.source and s.id = e.sprint_id "
            "where e.key >= ? and e.key < ? and coalesce(s.complete, s.end) >= ?",
            [f"{p}-", f"{p}.", since],
        ).fetchall():
            add(*row)
    sprints = []
    by_source = {}
    for source, sid in events:
        by_source.setdefault(source, []).append(sid)
    for source, ids in by_source.items():
        for i in range(0, len(ids), 900):
            part = ids[i : i + 900]
            sprints += data.db.query(
                f"select * from sprints where source = ? and id in ({_in(part)})", [source, *part]
            )
    return sprints, events, foreign


def done_timelines(
    data: TeamData, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[list[float], list[bool]]]:
    """Per stored, undeleted item: the instants it entered a status and whether that status is in the
    team's done stage, oldest first (the status timeline of ``metrics.workflow.replay``: the initial
    status at creation, then each change in time order, ties by changelog id).

    Only the sprint items are read, by key, as tuples: the sprint figures need the status at a few
    instants, not the full replay of every item of the team, which costs far more.
    """
    workflow = data.workflow
    done_index = workflow.done_index

    def is_done(sid: str | None, name: str | None) -> bool:
        return workflow.stage_index(sid, name) == done_index

    by_source: dict[str, list[str]] = {}
    for source, key in keys:
        by_source.setdefault(source, []).append(key)
    statuses = status_table(data.db, sorted(by_source))
    out: dict[tuple[str, str], tuple[list[float], list[bool]]] = {}
    for source, ks in by_source.items():
        ks.sort()
        done_codes = {code for code, (sid, name) in statuses[source].items() if is_done(sid, name)}
        for i in range(0, len(ks), 900):
            part = ks[i : i + 900]
            for key, created, status_id, status in data.db.execute(
                f"select key, created, status_id, status from work_items "
                f"where source = ? and key in ({_in(part)}) and deleted = 0",
                [source, *part],
            ):
                created = created if created is not None else float("-inf")
                out[(source, key)] = ([created], [is_done(status_id, status)])
            # Streamed in time order, each row is dropped once read: few objects outlive the loop.
            last = None
            for key, at, from_code, to_code in data.db.execute(
                f"select key, at, from_code, to_code from transitions "
                f"where source = ? and key in ({_in(part)}) order by key, at, seq",
                [source, *part],
            ):
                timeline = out.get((source, key))
                if timeline is None:
                    continue
                if key != last:  # the first change: the item was created in its ``from`` status
                    timeline[1][0] = from_code in done_codes
                    last = key
                timeline[0].append(at)
                timeline[1].append(to_code in done_codes)
    return out


def done_at(timeline: tuple[list[float], list[bool]], ts: float) -> bool:
    """Whether the item's status at instant ``ts`` was in the done stage."""
    ats, flags = timeline
    i = bisect.bisect_right(ats, ts) - 1
    return i >= 0 and flags[i]


def replay_membership(events: list[tuple[float, str]], start: float, end: float) -> tuple[bool, bool, bool]:
    """(committed at start, in the sprint at its end, added during it) from one item's (at, change)
    events; simultaneous events replay ``add`` before ``remove``."""
    committed = at_end = added = False
    for at, change in sorted(events):
        is_add = change == "add"
        if at <= start:
            committed = at_end = is_add
        elif at < end:
            at_end = is_add
            added = added or is_add
    return committed, at_end, added and not committed


def sprint_figures(data: TeamData, since: float) -> tuple[list[SprintFigures], list[str]]:
    """Every counted sprint of the team ending at/after ``since``, oldest end first, and notes.
    Cached per TeamData: the three Scrum metrics of a digest share one load."""
    return data.cached("sprint_figures", since, lambda s: _figures(data, s))


def _figures(data: TeamData, since: float) -> tuple[list[SprintFigures], list[str]]:
    sprints, events, foreign = _load(data, since)
    counted = []
    for s in sprints:
        end = s["complete"] if s["complete"] is not None else s["end"]
        if s["start"] is None or end is None or end < s["start"] or end < since:
            continue
        if s["complete"] is None and end > data.now:
            continue  # still running
        counted.append((s, end))
    figures: list[SprintFigures] = []
    notes: list[str] = []
    if counted:
        per_item = {(s["source"], s["id"]): events.get((s["source"], s["id"]), {}) for s, _ in counted}
        timelines = done_timelines(
            data, {(s["source"], k) for s, _ in counted for k in per_item[(s["source"], s["id"])]}
        )
        unknown: set[tuple[str, str]] = set()
        for s, end in counted:
            f = SprintFigures(
                s["source"],
                s["id"],
                s["name"] or s["id"],
                s["board"],
                s["start"],
                end,
                s["complete"] is not None,
            )
            for key, evs in per_item[(s["source"], s["id"])].items():
                timeline = timelines.get((s["source"], key))
                if timeline is None:
                    unknown.add((s["source"], key))
                    continue
                done = done_at(timeline, end)
                committed, at_end, added = replay_membership(evs, f.start, end)
                f.committed += committed
                f.added += added
                f.removed += committed and not at_end
                f.at_end += at_end
                f.completed += committed and at_end and done
                f.carried_over += at_end and not done
                _name_the_work(f, key, evs, committed, at_end, added, done)
            figures.append(f)
        if unknown:
            n = len(unknown)
            notes.append(f"{n_of(n, 'sprint items')} {be(n)} deleted or not synced yet and left out")
    if foreign:
        notes.append("items of other projects on the team's boards are left out")
    figures.sort(key=lambda f: f.end)
    return figures, notes


def _name_the_work(
    f: SprintFigures,
    key: str,
    events: list[tuple[float, str]],
    committed: bool,
    at_end: bool,
    added: bool,
    done: bool,
) -> None:
    """Record which of ``f``'s counts the item is in, with the instant that put it there, so the
    digest can name the work behind a Scrum figure and say when it changed (``replay_membership``
    gives only whether)."""
    during = [(at, change) for at, change in sorted(events) if f.start < at < f.end]
    if committed and not (at_end and done):
        f.undone[key] = None if at_end else max(at for at, change in during if change == "remove")
    if added:
        f.added_at[key] = min(at for at, change in during if change == "add")
    if at_end and not done:
        f.carried.append(key)


class SprintMetric(Metric):
    """Shared shape of the Scrum metrics: a pooled percentage over the sprints ending in the window."""

    unit = "%"
    family = "scrum"
    kind = CUSTOM
    bounded = True  # numerator <= denominator, so Fisher's exact test applies
    history = (SPRINTS, ITEMS)  # membership is replayed from the items' Sprint-field history
    things = "committed items"
    nothing = "no sprint ended in this period"
    # Said instead of ``nothing`` when sprints ended but the figure's denominator is empty.
    empty_sprints = "no items committed at the start of the period's sprints"

    def counted_from(self) -> tuple[str, ...]:
        return self.history

    def fraction(self, f: SprintFigures) -> tuple[int, int]:
        raise NotImplementedError

    def pooled(self, figures: list[SprintFigures]) -> tuple[int, int, float | None]:
        num = den = 0
        for f in figures:
            n, d = self.fraction(f)
            if d:
                num, den = num + n, den + d
        return num, den, (round(100 * num / den, 4) if den else None)

    def horizon(self, data: TeamData, window: Window) -> float:
        """The earliest sprint end a figure for ``window`` reads: its baseline's and previous period's."""
        return min(self.baseline(data, window).start, window.previous().start)

    def loaded(self, data: TeamData, window: Window) -> tuple[list[SprintFigures], list[str]]:
        """Every counted sprint ending from ``horizon`` on, and notes: one cached load shared by the
        three Scrum metrics and the work named behind them (``metrics.behind``)."""
        return sprint_figures(data, self.horizon(data, window))

    def compute(self, data: TeamData, window: Window) -> Result:
        base = self.baseline(data, window)
        prev = window.previous()
        figures, notes = self.loaded(data, window)
        current = [f for f in figures if window.contains(f.end)]
        _, den, value = self.pooled(current)
        series = []
        for s, e, complete in series_weeks(window, data.now):
            point = self.pooled([f for f in figures if s <= f.end < e])[2]
            series.append(
                {"week": datetime.fromtimestamp(s, window.tz).date().isoformat(), "value": point}
                | ({} if complete else {"partial": True})
            )
        items = []
        for f in current:
            n, d = self.fraction(f)
            items.append(f.row() | {"value": round(100 * n / d, 4) if d else None})
        result = Result(
            metric=self.id,
            team=data.team.name,
            window=window,
            value=value,
            unit=self.unit,
            sample_size=den,
            previous=self.pooled([f for f in figures if prev.contains(f.end)])[2],
            series=series,
            items=items,
            notes=list(notes),
            extra={"sprints": len(current)} | self.totals(current),
        )
        verdict = self.signal_of(figures, window, base)
        result.signal, result.signal_detail = verdict.signal, verdict.detail
        result.signal_up = verdict.signal_up
        result.signal_note = verdict.note
        if current and value is None:
            result.notes.append(self.empty_sprints)
        result.notes += low_sample_note(result, self.things)
        self.described(result, data)
        if current and result.no_data_reason == self.nothing:
            result.no_data_reason = self.empty_sprints
        return result

    def totals(self, figures: list[SprintFigures]) -> dict:
        keys = ("committed", "completed", "added", "removed", "at_end", "carried_over")
        return {k: sum(getattr(f, k) for f in figures) for k in keys}

    def signal_of(self, figures: list[SprintFigures], window: Window, base: Window) -> Verdict:
        """Fisher's exact test of the window's pooled items against the (up to 20) weeks before it.
        When it cannot run, the note says why: a figure never tested must not read as one "within
        normal variation"."""
        if not self.bounded:
            return Verdict(note="not tested for signals: this share can pass 100%")
        a = self.pooled([f for f in figures if window.contains(f.end)])
        b = self.pooled([f for f in figures if base.contains(f.end)])
        if min(a[1], b[1]) < stats.MIN_SIDE:
            return Verdict(
                note=f"too few {self.things} for a signal ({a[1]} in this period, {b[1]} before; "
                f"{stats.MIN_SIDE} a side needed)"
            )
        return fisher_verdict((a[0], b[0]), (a[1], b[1]), base, self.words(), self.things) or Verdict()


class SprintCompletion(SprintMetric):
    """Items committed at start, still in the sprint and done at its end ÷ items committed at start."""

    id = "sprint-completion"
    name = "Sprint completion (say/do)"
    better = "higher"
    definition = (
        "items committed at start that are in the sprint and done at its end ÷ items committed at start"
    )

    def fraction(self, f: SprintFigures) -> tuple[int, int]:
        return f.completed, f.committed


class SprintScopeChange(SprintMetric):
    """(Items added after start + committed items removed before end) ÷ items committed at start;
    can pass 100%."""

    id = "sprint-scope-change"
    name = "Sprint scope change"
    better = "lower"
    definition = "(items added after start + items removed before end) ÷ items committed at start"
    bounded = False

    def fraction(self, f: SprintFigures) -> tuple[int, int]:
        return f.added + f.removed, f.committed


class SprintCarryOver(SprintMetric):
    """Items in the sprint at its end and not done ÷ items in the sprint at its end, in %; the item
    count is ``extra["carried_over"]``."""

    id = "sprint-carry-over"
    name = "Sprint carry-over"
    unit = "items, %"
    better = "lower"
    definition = "items in the sprint at its end and not done ÷ items in the sprint at its end"
    things = "sprint items"
    empty_sprints = "no items in the period's sprints at their end"

    def fraction(self, f: SprintFigures) -> tuple[int, int]:
        return f.carried_over, f.at_end


METRICS = [SprintCompletion(), SprintScopeChange(), SprintCarryOver()]
