"""Time every catalogue metric for one team over 90 days on a large database.

One command: ``python bench/metrics_bench.py`` (``make bench``). It builds the database with
``bench/build_db.py`` (or reuses it), then times each metric of ``metrics.catalogue.CATALOGUE`` with a
fresh ``TeamData`` per repetition, so what one metric loaded never flatters the next figure: each
time is what ``vsm metric ID`` costs, SQL included. It also times a digest-like pass (every metric on
one shared ``TeamData``) and reports the peak memory of the timing phase.

The build and the timing run in two child processes of a parent that does no work of its own:
Linux carries a parent's peak RSS into ``ru_maxrss`` of a child across fork and exec, so measuring
in a child of a big process would report the big process. Exit status 0 whatever the figures; 1 only
when something raised.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable without the project installed
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    import sqlite_utils

    from metrics.catalogue.base import Metric
    from metrics.teams import Team

TARGET_MS = 50.0
TARGET_MB = 300.0
WINDOW_DAYS = 90
HERE = Path(__file__).resolve().parent
DEFAULT_DB = HERE / "bench.db"


# -- timing (runs in the timing child; importable by tests) ---------------------------------------------


def _window(team: Team, now: float):
    from metrics.timeutil import days_ending_today

    return days_ending_today(WINDOW_DAYS, team.tz, datetime.fromtimestamp(now, UTC))


def _ms(values: list[float], p: float) -> float:
    from metrics.stats import percentile

    return round(1000 * percentile(values, p), 2)


def time_metrics(
    db: sqlite_utils.Database,
    team: Team,
    now: float,
    repeat: int = 20,
    catalogue: dict[str, Metric] | None = None,
) -> list[dict]:
    """One row per metric: p50/p95/max milliseconds of ``repeat`` runs after one warm-up.

    A metric that raises gets a row with ``error`` instead of times (and fails), so one unfinished
    metric does not hide the figures of the others.
    """
    from metrics.catalogue import CATALOGUE
    from metrics.dataset import TeamData

    catalogue = CATALOGUE if catalogue is None else catalogue
    window = _window(team, now)
    rows = []
    for metric_id, metric in catalogue.items():
        try:
            metric.compute(TeamData(db, team, now), window)
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                metric.compute(TeamData(db, team, now), window)
                times.append(time.perf_counter() - began)
        except Exception as exc:  # noqa: BLE001 - reported as a failing row, the run goes on
            rows.append({"metric": metric_id, "error": f"{type(exc).__name__}: {exc}", "pass": False})
            continue
        p95 = _ms(times, 0.95)
        rows.append(
            {
                "metric": metric_id,
                "p50_ms": _ms(times, 0.5),
                "p95_ms": p95,
                "max_ms": round(1000 * max(times), 2),
                "pass": p95 <= TARGET_MS,
            }
        )
    return rows


def time_digest(
    db: sqlite_utils.Database,
    team: Team,
    now: float,
    repeat: int = 20,
    catalogue: dict[str, Metric] | None = None,
    skip: set[str] = frozenset(),
) -> dict:
    """Every metric (but ``skip``) on one shared ``TeamData``, as a digest computes them: p50/p95/max ms."""
    from metrics.catalogue import CATALOGUE
    from metrics.dataset import TeamData

    catalogue = CATALOGUE if catalogue is None else catalogue
    metrics = [m for metric_id, m in catalogue.items() if metric_id not in skip]
    window = _window(team, now)
    times = []
    for _ in range(repeat + 1):
        began = time.perf_counter()
        data = TeamData(db, team, now)
        for metric in metrics:
            metric.compute(data, window)
        times.append(time.perf_counter() - began)
    times = times[1:]  # the first pass warmed the page cache
    return {
        "metrics": len(metrics),
        "p50_ms": _ms(times, 0.5),
        "p95_ms": _ms(times, 0.95),
        "max_ms": round(1000 * max(times), 2),
    }


def loaded_rows(db: sqlite_utils.Database, team: Team, now: float) -> dict:
    """What TeamData loads for the team when a metric needs its 20-week baseline: the work per call."""
    from metrics.catalogue.base import baseline_window
    from metrics.dataset import TeamData

    window = _window(team, now)
    start = min(baseline_window(window).start, window.previous().start)
    data = TeamData(db, team, now)
    return {
        "items": len(data.items(start)),
        "prs": len(data.pull_requests(start)),
        "deployments": len(data.deployments(start)),
        "incidents": len(data.incidents(start)),
    }


def pick_team(db: sqlite_utils.Database, name: str | None = None) -> Team:
    """The named team, else the first team that plans in sprints (so scrum metrics have work to do)."""
    from metrics.teams import get_team, list_teams

    if name:
        return get_team(db, name)
    teams = list_teams(db)
    return next((t for t in teams if t.boards), teams[0])


def timing_phase(path: str | Path, team_name: str | None, repeat: int) -> dict:
    """The whole timing phase on a built database, with this process's peak memory at the end."""
    import metrics.catalogue  # noqa: F401  (start-up imports, as `vsm` has them before its first request)
    from metrics.runtime import settle
    from metrics.store import open_db

    settle()  # what `vsm` does after start-up
    db = open_db(path, create=False)
    params = json.loads(db.execute("select value from bench_params where key = 'params'").fetchone()[0])
    now = params["now"]
    team = pick_team(db, team_name)
    rows = time_metrics(db, team, now, repeat)
    failed = {r["metric"] for r in rows if "error" in r}
    digest = time_digest(db, team, now, repeat, skip=failed)
    window = _window(team, now)
    out = {
        "team": team.name,
        "timezone": team.timezone,
        "window": window.label(),
        "now": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "loaded": loaded_rows(db, team, now),
        "repeat": repeat,
        "metrics": rows,
        "digest": digest,
    }
    # Linux reports kilobytes (macOS bytes; the bench targets Linux).
    out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


