"""Computed figures, stored: the org digest for a thousand teams composed from stored figures, not
recomputed from every team's data (issue 13's 500 ms goal; recomputing takes tens of seconds).

A figure is stored per (window, team or org, metric) with a *stamp* of everything it was computed
from, and read back only when the stamp computed now is the same; otherwise it is computed, as
``Metric.compute`` or ``metrics.org.rollups`` would, and stored. The stamp holds:

- the code: a hash of the ``metrics`` package's source (a new vsm-bot computes anew);
- the synced data: the data version (schema m009), a counter that triggers bump on every write to a
  table figures are read from, in the writer's own transaction, whoever writes. It is read *before*
  the data, so a figure computed from rows written after it was read carries an older version than
  the database then holds, and is never read back;
- the team's settings (every field of ``Team``: scope, workflow mapping, work types...); for the
  org's pooled figure, every team's name and settings, since each team's observations are pooled;
- the local day of ``now`` in the window's zone: the weekly series mark the running week partial,
  and only completed weeks are tested for signals;
- for the sprint figures, the sprints whose planned end has passed (a running sprint counts once it
  ends, at whatever time of day).

The org's settings need no part of it: the North Star metrics are the ids asked for, the time zone
is the window's, and targets are judged when the figures are read (``on_target``), never stored.
Only windows that have ended are stored (a digest's and the org digest's periods are complete days):
a window that ends after ``now`` (``--period 30d``, ending today) moves with the clock, so it is
always computed.

The explain ``items`` of a stored figure are not kept (a figure read back has none): a surface that
lists the items behind a figure computes it (``Metric.compute``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from metrics import catalogue
from metrics.catalogue.base import FAILED, SPRINTS, Metric, Result, Verdict
from metrics.org import Rollup, TeamFigure, _on_target, _org_target, _plain, figure, load_team, rollups
from metrics.runtime import gc_deferred
from metrics.store import is_readonly
from metrics.teams import Team, list_teams
from metrics.timeutil import Window

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


def team_stamp(team: Team) -> str:
    """A hash of every one of the team's settings, in their ``repr`` (a thousand teams are stamped on
    every org digest: ``Team.to_json``'s deep copy cost four times as much). Two stamps differ for
    any two settings that differ; settings equal but written in another order only cost a
    recomputation."""
    text = repr(tuple(getattr(team, f.name) for f in fields(team)))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _instant(now: datetime | float) -> float:
    return now.timestamp() if isinstance(now, datetime) else float(now)


def _day(window: Window, now: float) -> str:
    return datetime.fromtimestamp(now, window.tz).date().isoformat()


def _sprints_ended(db: sqlite_utils.Database, now: float) -> int:
    """How many sprints still open in the tool have passed their planned end by ``now``: a sprint
    figure counts a sprint from its end on, whatever the time of day."""
    return int(
        db.execute('select count(*) from sprints where complete is null and "end" <= ?', [now]).fetchone()[0]
    )


class Reading:
    """One composition's view of the stored figures on one window: the stamps (the data version read
    first, once), each team's settings stamped once, and the stored rows read once, however many
    parts of a digest ask for them."""

    def __init__(self, db: sqlite_utils.Database, window: Window, now: datetime | float):
        self.version = data_version(db)  # first: see the module's docstring
        self.db, self.window, self.now = db, window, _instant(now)
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
        """``(scope, metric) -> (stamp, payload)`` of every figure stored on the window."""
        if self._rows is None:
            self._rows = _stored(self.db, self.window)
        return self._rows


def cacheable(window: Window, now: float) -> bool:
    """Whether figures on ``window`` may be stored: it has ended, so nothing but the local day moves
    them as the clock runs (a window ending later holds the running day)."""
    return window.end <= now


# -- reading and writing ---------------------------------------------------------------------------------
def _key(window: Window) -> list:
    return [window.start, window.end, window.tz.key]


def _stored(db: sqlite_utils.Database, window: Window, scope: str | None = None) -> dict:
    """``(scope, metric) -> (stamp, payload)`` of the figures stored on ``window`` (of one scope, or
    every scope)."""
    sql = "select scope, metric, stamp, payload from results where since = ? and until = ? and tz = ?"
    params = _key(window)
    if scope is not None:
        sql, params = sql + " and scope = ?", [*params, scope]
    return {(s, m): (st, p) for s, m, st, p in db.execute(sql, params)}


def _store(db: sqlite_utils.Database, window: Window, rows: list[tuple[str, str, str, str]]) -> bool:
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
                "insert or replace into results (since, until, tz, scope, metric, stamp, payload, computed) "
                "values (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*_key(window), s, m, st, p, now) for s, m, st, p in rows],
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


class StoredResult(Result):
    """A ``Result`` read from the store: its head is decoded at once, the rest (series, notes,
    limits, extra...) on first use, since an org digest draws the rows of the first fifty teams of a
    thousand. Equal to the ``Result`` it was stored from, ``items`` aside (empty)."""

    def __init__(self, payload: str, metric: Metric, team: str, window: Window):
        head, _, rest = payload.partition("\n")
        self.metric, self.team, self.window, self.items = metric.id, team, window, []
        self.value, self.sample_size, self.signal = json.loads(head)
        self._rest = rest

    def __getattr__(self, name: str):
        # Only for an attribute not set yet: one of the rest, before its first use.
        rest = self.__dict__.pop("_rest", None)
        if rest is None:
            raise AttributeError(name)
        for key, value in json.loads(rest).items():
            self.__dict__.setdefault(key, value)  # a field set since it was read stands
        return getattr(self, name)


def result_from(payload: str, metric: Metric, team: str, window: Window) -> Result:
    return StoredResult(payload, metric, team, window)


def _rollup_payload(r: Rollup) -> str:
    v = r.verdict
    verdict = {"signal": v.signal, "note": v.note, "limits": v.limits, "detail": v.detail}
    return _dumps({f: getattr(r, f) for f in ROLLUP_FIELDS} | {"verdict": verdict})


# -- the public API ---------------------------------------------------------------------------------------
def team_figures(
    db: sqlite_utils.Database, team: Team, metric_ids: Sequence[str], window: Window, now: datetime | float
) -> list[Result]:
    """The team's figures on ``window``, in the order asked: the same ``Result`` ``Metric.compute``
    gives (value, previous, sample size, series, signal and its note, detail and limits, notes, the
    no-data and previous-period reasons, extra), read from the store when computed from the same
    data, settings, code and local day, else computed and stored. ``items`` is left empty: the items
    behind a figure are computed where they are shown."""
    found = figures_of(db, [(team, list(metric_ids))], window, now)
    return [found[(team.name, m)] for m in metric_ids]


def figures_of(
    db: sqlite_utils.Database,
    wanted: Sequence[tuple[Team, Sequence[str]]],
    window: Window,
    now: datetime | float,
    reading: Reading | None = None,
) -> dict[tuple[str, str], Result]:
    """Several teams' figures on one window (``team_figures`` for many: one read of the store, one
    ``TeamData`` per team with a figure to compute, one write): ``(team name, metric id) -> Result``."""
    at = _instant(now)
    metrics = {m: catalogue.get(m) for _t, ids in wanted for m in ids}
    out: dict[tuple[str, str], Result] = {}
    if not cacheable(window, at):
        with gc_deferred():
            for team, ids in wanted:
                data = load_team(db, team, at)
                out |= {(team.name, m): figure(metrics[m], team, data, window) for m in ids}
        return out
    reading = reading or Reading(db, window, at)
    stored = reading.stored() if len(wanted) > 1 else _stored(db, window, wanted[0][0].name if wanted else "")
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
    _store(db, window, rows)
    return out


def org_rollups(
    db: sqlite_utils.Database,
    metric_ids: Sequence[str],
    window: Window,
    now: datetime | float,
    targets: dict | None = None,
    *,
    teams: Sequence[Team] | None = None,
    reading: Reading | None = None,
) -> list[Rollup]:
    """``metrics.org.rollups`` over every team, read from the store where the org figure and each
    team's row were computed from the same data, settings, code and local day; what is not is
    computed and stored. Targets (``[org] targets``) are judged on the figures as read. ``teams``
    (every team, read here by default) and ``reading`` let a composition that has them share them."""
    at = _instant(now)
    if not cacheable(window, at):
        return rollups(db, metric_ids, window, at, teams, targets)
    reading = reading or Reading(db, window, at)  # before the teams: the data version comes first
    teams = sorted(list_teams(db) if teams is None else teams, key=lambda t: (t.name.casefold(), t.name))
    metrics = [catalogue.get(m) for m in metric_ids]
    stored = reading.stored()
    org_stamps = {m.id: reading.org(teams, m) for m in metrics}
    fresh = {m.id: stored.get((ORG, m.id)) for m in metrics}
    missing = [m.id for m in metrics if fresh[m.id] is None or fresh[m.id][0] != org_stamps[m.id]]
    computed: dict[str, Rollup] = {}
    if missing:
        with gc_deferred():
            computed = {r.metric.id: r for r in rollups(db, missing, window, at, teams, targets)}
        # A metric on which a team failed is not stored: its pooled figure lacks that team, and the
        # failure (logged) is tried again next time rather than kept.
        whole = [m for m in missing if all(t.result.no_data_reason != FAILED for t in computed[m].teams)]
        rows = [(ORG, m, org_stamps[m], _rollup_payload(computed[m])) for m in whole]
        rows += [
            (row.team, m, reading.team(team, computed[m].metric), result_payload(row.result))
            for m in whole
            for team, row in zip(teams, computed[m].teams, strict=True)
        ]
        _store(db, window, rows)
    kept = [m for m in metrics if m.id not in computed]
    figures = figures_of(db, [(t, [m.id for m in kept]) for t in teams], window, at, reading) if kept else {}
    out = []
    for m in metrics:
        if m.id in computed:
            out.append(computed[m.id])
            continue
        rows = [_team_row(m, t, figures[(t.name, m.id)]) for t in teams]
        out.append(_stored_rollup(m, window, json.loads(fresh[m.id][1]), rows, (targets or {}).get(m.id)))
    return out


def _team_row(metric: Metric, team: Team, result: Result) -> TeamFigure:
    """A team's row beside the org figure, as ``metrics.org.rollups`` makes it."""
    target = team.targets.get(metric.id)
    return TeamFigure(
        team.name,
        result.value,
        result.sample_size,
        _plain(target),
        _on_target(metric, result.value, target),
        result,
    )


