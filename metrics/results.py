"""Computed figures, stored: the org digest for a thousand teams composed from stored figures, not
recomputed from every team's data (issue 13's 500 ms goal; recomputing takes tens of seconds).

A figure is stored per (workspace, window, team or org, metric) with a *stamp* of everything it was
computed from, and read back only when the stamp computed now is the same; otherwise it is computed, as
``Metric.compute`` or ``metrics.org.rollups`` would, and stored. The stamp holds:

- the code: a hash of the ``metrics`` package's source (a new vsm-bot computes anew);
- the synced data: the data version (schema m009, m010), a counter that triggers bump on every write
  to a table figures are read from, in the writer's own transaction, whoever writes (of
  ``sync_status``, the sync's ledger, only what figures read: a row added or removed, a stream's
  first success); it is read *before* the data, so a figure computed from rows written after it was
  read carries an older version than the database then holds, and is never read back;
- the team's settings a figure is computed from (every field of ``Team`` but ``UNSTAMPED``: scope,
  workflow mapping, work types...); for the org's pooled figure, every team's name and those
  settings, since each team's observations are pooled;
- the local day of ``now`` in the window's zone: the weekly series mark the running week partial,
  and only completed weeks are tested for signals;
- for the sprint figures, the sprints whose planned end has passed (a running sprint counts once it
  ends, at whatever time of day).

The org's settings need no part of it: the North Star metrics are the ids asked for, the time zone
is the window's, and targets are judged when the figures are read (``on_target``), never stored.
Only windows that have ended are stored (a digest's and the org digest's periods are complete days):
a window that ends after ``now`` (``--period 30d``, ending today) moves with the clock, so it is
always computed.

Each workspace (``metrics.workspace``) stores its own: two workspaces may each have a team of one
name with other settings, and an org figure pools only its workspace's teams. The data they are
computed from is the deployment's, so a sync warms every workspace (``after_sync``).

The explain ``items`` of a stored figure are not kept (a figure read back has none): a surface that
lists the items behind a figure computes it (``Metric.compute``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from metrics import catalogue
from metrics.catalogue.base import FAILED, SPRINTS, Metric, Result, Verdict
from metrics.errors import error_line
from metrics.org import Rollup, TeamFigure, by_name, figure, judged, load_team, rollups, team_row
from metrics.runtime import gc_deferred
from metrics.store import is_readonly
from metrics.teams import Team, list_teams
from metrics.timeutil import Window, epoch
from metrics.workspace import SINGLE, Workspace, shown
from metrics.workspace_rows import INSTALLED_AS

log = logging.getLogger(__name__)

ORG = ""  # the org's scope: no team is named "" (``TEAM_NAME``)
KEEP_DAYS = 7  # a stored figure not recomputed for this long is for a window nobody asks for any more
STORE_WAIT_MS = 50  # a write lock held by a sync is not waited for: the figure is simply not stored
# The parts of a ``Result`` a stored figure keeps (everything but ``items``, ``metric``, ``team``, ``window``).
RESULT_FIELDS = (
    "value",
    "unit",
    "sample_size",
    "previous",
    "series",
    "notes",
    "signal",
    "signal_up",
    "extra",
    "signal_note",
    "limits",
    "signal_detail",
    "previous_note",
    "no_data_reason",
)
# The parts of a ``Rollup``'s org figure kept (targets are judged when read).
ROLLUP_FIELDS = (
    "value",
    "previous",
    "sample_size",
    "series",
    "poolable",
    "previous_note",
    "no_data_reason",
    "contributors",
)

_code: str | None = None


# -- the stamp ---------------------------------------------------------------------------------------------
def code_stamp() -> str:
    """A hash of the ``metrics`` package's source, read once per process: a figure computed by other
    code is computed again."""
    global _code
    if _code is None:
        root = Path(__file__).resolve().parent
        h = hashlib.sha1()
        for path in sorted(root.rglob("*.py")):
            if path.parent.name == "sample":  # the demo's history generator computes no figure
                continue
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
        _code = h.hexdigest()[:16]
    return _code


def data_version(db: sqlite_utils.Database) -> int:
    """The data version (schema m009): bumped by every write to a table figures are read from."""
    return int(db.execute("select n from data_version where id = 1").fetchone()[0])


# The team's settings no figure is computed from, left out of its stamp so that changing one keeps
# its stored figures (and the org's, which stamp every team's). Read from the code: ``channel``,
# ``nudges``, ``nudge_repeat_hours`` and ``snooze_until`` are where and when nudges go;
# ``stale_pr_hours`` feeds only the stale-PR nudge (``pull_requests.stale_prs``), no metric;
# ``targets`` are judged when a figure is read (``on_target``, ``target_status``), never stored;
# ``metrics`` is which figures a team's digest asks for, not how one is computed; ``digest`` is
# when and over how many days, and the window is part of a stored figure's key; ``jql`` is read by
# no figure (the sync's own query is the source's). Any other field, a new one included, is stamped.
UNSTAMPED = frozenset(
    (
        "channel",
        "nudges",
        "nudge_repeat_hours",
        "snooze_until",
        "stale_pr_hours",
        "targets",
        "metrics",
        "digest",
        "jql",
    )
)


STAMPED = tuple(f.name for f in fields(Team) if f.name not in UNSTAMPED)


def team_stamp(team: Team) -> str:
    """A hash of the team's settings a figure is computed from (every field but ``UNSTAMPED``), in
    their ``repr`` (a thousand teams are stamped on every org digest: ``Team.to_json``'s deep copy
    cost four times as much). Two stamps differ for any two such settings that differ; settings
    equal but written in another order only cost a recomputation."""
    text = repr(tuple(getattr(team, name) for name in STAMPED))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _day(window: Window, now: float) -> str:
    return datetime.fromtimestamp(now, window.tz).date().isoformat()


def _sprints_ended(db: sqlite_utils.Database, now: float) -> int:
    """How many sprints still open in the tool have passed their planned end by ``now``: a sprint
    figure counts a sprint from its end on, whatever the time of day."""
    return int(
        db.execute('select count(*) from sprints where complete is null and "end" <= ?', [now]).fetchone()[0]
    )


class Reading:
    """One composition's view of the stored figures on one window of one workspace: the stamps (the
    data version read first, once), each team's settings stamped once, and the stored rows read once,
    however many parts of a digest ask for them."""

    def __init__(
        self, db: sqlite_utils.Database, window: Window, now: datetime | float, *, ws: Workspace = SINGLE
    ):
        self.version = data_version(db)  # first: see the module's docstring
        self.db, self.window, self.now, self.ws = db, window, epoch(now), ws
        self.base = f"{code_stamp()}|{self.version}|{_day(window, self.now)}"
        self._sprints: int | None = None
        self._teams: dict[int, tuple[Team, str]] = {}
        self._every: dict[tuple[int, ...], str] = {}
        self._rows: dict | None = None

    def _extra(self, metric: Metric) -> str:
        if SPRINTS not in metric.history:
            return ""
        if self._sprints is None:
            self._sprints = _sprints_ended(self.db, self.now)
        return f"|sprints {self._sprints}"

    def _team(self, team: Team) -> str:
        hit = self._teams.get(id(team))
        if hit is None or hit[0] is not team:
            hit = self._teams[id(team)] = (team, team_stamp(team))
        return hit[1]

    def team(self, team: Team, metric: Metric) -> str:
        return f"{self.base}|{self._team(team)}{self._extra(metric)}"

    def org(self, teams: Sequence[Team], metric: Metric) -> str:
        key = tuple(id(t) for t in teams)
        if key not in self._every:
            text = "\n".join(f"{t.name}\t{self._team(t)}" for t in teams)
            self._every[key] = hashlib.sha1(text.encode()).hexdigest()[:16]
        return f"{self.base}|org {self._every[key]}{self._extra(metric)}"

    def stored(self) -> dict:
        """``(scope, metric) -> (stamp, payload)`` of every figure the workspace stored on the window."""
        if self._rows is None:
            self._rows = _stored(self.db, self.window, ws=self.ws)
        return self._rows

    def reread(self) -> None:
        """Read the stored figures again on next use: another reader stored some since."""
        self._rows = None


def cacheable(window: Window, now: float) -> bool:
    """Whether figures on ``window`` may be stored: it has ended, so nothing but the local day moves
    them as the clock runs (a window ending later holds the running day)."""
    return window.end <= now


# -- reading and writing ---------------------------------------------------------------------------------
def _key(window: Window, ws: Workspace = SINGLE) -> list:
    """The stored figures' key up to the scope: the workspace (m013), then the window."""
    return [ws, window.start, window.end, window.tz.key]