# -- the report (the parent process) ---------------------------------------------------------------------


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _run_child(args: list[str]) -> dict:
    """Run a child Python process; its last stdout line is JSON. Progress passes through on stderr."""
    proc = subprocess.run([sys.executable, *args], stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed (exit status {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def verdict(timing: dict) -> tuple[bool, list[str]]:
    """Whether everything met its target, and one line per miss."""
    misses = []
    for r in timing["metrics"]:
        if "error" in r:
            misses.append(f"{r['metric']}: raised {r['error']}")
        elif not r["pass"]:
            misses.append(f"{r['metric']}: p95 {r['p95_ms']:.1f} ms > {TARGET_MS:.0f} ms")
    if timing["peak_mb"] > TARGET_MB:
        misses.append(f"peak memory {timing['peak_mb']:.0f} MB > {TARGET_MB:.0f} MB")
    return not misses, misses


def report(build: dict, timing: dict, info: dict, path: Path) -> str:
    rows = build["rows"]
    built = (
        f"reused (built in {build['build_seconds']:.1f} s at {build['built_at']})"
        if build["reused"]
        else f"built in {build['build_seconds']:.1f} s"
    )
    lines = [
        "vsm-bot catalogue benchmark",
        f"machine   {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, SQLite {info['sqlite']}, "
        f"{info['platform']}, load average {info['load']} when timing began",
        f"database  {path} {build['db_bytes'] / 1e6:,.0f} MB, {built}",
        f"          {rows['work_items']:,} items, {rows['transitions']:,} transitions, "
        f"{rows['pull_requests']:,} PRs, {rows['reviews']:,} reviews, {rows['deployments']:,} deployments, "
        f"{rows['deployment_changes']:,} deployment changes, {rows['incidents']:,} incidents, "
        f"{rows['sprints']:,} sprints, {rows['sprint_events']:,} sprint events, {rows['teams']:,} teams",
        f"team      {timing['team']} ({timing['timezone']}), window {timing['window']} ({WINDOW_DAYS} days), "
        f"now {timing['now']}",
        "loads     "
        + ", ".join(f"{v:,} {k}" for k, v in timing["loaded"].items())
        + " (window + 20-week baseline)",
        f"runs      {timing['repeat']} per metric after 1 warm-up, a fresh TeamData each run",
        "",
    ]
    width = max([len("metric"), *(len(r["metric"]) for r in timing["metrics"])])
    lines.append(
        f"{'metric':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'max ms':>8}  p95 <= {TARGET_MS:.0f} ms"
    )
    for r in timing["metrics"]:
        if "error" in r:
            lines.append(f"{r['metric']:<{width}}  {'':>8}  {'':>8}  {'':>8}  ERROR {r['error']}")
        else:
            lines.append(
                f"{r['metric']:<{width}}  {r['p50_ms']:>8.1f}  {r['p95_ms']:>8.1f}  {r['max_ms']:>8.1f}  "
                f"{'pass' if r['pass'] else 'FAIL'}"
            )
    if not timing["metrics"]:
        lines.append("(the catalogue is empty: nothing to time)")
    d = timing["digest"]
    lines += [
        "",
        f"digest pass ({d['metrics']} metrics, one shared TeamData): p50 {d['p50_ms']:.1f} ms, "
        f"p95 {d['p95_ms']:.1f} ms, max {d['max_ms']:.1f} ms",
        f"peak memory of the timing phase (ru_maxrss): {timing['peak_mb']:.1f} MB "
        f"({'pass' if timing['peak_mb'] <= TARGET_MB else 'FAIL'}, target {TARGET_MB:.0f} MB)",
        "",
    ]
    ok, misses = verdict(timing)
    if ok and timing["metrics"]:
        lines.append("ALL PASS")
    elif ok:
        lines.append("NO METRICS TO TIME")
    else:
        lines.append("FAIL")
        lines += [f"  {m}" for m in misses]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Time every catalogue metric for one team over 90 days.")
    ap.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"database file (default {DEFAULT_DB})")
    ap.add_argument(
        "--items", type=int, default=1_000_000, help="work items (PRs: a fifth, deployments: 1/20)"
    )
    ap.add_argument("--teams", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per metric after one warm-up")
    ap.add_argument("--team", default=None, help="team to time (default: the first team with sprints)")
    ap.add_argument("--timing-phase", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    if args.timing_phase:  # the child: time, print JSON
        from metrics.errors import VsmError

        try:
            print(json.dumps(timing_phase(args.db, args.team, args.repeat)))
        except VsmError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        return 0

    print(f"building or reusing {args.db} ...", file=sys.stderr, flush=True)
    build_args = ["--db", str(args.db), "--items", str(args.items), "--teams", str(args.teams)]
    timing_args = ["--timing-phase", "--db", str(args.db), "--repeat", str(args.repeat)]
    try:
        build = _run_child([str(HERE / "build_db.py"), *build_args])
        info = machine()
        print(f"timing {args.repeat} runs per metric ...", file=sys.stderr, flush=True)
        timing = _run_child([__file__, *timing_args, *(["--team", args.team] if args.team else [])])
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(report(build, timing, info, args.db))
    return 1 if any("error" in r for r in timing["metrics"]) else 0


if __name__ == "__main__":
    sys.exit(main())