def _stored_rollup(
    metric: Metric, window: Window, data: dict, rows: list[TeamFigure], target: object
) -> Rollup:
    verdict = Verdict(**data.pop("verdict"))
    out = Rollup(metric, window, verdict=verdict, teams=rows, **data)
    judged = _org_target(metric, target)
    out.target = _plain(judged)
    out.on_target = _on_target(metric, out.value, judged) if judged is not None else None
    return out


# -- after a sync ---------------------------------------------------------------------------------------
def warm(db: sqlite_utils.Database, now: datetime | float | None = None) -> dict:
    """Compute and store what the next digests read: each team's digest figures on its digest
    window, and the org digest's content on the org window. Run after a sync stored its data (and
    the replayed flows); figures already stored for the same stamp are only read. Returns counts
    and seconds, for the log and the benchmark."""
    from metrics.digest import digest_window
    from metrics.org import north_star_ids
    from metrics.org_digest import build_org_digest, determinants
    from metrics.teams import get_org

    at = datetime.now(UTC) if now is None else now
    at = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    t0 = time.perf_counter()
    north = north_star_ids(get_org(db))
    teams = list_teams(db)
    for team in teams:
        figures_of(db, [(team, north + determinants(team, north))], digest_window(team, at), at)
    t1 = time.perf_counter()
    build_org_digest(db, at)
    t2 = time.perf_counter()
    _forget_unused(db, at.timestamp())
    return {"teams": len(teams), "team_seconds": t1 - t0, "org_seconds": t2 - t1}