def _stored(
    db: sqlite_utils.Database, window: Window, scope: str | None = None, *, ws: Workspace = SINGLE
) -> dict:
    """``(scope, metric) -> (stamp, payload)`` of the figures stored on ``window`` in workspace ``ws``
    (of one scope, or every scope)."""
    sql = (
        "select scope, metric, stamp, payload from results "
        "where workspace = ? and since = ? and until = ? and tz = ?"
    )
    params = _key(window, ws)
    if scope is not None:
        sql, params = sql + " and scope = ?", [*params, scope]
    return {(s, m): (st, p) for s, m, st, p in db.execute(sql, params)}


def _store(
    db: sqlite_utils.Database,
    window: Window,
    rows: list[tuple[str, str, str, str]],
    *,
    ws: Workspace = SINGLE,
) -> bool:
    """Store ``(scope, metric, stamp, payload)`` rows; False when they could not be (a read-only
    database, or a writer holding the lock: not waited for, the figures are computed next time)."""
    if not rows or is_readonly(db):
        return False
    now = time.time()
    conn = db.conn
    wait = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute(f"PRAGMA busy_timeout = {STORE_WAIT_MS}")
    try:
        with db.atomic():
            conn.executemany(
                "insert or replace into results "
                "(workspace, since, until, tz, scope, metric, stamp, payload, computed) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*_key(window, ws), s, m, st, p, now) for s, m, st, p in rows],
            )
    except sqlite3.OperationalError as exc:
        log.info("figures not stored (%s): computed again when next asked", exc)
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(wait)}")
    return True


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


