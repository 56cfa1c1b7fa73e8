"""Workflow mapping and stage dates: the jira-agile-metrics rules of docs/metrics.md, on exact instants.

A team maps the tool's statuses to ordered stages: ``backlog`` -> ``committed`` -> in-progress stages
(each active or waiting) -> ``done``. ``replay`` turns one item's status history into stage dates, a
status timeline and the committed/done instants every flow metric starts from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple, TypeVar

from metrics.errors import VsmError

BACKLOG, COMMITTED, DONE = "backlog", "committed", "done"
ACTIVE, WAITING = "active", "waiting"
# Bump whenever a replay can change what it returns: ``replay_steps``, how a status finds its stage,
# or how ``item_steps`` builds the steps replayed (for ``replay`` and ``TeamData``'s loader alike). Flows stored
# by an older version then carry another fingerprint and are never read again.
# 2: a flow carries the time spent in each unmapped status during its cycle (``Flow.unmapped_time``).
REPLAY_VERSION = 2


@dataclass(frozen=True)
class Stage:
    name: str
    statuses: tuple[str, ...]
    kind: str  # backlog | committed | active | waiting | done

    @property
    def in_flow(self) -> bool:
        """Committed and in-progress stages: the span between commitment and done."""
        return self.kind in (COMMITTED, ACTIVE, WAITING)


@dataclass(frozen=True)
class Workflow:
    """Ordered stages; statuses match by id first, else by name, case-insensitively."""

    stages: tuple[Stage, ...]
    _by_key: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    _memo: dict[tuple, int | None] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise VsmError("workflow: stage names must be unique")
        if not self.stages or self.stages[0].kind != BACKLOG:
            raise VsmError("workflow: the first stage must be `backlog`")
        if self.stages[-1].kind != DONE or sum(s.kind == DONE for s in self.stages) != 1:
            raise VsmError("workflow: the last stage, and only it, must be `done`")
        if not any(s.kind in (ACTIVE, WAITING) for s in self.stages):
            raise VsmError("workflow: at least one in-progress stage is needed between backlog and done")
        seen: dict[str, str] = {}
        for i, stage in enumerate(self.stages):
            for status in stage.statuses:
                k = status.strip().lower()
                if k in seen and seen[k] != stage.name:
                    raise VsmError(
                        f"workflow: status {status!r} is mapped to both {seen[k]} and {stage.name}"
                    )
                seen[k] = stage.name
                self._by_key[k] = i

    @property
    def done_index(self) -> int:
        return len(self.stages) - 1

    def stage_index(self, status_id: str | None, status_name: str | None) -> int | None:
        """The stage of a status (id first, else name), or None when the team has not mapped it."""
        key = (status_id, status_name)
        try:
            return self._memo[key]
        except KeyError:
            i = self._memo[key] = self._lookup(status_id, status_name)
            return i

    @cached_property
    def in_flow_indices(self) -> list[int]:
        return [i for i, s in enumerate(self.stages) if s.in_flow]

    @cached_property
    def fingerprint(self) -> str:
        """Names everything a replay depends on besides the item's own rows: the stages with their
        kinds and statuses, and the replay rules' version. Stored flows are keyed by it, so a new
        mapping (or new rules) can never be answered with flows replayed under the old one."""
        text = json.dumps([REPLAY_VERSION, self.to_dict()], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _lookup(self, status_id: str | None, status_name: str | None) -> int | None:
        if status_id is not None:
            i = self._by_key.get(str(status_id).strip().lower())
            if i is not None:
                return i
        if status_name is not None:
            return self._by_key.get(status_name.strip().lower())
        return None

    def statuses_of(self, kinds: Iterable[str]) -> list[str]:
        wanted = set(kinds)
        return [st for s in self.stages if s.kind in wanted for st in s.statuses]

    def to_dict(self) -> list[dict]:
        return [{"stage": s.name, "kind": s.kind, "statuses": list(s.statuses)} for s in self.stages]

    @classmethod
    def from_list(cls, rows: Sequence[dict]) -> Workflow:
        return cls(tuple(Stage(r["stage"], tuple(r["statuses"]), r["kind"]) for r in rows))

    @classmethod
    def from_config(cls, table: dict, waiting: Iterable[str] = ()) -> Workflow:
        """``[team.workflow]``: ordered ``stage = [statuses]`` or ``stage = {statuses=[..], waiting=true}``.

        ``backlog`` comes first and ``done`` last; ``committed`` is optional and counts as waiting;
        every other stage is in progress, active unless marked waiting.
        """
        waiting = {w.lower() for w in waiting}
        stages = []
        for name, spec in table.items():
            if isinstance(spec, dict):
                statuses, is_waiting = spec.get("statuses"), bool(spec.get("waiting", False))
            else:
                statuses, is_waiting = spec, name.lower() in waiting
            if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
                raise VsmError(f"workflow stage {name!r} must be a list of status names or ids")
            lname = name.lower()
            if lname == BACKLOG:
                kind = BACKLOG
            elif lname == COMMITTED:
                kind = COMMITTED
            elif lname == DONE:
                kind = DONE
            else:
                kind = WAITING if is_waiting else ACTIVE
            stages.append(Stage(lname, tuple(statuses), kind))
        return cls(tuple(stages))


class Transition(NamedTuple):
    """One status change. A plain tuple (SQLite rows in this column order work as they are): sorting
    transitions sorts by time, then by changelog id."""

    at: float
    seq: int
    from_id: str | None
    from_status: str | None
    to_id: str | None
    to_status: str | None


@dataclass(slots=True)
class Flow:
    """One item's path through the team's workflow, after the replay."""

    stage_dates: list[float | None]
    committed: float | None  # start of cycle time; None: never entered the team's system
    done: float | None  # set iff the item is in the done stage after the replay
    timeline: list[tuple[float, int | None]]  # (entered at, stage index or None if unmapped)
    unmapped: set[str]
    # Seconds in each unmapped status between committed and done ("" for a status with no name): time
    # that counts as waiting, kept by name so a data-quality note can say where it went. Empty unless
    # the item was committed and is done.
    unmapped_time: dict[str, float] = field(default_factory=dict)

    @property
    def closed_without_flow(self) -> bool:
        return self.done is not None and self.committed is None

    def stage_at(self, ts: float) -> int | None:
        """The stage the item was in at an instant (None before creation or in an unmapped status)."""
        current = None
        for at, stage in self.timeline:
            if at > ts:
                break
            current = stage
        return current


_NONES: list[None] = [None] * 64

Step = tuple[float, int | None, str | None]  # (at, stage index or None if unmapped, status label)
C = TypeVar("C")


def item_steps(
    workflow: Workflow,
    created: float,
    current_id: str | None,
    current_status: str | None,
    changes: list[C] | None,
    order: Callable[[C], Any] | None,
    initial: Callable[[C], tuple[int | None, str | None]],
    entered: Callable[[C], Step],
) -> list[Step]:
    """The steps ``replay_steps`` replays for one item (rules 1 and 2), in the one place they are built:
    ``replay`` reads ``Transition`` tuples and the loader reads status codes, so each passes how to
    read its changes, and both replay the same steps from the same history.

    ``changes`` is sorted in place by ``order`` (time, ties by changelog id); ``initial(first)`` is the
    (stage index, label) of the first change's ``from`` status, which the item was created in;
    ``entered(change)`` is the step the change makes. With no changes, the item has sat in its current
    status since ``created``."""
    if not changes:
        return [(created, workflow.stage_index(current_id, current_status), current_status or current_id)]
    changes.sort(key=order)
    steps = [(created, *initial(changes[0]))]
    steps += map(entered, changes)
    return steps


def _from_stage(workflow: Workflow) -> Callable[[Transition], tuple[int | None, str | None]]:
    index = workflow.stage_index
    return lambda t: (index(t[2], t[3]), t[3] or t[2])


def _entered(workflow: Workflow) -> Callable[[Transition], Step]:
    index = workflow.stage_index
    return lambda t: (t[0], index(t[4], t[5]), t[5] or t[4])


def replay(
    workflow: Workflow,
    created: float,
    current_id: str | None,
    current_status: str | None,
    transitions: Sequence[Transition],
) -> Flow:
    """Stage dates of an item from its status changes (see ``replay_steps`` for the rules)."""
    # Sorted as whole tuples (at, seq, ...): time order, ties by changelog id.
    steps = item_steps(
        workflow,
        created,
        current_id,
        current_status,
        list(transitions),
        None,
        _from_stage(workflow),
        _entered(workflow),
    )
    return replay_steps(workflow, steps)


def replay_steps(workflow: Workflow, steps: Sequence[Step]) -> Flow:
    """Stage dates by docs/metrics.md rules 1–5, exact instants.

    ``steps`` are ``(at, stage index or None if unmapped, status label)`` in replay order, the first
    being the status the item was created in, at ``created``.

    1. The item enters its initial status at ``created`` (first change's ``from``, else current status).
    2. Status changes in time order (ties by changelog id); the first entry to a stage sets its date.
    3. Entering a stage clears the dates of all later stages.
    4. Committed = the first dated stage from ``committed`` through the in-progress stages.
    5. Done iff the done stage has a date after the replay.
    """
    n = len(workflow.stages)
    dates: list[float | None] = [None] * n
    unmapped: set[str] = set()
    timeline: list[tuple[float, int | None]] = []
    any_unmapped = False
    for at, i, label in steps:
        timeline.append((at, i))
        if i is None:
            any_unmapped = True
            if label:
                unmapped.add(label)
            continue
        if dates[i] is None:
            dates[i] = at
        if i + 1 < n:  # a move back clears every later stage
            dates[i + 1 :] = _NONES[: n - i - 1]

    committed = None
    for i in workflow.in_flow_indices:
        if dates[i] is not None:
            committed = dates[i]
            break
    done = dates[workflow.done_index]
    flow = Flow(dates, committed, done, timeline, unmapped)
    if any_unmapped and committed is not None and done is not None:
        flow.unmapped_time = _unmapped_time(steps, committed, done)
    return flow


def _unmapped_time(
    steps: Sequence[tuple[float, int | None, str | None]], start: float, end: float
) -> dict[str, float]:
    """Seconds in each unmapped status inside ``[start, end)``, by label ("" when it has none).

    Only time between two steps counts: after the last step the item is done (``end`` is a step's
    instant), so an unmapped status entered after done never enters the cycle."""
    out: dict[str, float] = {}
    for (at, i, label), (nxt, _, _) in zip(steps, steps[1:], strict=False):
        a, b = max(at, start), min(nxt, end)
        if i is None and b > a:
            out[label or ""] = out.get(label or "", 0.0) + (b - a)
    return out


def _merged(intervals: Sequence[tuple[float, float]]) -> list[list[float]]:
    """Overlapping intervals joined: time flagged twice (or re-flagged before unflagging) counts once."""
    merged: list[list[float]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return merged


def active_seconds(workflow: Workflow, flow: Flow, impediments: Sequence[tuple[float, float]] = ()) -> float:
    """Time in active stages between committed and done, walking the status timeline.

    Time inside an impediment (flagged) interval counts as waiting when the team opts in: the caller
    passes those intervals. Time in an unmapped status counts as waiting (docs/metrics.md): a status nobody
    mapped ("Blocked", "On Hold") is not active work, so carrying the previous stage through it would
    count a blocked item as busy. Only stage dates ignore an unmapped status.
    """
    if flow.committed is None or flow.done is None:
        return 0.0
    start, end = flow.committed, flow.done
    merged = _merged(impediments) if impediments else []
    stages = workflow.stages
    timeline = flow.timeline
    last = len(timeline) - 1
    total = 0.0
    # Called for every done item of a period and its baseline: one pass over the timeline, no copies.
    for k, (at, stage) in enumerate(timeline):
        if stage is None or stages[stage].kind != ACTIVE:
            continue
        nxt = timeline[k + 1][0] if k < last else end
        a, b = (at if at > start else start), (nxt if nxt < end else end)
        if b <= a:
            continue
        total += b - a
        if merged:
            total -= sum(max(0.0, min(b, e) - max(a, s)) for s, e in merged)
    return total
