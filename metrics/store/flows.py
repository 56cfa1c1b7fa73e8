"""Replayed flows, stored: a digest reads an item's flow instead of re-reading its transitions and
replaying them, which was most of every flow metric's cost.

A row is keyed by the workflow's fingerprint (``Workflow.fingerprint``: the mapping and the replay
rules' version) and the item. It is a cache, never a source of truth:

- a new mapping has a new fingerprint, so it never reads flows replayed under the old one;
- the ``flows_forget_*`` triggers (schema m005) delete an item's rows whenever its work item row,
  its transitions or its source's status codes are written, by any writer, in the same transaction;
- flows are stored by the reader that replayed them, inside the read transaction that loaded their
  inputs (``TeamData``): if anything was written since that snapshot began, SQLite refuses the write
  and the flows are simply not stored, so a flow replayed from old rows can never land after the
  trigger that would have forgotten it.

Encoding: ``dates`` is the stage dates as little-endian doubles, ``timeline`` the entry instants as
doubles followed by the stage indices as signed bytes; NaN stands for None (SQLite stores no NaN, so
no real instant is NaN) and -1 for an unmapped status. ``unmapped`` is a JSON object: each unmapped
status the item passed through -> its seconds between committed and done (0 when none; "" for time in
a status with no name), NULL when there is none. One column carries both the names the unmapped-status
note lists and the time flow efficiency counts as waiting.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from collections.abc import Iterable
from functools import cache

import sqlite_utils

from metrics.store import is_readonly
from metrics.workflow import Flow, Workflow

_NAN = float("nan")
MAX_STAGES = 127  # stage indices are stored as signed bytes

# What the loader selects, in this order, after the work item's own columns.
COLUMNS = "f.committed, f.done, f.dates, f.timeline, f.unmapped"


@cache
def _doubles(n: int) -> struct.Struct:
    return struct.Struct(f"<{n}d")


@cache
def _steps(n: int) -> struct.Struct:
    return struct.Struct(f"<{n}d{n}b")


def encode(flow: Flow) -> tuple[float | None, float | None, bytes, bytes, str | None]:
    """The stored columns of a flow, in ``COLUMNS`` order."""
    ats, stages = zip(*flow.timeline, strict=True) if flow.timeline else ((), ())
    if None in ats:  # only when the item has no creation instant
        ats = [_NAN if at is None else at for at in ats]
    if None in stages:
        stages = [-1 if s is None else s for s in stages]
    return (
        flow.committed,
        flow.done,
        _doubles(len(flow.stage_dates)).pack(*[_NAN if d is None else d for d in flow.stage_dates]),
        _steps(len(ats)).pack(*ats, *stages),
        _encode_unmapped(flow),
    )


def _encode_unmapped(flow: Flow) -> str | None:
    if not flow.unmapped and not flow.unmapped_time:
        return None
    times = dict.fromkeys(flow.unmapped, 0.0) | flow.unmapped_time
    return json.dumps(times, sort_keys=True, ensure_ascii=False)


def _unpack(dates: bytes, timeline: bytes) -> tuple[list[float | None], list[tuple[float, int | None]]]:
    n = len(timeline) // 9
    values = _steps(n).unpack(timeline)
    return (
        [None if d != d else d for d in _doubles(len(dates) // 8).unpack(dates)],
        [
            (None if at != at else at, None if s < 0 else s)
            for at, s in zip(values[:n], values[n:], strict=True)
        ],
    )


class StoredFlow(Flow):
    """A flow read back from the store (the inverse of ``encode``). ``committed``, ``done``,
    ``unmapped`` and ``unmapped_time`` are read at once; the stage dates and the timeline are unpacked
    on first use, since most figures (cycle time, throughput, lead time...) need neither and unpacking
    them was a quarter of a warm load. Equal to a replayed ``Flow`` with the same fields."""

    __slots__ = ("_packed",)

    def __init__(
        self, committed: float | None, done: float | None, dates: bytes, timeline: bytes, unmapped: str | None
    ):
        self.committed = committed
        self.done = done
        if unmapped:  # most items have none: this runs for every stored flow a load reads
            times = json.loads(unmapped)
            self.unmapped = {s for s in times if s}  # "" only names time in a status with no name
            self.unmapped_time = {s: t for s, t in times.items() if t}
        else:
            self.unmapped, self.unmapped_time = set(), {}
        self._packed = (dates, timeline)

    def __getattr__(self, name: str):
        # Python calls this only for an attribute not found otherwise: here, an unset slot, i.e. the
        # dates or the timeline before their first use.
        if name not in ("stage_dates", "timeline"):
            raise AttributeError(name)
        self.stage_dates, self.timeline = _unpack(*self._packed)
        return getattr(self, name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flow):
            return NotImplemented
        fields = ("stage_dates", "committed", "done", "timeline", "unmapped", "unmapped_time")
        return all(getattr(self, f) == getattr(other, f) for f in fields)

    __hash__ = None  # like Flow's


def store(db: sqlite_utils.Database, workflow: Workflow, flows: Iterable[tuple[str, str, Flow]]) -> bool:
    """Store ``(source, key, flow)`` rows replayed under ``workflow``; False when they were not.

    Call inside the read transaction that loaded the flows' inputs. The write then succeeds only if
    the database is unchanged since that snapshot (otherwise SQLite answers "locked" at once, with
    no wait); a read-only database refuses it too. Either way nothing is stored and the caller's
    figures, computed from a consistent snapshot, stand: a miss costs a replay, never a wrong flow.

    A connection opened read-only (``open_db(..., readonly=True)``: the read commands) is not even
    tried: its flows stay in memory, and the file is never written by a command that only reads.
    """
    if not db.conn.in_transaction:
        raise RuntimeError("flows.store: call inside the transaction that read the flows' inputs")
    if len(workflow.stages) > MAX_STAGES or is_readonly(db):
        return False
    rows = [(workflow.fingerprint, src, key, *encode(flow)) for src, key, flow in flows]
    if not rows:
        return True
    try:
        with db.atomic():
            db.conn.executemany("insert or replace into flows values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    except sqlite3.OperationalError:
        return False
    return True


def keep_only(db: sqlite_utils.Database, fingerprints: Iterable[str]) -> None:
    """Drop the flows of every mapping not in ``fingerprints`` (the mappings teams use now),
    including any a computation that began before a mapping change stored after it."""
    kept = sorted(set(fingerprints))
    db.execute(
        f"delete from flows where workflow not in ({', '.join('?' * len(kept))})"
        if kept
        else "delete from flows",
        kept,
    )