HEAD_FIELDS = ("value", "sample_size", "signal")


def result_payload(result: Result) -> str:
    """A figure as stored: its head (value, sample size, signal: what a team's row and the list of
    what moved read), a newline, then the rest. JSON has no raw newline, so the head is read alone."""
    head = [getattr(result, f) for f in HEAD_FIELDS]
    rest = {f: getattr(result, f) for f in RESULT_FIELDS if f not in HEAD_FIELDS}
    return f"{_dumps(head)}\n{_dumps(rest)}"


class _Rest:
    """A field of a stored figure kept past its head (series, notes, limits, no-data reason...):
    decoded, with all the others, on the first read of any of them, since an org digest draws the
    rows of the first fifty teams of a thousand. A data descriptor on ``StoredResult``, so it is
    found before ``Result``'s class-level default (a ``__getattr__`` is not: it would read the
    default None of ``no_data_reason`` instead of the stored reason)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj: StoredResult | None, owner: type | None = None) -> object:
        if obj is None:
            return self
        values = obj.__dict__
        if self.name not in values:
            obj._decode()
        return values[self.name]

    def __set__(self, obj: StoredResult, value: object) -> None:
        obj.__dict__[self.name] = value


class StoredResult(Result):
    """A ``Result`` read from the store: its head is decoded at once, the rest on first use (``_Rest``).
    Every field reads what the ``Result`` it was stored from held, ``items`` aside (empty); it is
    not ``==`` to that ``Result`` (a dataclass compares only instances of one class)."""

    def __init__(self, payload: str, metric: Metric, team: str, window: Window):
        head, _, rest = payload.partition("\n")
        self.metric, self.team, self.window, self.items = metric.id, team, window, []
        self.value, self.sample_size, self.signal = json.loads(head)
        self._rest = rest

    def _decode(self) -> None:
        for key, value in json.loads(self.__dict__.pop("_rest")).items():
            self.__dict__.setdefault(key, value)  # a field set since it was read stands


for _name in RESULT_FIELDS:
    if _name not in HEAD_FIELDS:
        setattr(StoredResult, _name, _Rest(_name))


def result_from(payload: str, metric: Metric, team: str, window: Window) -> Result:
    return StoredResult(payload, metric, team, window)


def _rollup_payload(r: Rollup) -> str:
    v = r.verdict
    verdict = {"signal": v.signal, "note": v.note, "limits": v.limits, "detail": v.detail}
    return _dumps({f: getattr(r, f) for f in ROLLUP_FIELDS} | {"verdict": verdict})


# -- the public API ---------------------------------------------------------------------------------------
def team_figures(
    db: sqlite_utils.Database,
    team: Team,
    metric_ids: Sequence[str],
    window: Window,
    now: datetime | float,
    *,
    ws: Workspace = SINGLE,
) -> list[Result]:
    """The team's figures on ``window``, in the order asked: the same ``Result`` ``Metric.compute``
    gives (value, previous, sample size, series, signal and its note, detail and limits, notes, the
    no-data and previous-period reasons, extra), read from the store when computed from the same
    data, settings, code and local day, else computed and stored. ``items`` is left empty: the items
    behind a figure are computed where they are shown. ``ws``: the workspace the team is one of (its
    figures are stored under it: another workspace's team of the same name has its own)."""
    found = figures_of(db, [(team, list(metric_ids))], window, now, ws=ws)
    return [found[(team.name, m)] for m in metric_ids]


def figures_of(
    db: sqlite_utils.Database,
    wanted: Sequence[tuple[Team, Sequence[str]]],
    window: Window,
    now: datetime | float,
    reading: Reading | None = None,
    *,
    ws: Workspace = SINGLE,
) -> dict[tuple[str, str], Result]:
    """Several teams' figures on one window (``team_figures`` for many: one read of the store, one
    ``TeamData`` per team with a figure to compute, one write): ``(team name, metric id) -> Result``.
    Every team of ``wanted`` is one of workspace ``ws``'s, and ``reading`` (if given) is of ``ws``."""
    at = epoch(now)
    _same_workspace(reading, ws)
    metrics = {m: catalogue.get(m) for _t, ids in wanted for m in ids}
    out: dict[tuple[str, str], Result] = {}
    if not cacheable(window, at):
        with gc_deferred():
            for team, ids in wanted:
                data = load_team(db, team, at)
                out |= {(team.name, m): figure(metrics[m], team, data, window) for m in ids}
        return out
    reading = reading or Reading(db, window, at, ws=ws)
    one = wanted[0][0].name if wanted else ""
    stored = reading.stored() if len(wanted) > 1 else _stored(db, window, one, ws=ws)
    rows = []
    with gc_deferred():
        for team, ids in wanted:
            missing = []
            for m in ids:
                stamp = reading.team(team, metrics[m])
                hit = stored.get((team.name, m))
                if hit is not None and hit[0] == stamp:
                    out[(team.name, m)] = result_from(hit[1], metrics[m], team.name, window)
                else:
                    missing.append((m, stamp))
            if missing:
                data = load_team(db, team, at)
                for m, stamp in missing:
                    result = out[(team.name, m)] = figure(metrics[m], team, data, window)
                    if result.no_data_reason != FAILED:  # a failure is tried again next time
                        rows.append((team.name, m, stamp, result_payload(result)))
    _store(db, window, rows, ws=ws)
    return out


def _same_workspace(reading: Reading | None, ws: Workspace) -> None:
    """A reading of one workspace's figures is never used for another's: the same team name would
    read the other's stored figures (a programming error, raised at once)."""
    if reading is not None and reading.ws != ws:
        raise ValueError(f"a reading of {shown(reading.ws)}'s figures used for {shown(ws)}")


def org_rollups(
    db: sqlite_utils.Database,
    metric_ids: Sequence[str],
    window: Window,
    now: datetime | float,
    targets: dict | None = None,
    *,
    teams: Sequence[Team] | None = None,
    reading: Reading | None = None,
    ws: Workspace = SINGLE,
) -> list[Rollup]:
    """``metrics.org.rollups`` over every team of workspace ``ws``, read from the store where the org
    figure and each team's row were computed from the same data, settings, code and local day; what
    is not is computed and stored. Targets (``[org] targets``) are judged on the figures as read.
    ``teams`` (the workspace's, read here by default) and ``reading`` let a composition that has them
    share them."""
    at = epoch(now)
    _same_workspace(reading, ws)
    if not cacheable(window, at):
        return rollups(db, metric_ids, window, at, teams, targets, ws=ws)
    reading = reading or Reading(db, window, at, ws=ws)  # before the teams: the data version comes first
    teams = by_name(list_teams(db, ws=ws) if teams is None else teams)
    metrics = [catalogue.get(m) for m in metric_ids]
    org_stamps = {m.id: reading.org(teams, m) for m in metrics}

    def unstored() -> tuple[dict, list[str]]:
        fresh = {m.id: reading.stored().get((ORG, m.id)) for m in metrics}
        return fresh, [m.id for m in metrics if fresh[m.id] is None or fresh[m.id][0] != org_stamps[m.id]]

    fresh, missing = unstored()
    computed: dict[str, Rollup] = {}
    if missing:
        with _single_flight(db, window, ws) as flight:
            landed = flight.landed({m: org_stamps[m] for m in missing})  # raises the holder's error
            computed = {m: _as_read(landed[m], teams, targets) for m in landed}
            if len(computed) < len(missing):
                reading.reread()  # a reader that held the flight while this one waited stored them
                fresh, missing = unstored()
                missing = [m for m in missing if m not in computed]
            else:
                missing = []
            if missing:
                stamps = {m: org_stamps[m] for m in missing}
                try:
                    mine = _compute_org(db, missing, window, at, teams, targets, org_stamps, reading, ws)
                except Exception as exc:
                    flight.land(stamps, exc)
                    raise
                flight.land(stamps, mine)
                computed |= mine
    kept = [m for m in metrics if m.id not in computed]
    wanted = [(t, [m.id for m in kept]) for t in teams]
    figures = figures_of(db, wanted, window, at, reading, ws=ws) if kept else {}
    out = []
    for m in metrics:
        if m.id in computed:
            out.append(computed[m.id])
            continue
        rows = [team_row(m, t, figures[(t.name, m.id)]) for t in teams]
        out.append(_stored_rollup(m, window, json.loads(fresh[m.id][1]), rows, (targets or {}).get(m.id)))
    return out


def _compute_org(
    db: sqlite_utils.Database,
    missing: list[str],
    window: Window,
    at: float,
    teams: list[Team],
    targets: dict | None,
    org_stamps: dict[str, str],
    reading: Reading,
    ws: Workspace,
) -> dict[str, Rollup]:
    """Roll ``missing`` up and store the org figures with every team's row beside them, as ``ws``'s."""
    with gc_deferred():
        computed = {r.metric.id: r for r in rollups(db, missing, window, at, teams, targets, ws=ws)}
    # A metric on which a team failed is not stored: its pooled figure lacks that team, and the
    # failure (logged) is tried again next time rather than kept.
    whole = [m for m in missing if all(t.result.no_data_reason != FAILED for t in computed[m].teams)]
    rows = [(ORG, m, org_stamps[m], _rollup_payload(computed[m])) for m in whole]
    rows += [
        (row.team, m, reading.team(team, computed[m].metric), result_payload(row.result))
        for m in whole
        for team, row in zip(teams, computed[m].teams, strict=True)
    ]
    _store(db, window, rows, ws=ws)
    return computed


# One flight per (database file, workspace, window): readers of the same missing org figures in one process
# (App Home opened by several people after a sync, /vsm northstar, the org digest: 18 s to two
# minutes each on a thousand teams) wait for the first one's computation and take its result, rather
# than each computing it again in turn. The result is handed over in memory, not only through the
# store: a metric on which a team FAILED is not stored, and a store busy with a sync stores nothing,
# yet the readers waiting meanwhile must not each compute it again (four readers were four serial
# computations). Nor is an error computed again by each: they get it too. A reader that comes after
# the flight has landed computes anew (a failure is tried again next time). A flight and what it
# landed are dropped when its last reader leaves: nothing is kept between readings.
class _Flight:
    """The lock readers of one (database, workspace, window) take turns on, and what the last computation under
    it landed, for the readers that were waiting for it. Its counters are changed under
    ``_flights_guard``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.readers = 0  # readers between joining the flight and leaving it
        self.landings = 0  # computations landed so far: a reader takes only those after it joined
        self.result: tuple[int, dict[str, str], dict[str, Rollup] | Exception] | None = None


class _Seat:
    """One reader's place on a flight: takes what was landed after it joined, for the same stamps."""

    def __init__(self, flight: _Flight, joined: int):
        self.flight, self.joined = flight, joined

    def landed(self, stamps: dict[str, str]) -> dict[str, Rollup]:
        """The roll-ups of ``stamps``' metrics that a computation landed while this reader waited, for
        the same stamps (same data version, teams, code and day); raises its error if it raised."""
        with _flights_guard:
            result = self.flight.result
        if result is None or result[0] <= self.joined:
            return {}
        _landing, theirs, outcome = result
        same = [m for m, stamp in stamps.items() if theirs.get(m) == stamp]
        if not same:
            return {}
        if isinstance(outcome, Exception):
            raise _again(outcome)
        return {m: outcome[m] for m in same}

    def land(self, stamps: dict[str, str], outcome: dict[str, Rollup] | Exception) -> None:
        """Hand this reader's computation (or its error) to the readers waiting behind it."""
        with _flights_guard:
            self.flight.landings += 1
            self.flight.result = (self.flight.landings, dict(stamps), outcome)


def _again(exc: Exception) -> Exception:
    """The holder's error for a waiting reader: a copy of it (same type and arguments, raised from
    it), so that threads raising it do not share one traceback; the error itself when it cannot be
    copied."""
    try:
        twin = copy.copy(exc)
    except Exception:  # noqa: BLE001 - an exception class that cannot be rebuilt from its arguments
        return exc
    twin.__cause__ = exc
    return twin


def _as_read(r: Rollup, teams: Sequence[Team], targets: dict | None) -> Rollup:
    """A roll-up another reader computed, as this reader reads it: its own copy (the pooled figure
    and each team's ``Result`` shared, read only), each team's row and the org's target judged with
    this reader's settings, as a roll-up read from the store is (targets are not stamped)."""
    rows = [team_row(r.metric, t, row.result) for t, row in zip(teams, r.teams, strict=True)]
    return judged(replace(r, teams=rows, contributors=list(r.contributors)), (targets or {}).get(r.metric.id))


_flights: dict[tuple, _Flight] = {}
_flights_guard = threading.Lock()


@contextmanager
def _single_flight(db: sqlite_utils.Database, window: Window, ws: Workspace) -> Iterator[_Seat]:
    path = next((f for _seq, name, f in db.execute("pragma database_list") if name == "main"), "")
    key = (path or id(db.conn), *_key(window, ws))  # an in-memory database is its connection's alone
    with _flights_guard:
        flight = _flights.setdefault(key, _Flight())
        flight.readers += 1
        seat = _Seat(flight, flight.landings)
    try:
        with flight.lock:
            yield seat
    finally:
        with _flights_guard:
            flight.readers -= 1
            if flight.readers == 0:  # nobody waits for what it landed: a later reader starts anew
                flight.result = None
                if _flights.get(key) is flight:
                    del _flights[key]


def _stored_rollup(
    metric: Metric, window: Window, data: dict, rows: list[TeamFigure], target: object
) -> Rollup:
    verdict = Verdict(**data.pop("verdict"))
    return judged(Rollup(metric, window, verdict=verdict, teams=rows, **data), target)


# -- after a sync ---------------------------------------------------------------------------------------
def workspaces(db: sqlite_utils.Database) -> list[Workspace]:
    """The workspaces whose digests will read what a sync stores, in key order: single-workspace mode
    (``SLACK_BOT_TOKEN``) and every installed workspace (an ``installations`` row), each with a team.
    An uninstalled workspace's teams wait for a reinstall or ``vsm forget-workspace``: nobody reads
    their figures, so warming them would cost every sync for ever. A workspace with org settings and
    no team has nothing to roll up."""
    return [
        Workspace(w)
        for (w,) in db.execute(
            "select distinct workspace from teams where workspace = ? or workspace in "
            f"(select {INSTALLED_AS} from installations) order by workspace",
            [SINGLE],
        )
    ]


def warm(db: sqlite_utils.Database, now: datetime | float | None = None) -> dict:
    """Compute and store what the next digests read, in every workspace ``workspaces`` names: each
    team's digest figures on its digest window, and the workspace's org digest content on its org
    window. Run after a sync stored its data (and the replayed flows); figures already stored for the
    same stamp are only read. A workspace that fails is logged and counted (``failed``), and the
    others are still warmed, as the scheduler serves each workspace on its own: its figures are
    computed when first asked for. Returns counts and seconds, for the log and the benchmark."""
    at = datetime.now(UTC) if now is None else now
    at = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    done = {"workspaces": 0, "failed": 0, "teams": 0, "team_seconds": 0.0, "org_seconds": 0.0}
    for ws in workspaces(db):
        try:
            mine = warm_workspace(db, at, ws=ws)
        except Exception as exc:  # noqa: BLE001 - one workspace's bad row never stops another's figures
            done["failed"] += 1
            log.error("figures of %s not stored: %s", shown(ws), error_line(exc))
            continue
        done["workspaces"] += 1
        for key in ("teams", "team_seconds", "org_seconds"):
            done[key] += mine[key]
    _forget_unused(db, at.timestamp())
    return done


def warm_workspace(db: sqlite_utils.Database, now: datetime, *, ws: Workspace = SINGLE) -> dict:
    """``warm`` for one workspace: its teams' digest figures, then its org digest's content."""
    from metrics.digest import digest_window
    from metrics.org import north_star_ids
    from metrics.org_digest import build_org_digest, determinants
    from metrics.teams import get_org

    t0 = time.perf_counter()
    north = north_star_ids(get_org(db, ws=ws))
    teams = list_teams(db, ws=ws)
    for team in teams:
        figures_of(db, [(team, north + determinants(team, north))], digest_window(team, now), now, ws=ws)
    t1 = time.perf_counter()
    build_org_digest(db, now, ws=ws)
    t2 = time.perf_counter()
    return {"teams": len(teams), "team_seconds": t1 - t0, "org_seconds": t2 - t1}


def _forget_unused(db: sqlite_utils.Database, now: float) -> None:
    """Drop the figures nobody recomputed for ``KEEP_DAYS``, whichever workspace's: windows no digest
    asks for any more (every window asked for is restamped at least daily, by its local day)."""
    if is_readonly(db):
        return
    try:
        with db.atomic():
            db.execute("delete from results where computed < ?", [now - KEEP_DAYS * 86400])
    except sqlite3.OperationalError as exc:
        log.info("old figures not dropped (%s)", exc)


def after_sync(db: sqlite_utils.Database, now: datetime | float | None = None) -> int:
    """What a sync runs once its data is stored: the replayed flows of the teams of every workspace
    read (``workspaces``: single mode and the installed ones; ``metrics.dataset.store_flows``), then
    ``warm``, which stores those workspaces' figures. It takes no teams: a caller cannot leave a
    workspace out. Warming never fails the sync: an error is logged, and the figures are computed
    when first asked for."""
    from metrics.dataset import store_flows

    read = store_flows(db, [t for ws in workspaces(db) for t in list_teams(db, ws=ws)], now)
    try:
        done = warm(db, now)
        log.info(
            "figures stored for %d teams in %d workspaces in %.1f s, the org digests' in %.1f s%s",
            done["teams"],
            done["workspaces"],
            done["team_seconds"],
            done["org_seconds"],
            f"; {done['failed']} failed" if done["failed"] else "",
        )
    except Exception as exc:  # noqa: BLE001 - one log line: the figures are computed on demand
        log.warning("figures not stored after the sync (%s: %s)", type(exc).__name__, exc)
    return read


__all__ = [
    "after_sync",
    "data_version",
    "figures_of",
    "org_rollups",
    "team_figures",
    "warm",
    "warm_workspace",
    "workspaces",
]