def _forget_unused(db: sqlite_utils.Database, now: float) -> None:
    """Drop the figures nobody recomputed for ``KEEP_DAYS``: windows no digest asks for any more
    (every window asked for is restamped at least daily, by its local day)."""
    if is_readonly(db):
        return
    try:
        with db.atomic():
            db.execute("delete from results where computed < ?", [now - KEEP_DAYS * 86400])
    except sqlite3.OperationalError as exc:
        log.info("old figures not dropped (%s)", exc)


def after_sync(db: sqlite_utils.Database, teams: list[Team], now: datetime | float | None = None) -> int:
    """What a sync runs once its data is stored: the replayed flows (``metrics.dataset.store_flows``,
    as before), then ``warm``. Warming never fails the sync: an error is logged, and the figures are
    computed when first asked for."""
    from metrics.dataset import store_flows

    read = store_flows(db, teams, now)
    try:
        done = warm(db, now)
        log.info(
            "figures stored for %d teams in %.1f s, the org digest's in %.1f s",
            done["teams"],
            done["team_seconds"],
            done["org_seconds"],
        )
    except Exception as exc:  # noqa: BLE001 - one log line: the figures are computed on demand
        log.warning("figures not stored after the sync (%s: %s)", type(exc).__name__, exc)
    return read


__all__ = ["after_sync", "data_version", "figures_of", "org_rollups", "team_figures", "warm"]
