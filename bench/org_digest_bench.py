"""The org digest's compose time for 1,000 teams (issue 13's goal: median <= 500 ms, warm).

    python bench/org_digest_bench.py [--runs 7] [--db bench/org_digest.db]   # = make bench-org-digest

Works on a copy of ``bench/bench.db`` (``make bench`` builds it), ``bench/org_digest.db``, so the other
benchmarks' database is never changed: the copy gets 500 more teams (``team-501`` ... ``team-1000``,
the scopes of ``team-001`` ... ``team-500`` again under other names, time zones and metrics, as
platform teams sharing repositories would), three North Star metrics for the org, three
determinant metrics per team, and a sync ledger in which the incident source's last sync failed
(so every team with services is listed as stale). Made once; a later run reuses it.

Prints, for the whole org digest (``metrics.org_digest.build_org_digest``, and with it the Slack
payload ``bot.render.org_digest.message`` when that module exists):

- cold: nothing stored (``results`` emptied), every figure computed, once;
- the post-sync warming (``metrics.results.warm``: each team's digest figures and the org digest's
  content), from nothing stored, once;
- warm: after the warming, median and p90 of ``--runs`` composes.

"now" is the bench database's own (12:00 UTC on its build day). Measured, never asserted: exit 0
whatever the figures, non-zero only when something raised.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from metrics import results  # noqa: E402
from metrics.dataset import store_flows  # noqa: E402
from metrics.org_digest import build_org_digest  # noqa: E402
from metrics.runtime import settle  # noqa: E402
from metrics.store import open_db  # noqa: E402
from metrics.teams import get_team, list_teams, save_team, set_org  # noqa: E402

GOAL_MS = 500.0
TEAMS = 1000
NORTH_STAR = ["lead-time-for-changes", "deployment-frequency", "cycle-time"]
DETERMINANTS = [
    ["throughput", "pr-pickup-time", "change-failure-rate"],
    ["wip", "pr-size", "flow-efficiency"],
]
ZONES = ["Europe/Paris", "America/Chicago", "Asia/Tokyo", "UTC"]
SETUP_VERSION = "1"


def _bench_param(path: Path, key: str) -> str | None:
    """``bench_params[key]`` of the database at ``path``, read-only; None when the file, the table or
    the key is missing (``params``: what build_db.py built; ``org_digest``: the set-up done here)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("select value from bench_params where key = ?", [key]).fetchone()[0]
        finally:
            conn.close()
    except (sqlite3.Error, TypeError):
        return None


def prepare(source: Path, target: Path) -> str:
    """The copy with 1,000 teams, made (or remade when ``bench.db`` was rebuilt) and set up once."""
    params = _bench_param(source, "params")
    if params is None:
        raise SystemExit(f"no bench database at {source}: run `make bench` first")
    wanted = json.dumps({"source": params, "setup": SETUP_VERSION})
    if target.exists() and _bench_param(target, "org_digest") == wanted:
        return "reused"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    t0 = time.perf_counter()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(str(target))
    src.backup(dst)
    src.close()
    dst.close()
    os.chmod(target, 0o600)
    db = open_db(target)
    base = sorted((t for t in list_teams(db) if t.name.startswith("team-")), key=lambda t: t.name)
    for i, team in enumerate(base):
        team.metrics = NORTH_STAR + DETERMINANTS[0]
        save_team(db, team, who="bench")
        twin = get_team(db, team.name)
        twin.name = f"team-{len(base) + i + 1:03d}"
        twin.channel = f"CD{len(base) + i + 1:08d}"
        twin.timezone = ZONES[i % len(ZONES)]
        twin.metrics = DETERMINANTS[1]
        save_team(db, twin, who="bench")
    set_org(db, "north_star", NORTH_STAR, who="bench")
    stamp = datetime.fromtimestamp(json.loads(params)["now"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with db.conn:
        db.conn.executemany(
            "insert or replace into sync_status (source, stream, last_success, last_error, updated) "
            "values (?, ?, ?, ?, ?)",
            [
                ("jira", "issues", stamp, None, stamp),
                ("github", "pulls", stamp, None, stamp),
                ("github", "deployments", stamp, None, stamp),
                ("pagerduty", "incidents", "2026-11-20T08:00:00Z", "HTTP 503 from the incidents API", stamp),
            ],
        )
        db.conn.execute("insert or replace into bench_params values ('org_digest', ?)", [wanted])
    t1 = time.perf_counter()
    now = json.loads(params)["now"]
    store_flows(db, list_teams(db), now)  # as a sync leaves them (after_sync's first step)
    db.conn.close()
    return f"made in {t1 - t0:.0f} s, flows stored in {time.perf_counter() - t1:.0f} s"


def forget(db) -> None:
    """Nothing stored: every figure is computed (committed at once, so no later write joins it)."""
    with db.conn:
        db.conn.execute("delete from results")


def _renderer():
    try:
        from bot.render.org_digest import message
    except ImportError as exc:
        return None, f"rendering skipped: bot.render.org_digest.message is not importable ({exc})"
    return message, None


def ms(seconds: float) -> str:
    return f"{1000 * seconds:,.0f} ms"


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def compose(db, now: datetime, render) -> tuple[float, float | None, object]:
    t0 = time.perf_counter()
    digest = build_org_digest(db, now)
    t1 = time.perf_counter()
    if render is None:
        return t1 - t0, None, digest
    render(digest, now)
    return t1 - t0, time.perf_counter() - t0, digest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default=str(ROOT / "bench" / "bench.db"))
    p.add_argument("--db", default=str(ROOT / "bench" / "org_digest.db"))
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args(argv)
    made = prepare(Path(args.source), Path(args.db))
    db = open_db(args.db)
    now = datetime.fromtimestamp(json.loads(_bench_param(Path(args.db), "params"))["now"], UTC)
    render, skipped = _renderer()
    teams = len(list_teams(db))
    print("vsm-bot org digest benchmark")
    print(f"database  {args.db} ({made}), {teams:,} teams, now {now.isoformat()}")
    print(
        f"machine   {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if skipped:
        print(skipped)
    forget(db)
    settle()
    cold, cold_all, digest = compose(db, now, render)
    print(
        f"org digest: {len(digest.north_star)} North Star metrics, {len(digest.moved)} moved, "
        f"{len(digest.concluded)} concluded, {len(digest.stale)} stale teams, window {digest.window.label()}"
    )
    line = f"cold   (nothing stored)     content {ms(cold)}"
    print(line + (f", content + rendering {ms(cold_all)}" if cold_all is not None else ""))
    forget(db)
    settle()
    t0 = time.perf_counter()
    warmed = results.warm(db, now)
    print(
        f"warming after a sync       {ms(time.perf_counter() - t0)} (teams' digest windows "
        f"{ms(warmed['team_seconds'])}, org digest {ms(warmed['org_seconds'])})"
    )
    settle()
    content, whole = [], []
    for _ in range(max(5, args.runs)):
        c, w, _d = compose(db, now, render)
        content.append(c)
        if w is not None:
            whole.append(w)
    print(
        f"warm   ({len(content)} runs)            content median {ms(statistics.median(content))}, "
        f"p90 {ms(p90(content))}"
    )
    if whole:
        med = statistics.median(whole)
        print(f"                            content + rendering median {ms(med)}, p90 {ms(p90(whole))}")
    goal = 1000 * statistics.median(whole or content)
    print(
        f"goal: median <= {GOAL_MS:.0f} ms for the whole org digest: {'PASS' if goal <= GOAL_MS else 'MISS'}"
    )
    db.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
