"""Process wall time of `vsm metric <id>` for every catalogue metric: what a person at a terminal waits.

One command: ``python bench/cli_bench.py`` (``make bench-cli``). Each figure is the median of 5 runs
of the installed console script (``.venv/bin/vsm``) in a fresh process, start-up included, on two
databases:

- the bench database of ``bench/build_db.py`` (1,000,000 items over 500 teams; built, or reused, as
  ``make bench`` does), for its team ``team-001``;
- one team of 4,000 Jira issues, synced by ``vsm sync`` from the loopback Jira fake (``tests/fakes``,
  Data Center mode) into a fresh database: the size of a busy team's year.

The period is the last 90 days, with ``VSM_NOW`` pinned to the data's "now" so the figures do not
drift with the clock. Before the timed runs every metric runs once untimed (it writes the bytecode
caches an installed copy has). `vsm metric` opens the database read-only and never stores the
replayed flows, so every timed run replays the team's items: the figures are the whole path a person
at a terminal waits for. Target: median <= 150 ms per command for the flow
metrics on the 4,000-issue team. Exit 0 whatever the figures; the last line is ALL PASS or FAIL.

Then, with no target, what `/vsm forecast N` costs (N up to MAX_FORECAST_ITEMS, 10,000): the trials of
"when will N more be done" for histories from a busy team's to the slowest that still gets a forecast,
each case in a fresh process, the first call (numpy's import included when the case needs numpy) and
the median of three more (a bot process that has numpy loaded already).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:  # runnable without the project installed; the fakes live in tests/
        sys.path.insert(0, str(p))

TARGET_MS = 150.0
RUNS = 5
PERIOD = "90d"
TEAM = "team"
PROJECT = "TEAM"
TEAM_ISSUES = 4000
JIRA_USER, JIRA_TOKEN = "bench@acme.com", "bench-token-not-secret"
HOUR, DAY = 3600.0, 86400.0
HEAVY = ("scipy", "numpy")  # named beside a command's time when it loaded them
# The team's workflow, by the Jira status names the fake serves (metrics.sample.STATUSES).
BACKLOG, SELECTED, IN_PROGRESS, IN_REVIEW, DONE = (
    "Backlog",
    "Selected for Development",
    "In Progress",
    "In Review",
    "Done",
)


# -- the 4,000-issue team ---------------------------------------------------------------------------------


def anchor(day: date | None = None) -> float:
    """The data's "now": 00:00 UTC of ``day`` (default today), never in the future, so a sync with
    the real clock sees every change and a rebuild on the same day is the same data."""
    day = day or datetime.now(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _logn(rng: random.Random, median: float, sigma: float = 0.8) -> float:
    return median * rng.lognormvariate(0.0, sigma)


def issue_moves(rng: random.Random, created: float) -> list[tuple[float, str, str | None]]:
    """One issue's status changes ``(at, status, resolution)`` after ``created`` in Backlog, in time
    order: committed, worked, reviewed (sent back 30% of the time, up to three rounds), done; some
    are pushed back to the backlog and picked up again (a move backwards), some are closed from the
    backlog as Won't Do (closed without flow). Moves after "now" are cut by the caller: open work."""
    t = created + _logn(rng, 3 * DAY, 1.0)
    if rng.random() < 0.05:
        return [(t, DONE, "Won't Do")]
    moves: list[tuple[float, str, str | None]] = [(t, SELECTED, None)]
    t += _logn(rng, 1 * DAY)
    moves.append((t, IN_PROGRESS, None))
    if rng.random() < 0.05:
        t += _logn(rng, 1 * DAY)
        moves.append((t, BACKLOG, None))
        t += _logn(rng, 4 * DAY)
        moves += [(t, SELECTED, None), (t + _logn(rng, 6 * HOUR), IN_PROGRESS, None)]
        t = moves[-1][0]
    for rounds in range(1, 4):
        t += _logn(rng, 1.5 * DAY)
        moves.append((t, IN_REVIEW, None))
        t += _logn(rng, 5 * HOUR)
        if rounds == 3 or rng.random() >= 0.3:
            break
        moves.append((t, IN_PROGRESS, None))
    moves.append((t, DONE, "Done"))
    return moves


def fill_jira(jira, issues: int, now: float, seed: int = 11) -> None:
    """``issues`` issues created uniformly over the 52 weeks before ``now`` (seeded: the same every
    time), each with its status changes up to ``now``."""
    rng = random.Random(seed)
    types = ["Story"] * 6 + ["Bug"] * 3 + ["Task"]
    start = now - 52 * 7 * DAY
    for n in range(1, issues + 1):
        key = f"{PROJECT}-{n}"
        created = start + rng.random() * (now - start - HOUR)
        jira.add(key, created, type=rng.choice(types))
        for at, status, resolution in issue_moves(rng, created):
            if at >= now:
                break
            jira.move_status(key, at, status, resolution=resolution)


def team_config(folder: Path, jira_url: str) -> Path:
    """A ``vsm.toml`` for the team: its database in ``folder``, the fake as a Data Center source
    (personal access token as a bearer), the workflow mapped stage by stage."""
    path = folder / "vsm.toml"
    path.write_text(
        f"""[database]
path = "{folder / "team.db"}"

[[source]]
name = "jira"
kind = "jira"
url = "{jira_url}"
deployment = "datacenter"
token_env = "JIRA_TOKEN"
jql = "project = {PROJECT}"
history_days = 400

[[team]]
name = "{TEAM}"
timezone = "UTC"
jira_projects = ["{PROJECT}"]
metrics = ["cycle-time", "throughput", "wip"]

[team.workflow]
backlog = ["{BACKLOG}"]
committed = ["{SELECTED}"]
in_progress = ["{IN_PROGRESS}"]
review = ["{IN_REVIEW}"]
done = ["{DONE}"]
"""
    )
    return path


@contextmanager
def jira_team(issues: int, now: float) -> Iterator[object]:
    """The loopback Jira (Data Center) serving the team's issues, in this process's threads."""
    from fakes.jira import DATACENTER, FakeJira

    jira = FakeJira(JIRA_TOKEN, deployment=DATACENTER, user=JIRA_USER, zone="UTC")
    try:
        fill_jira(jira, issues, now)
        yield jira
    finally:
        jira.close()


# -- running vsm ---------------------------------------------------------------------------------------


def vsm_exe() -> str:
    """The installed console script beside this interpreter: what a user runs."""
    exe = Path(sys.executable).with_name("vsm")
    if not exe.exists():
        raise RuntimeError(f"{exe} not found: install the project first (make bench-cli does)")
    return str(exe)


def vsm_env(now: float, **extra: str) -> dict[str, str]:
    """The commands' environment: the data's "now", no config picked up by accident, and bytecode
    caches written. ``pip install`` byte-compiles a package as it installs it, so no user's `vsm`
    compiles vsm-bot from source; with PYTHONDONTWRITEBYTECODE set (as on some CI machines) the
    editable checkout would, about 30 ms of every command that no installed copy pays. The untimed
    run before each metric's timed runs writes the caches."""
    env = {k: v for k, v in os.environ.items() if k not in ("VSM_CONFIG", "PYTHONDONTWRITEBYTECODE")}
    env["VSM_NOW"] = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return env | extra


def run_vsm(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """One `vsm` process: its wall time in seconds and its stdout; a failure raises with its stderr."""
    began = time.perf_counter()
    proc = subprocess.run([vsm_exe(), *args], env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - began
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
        raise RuntimeError(f"vsm {' '.join(args)} exited {proc.returncode}: {' '.join(errors)[-2000:]}")
    return took, proc.stdout


def heavy_imports(args: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """Which of the big numerical packages one `vsm` process loaded (``-X importtime``): the
    usual reason a command is slow, shown beside its time."""
    proc = subprocess.run(
        [vsm_exe(), *args],
        env=env | {"PYTHONPROFILEIMPORTTIME": "1"},
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    names = {
        line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")
    }
    return [name for name in HEAVY if name in names]


def time_commands(
    metrics: list[str], where: list[str], team: str, env: dict[str, str], cwd: Path, runs: int
) -> list[dict]:
    """Per metric: one untimed run (bytecode caches written), then ``runs`` timed ones, then
    one untimed run that names the numerical packages the command loaded."""
    rows = []
    for metric in metrics:
        args = ["metric", metric, "--team", team, "--period", PERIOD, *where]
        try:
            run_vsm(args, env, cwd)
            times = [run_vsm(args, env, cwd)[0] * 1000 for _ in range(runs)]
        except RuntimeError as exc:
            rows.append({"metric": metric, "error": str(exc)})
            continue
        loads = heavy_imports(args, env, cwd)
        rows.append(
            {"metric": metric, "median_ms": statistics.median(times), "max_ms": max(times), "loads": loads}
        )
    return rows


def catalogue(env: dict[str, str], cwd: Path, runs: int) -> tuple[list[dict], float]:
    """The catalogue as `vsm metrics --json` prints it, and that command's median wall time (ms)."""
    runs_out = [run_vsm(["metrics", "--json"], env, cwd) for _ in range(runs)]
    return json.loads(runs_out[0][1]), statistics.median(t for t, _ in runs_out) * 1000


# -- the two databases ------------------------------------------------------------------------------------


def bench_database(path: Path, metrics: list[str], runs: int, cwd: Path) -> dict:
    """The bench database (built or reused by bench/build_db.py), team-001."""
    sys.path.insert(0, str(ROOT / "bench"))
    from build_db import build

    params = build(path, progress=lambda line: print(line, file=sys.stderr, flush=True))
    env = vsm_env(params["now"])
    rows = time_commands(metrics, ["--db", str(path)], "team-001", env, cwd, runs)
    return {"what": f"{path} ({params['rows']['work_items']:,} items, team-001)", "rows": rows}


def team_database(issues: int, metrics: list[str], runs: int, day: date | None) -> dict:
    """A fresh team of ``issues`` Jira issues, synced by `vsm sync` from the loopback fake."""
    now = anchor(day)
    with jira_team(issues, now) as jira, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = team_config(folder, jira.url)
        env = vsm_env(now, JIRA_TOKEN=JIRA_TOKEN)
        sync_s, _ = run_vsm(["sync", "--config", str(config)], env, folder)
        rows = time_commands(metrics, ["--config", str(config)], TEAM, env, folder, runs)
    return {"what": f"{issues:,} Jira issues, one team (sync {sync_s:.1f} s)", "rows": rows}


# -- /vsm forecast N ----------------------------------------------------------------------------------------

FORECAST_ITEMS = (20, 1_000, 10_000)  # 10,000 is the most `/vsm forecast N` accepts
# 84 days of items done per day, busiest first (metrics.catalogue.forecast.HISTORY_DAYS)
FORECAST_HISTORIES = {
    "9 a day": [7, 12, 9, 0, 15, 11, 10] * 12,  # the 4,000-issue team's pace
    "1 a day": [0, 1, 1, 2, 0, 1, 2] * 12,
    "1 a week": ([0] * 6 + [1]) * 12,
    "1 in 12 weeks": [0] * 40 + [1] + [0] * 43,  # the slowest history that gets a forecast
}
_FORECAST_CASE = """
import json, statistics, sys, time
from metrics.catalogue.forecast import CONFIDENCES, quantile, trial_steps
samples, n_items = json.loads(sys.argv[1]), int(sys.argv[2])
def once():
    began = time.perf_counter()
    steps = sorted(trial_steps(samples, n_items))
    answers = [quantile(steps, c) for c in CONFIDENCES]
    return (time.perf_counter() - began) * 1000, answers
first, answers = once()
engine = "numpy" if "numpy" in sys.modules else "python"
then = statistics.median(once()[0] for _ in range(3))
print(json.dumps({"first_ms": first, "then_ms": then, "engine": engine, "days": answers}))
"""


def forecast_items() -> list[dict]:
    """Per history and N, the trials of `/vsm forecast N` (``trial_steps`` and its percentiles)."""
    rows = []
    for name, samples in FORECAST_HISTORIES.items():
        for n in FORECAST_ITEMS:
            proc = subprocess.run(
                [sys.executable, "-c", _FORECAST_CASE, json.dumps(samples), str(n)],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                rows.append({"history": name, "items": n, "error": proc.stderr.strip()[-500:]})
                continue
            rows.append({"history": name, "items": n} | json.loads(proc.stdout))
    return rows


def forecast_table(rows: list[dict]) -> list[str]:
    lines = [
        "/vsm forecast N: when N more items will be done (10,000 trials; a fresh process per case)",
        f"  {'history':<16}{'N':>7}{'first ms':>10}{'then ms':>9}  {'engine':<8}days at 50/85/95%",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"  {r['history']:<16}{r['items']:>7,}  ERROR {r['error']}")
            continue
        days = " / ".join(f"{math.ceil(d):,}" for d in r["days"])
        lines.append(
            f"  {r['history']:<16}{r['items']:>7,}{r['first_ms']:>10.1f}{r['then_ms']:>9.1f}  {r['engine']:<8}{days}"
        )
    return lines


# -- the report -------------------------------------------------------------------------------------------


def verdict(team: dict, flow: set[str]) -> list[str]:
    """One line per flow metric over the target on the team database, or that raised anywhere."""
    misses = []
    for r in team["rows"]:
        if "error" in r:
            misses.append(f"{r['metric']}: {r['error']}")
        elif r["metric"] in flow and r["median_ms"] > TARGET_MS:
            loads = f" (loads {', '.join(r['loads'])})" if r["loads"] else ""
            misses.append(f"{r['metric']}: median {r['median_ms']:.0f} ms > {TARGET_MS:.0f} ms{loads}")
    return misses


def table(result: dict, flow: set[str], judged: bool) -> list[str]:
    lines = [result["what"], f"  {'metric':<24}{'median ms':>10}{'max ms':>9}  {'':<6}loads"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"  {r['metric']:<24}ERROR {r['error']}")
            continue
        mark = ""
        if judged and r["metric"] in flow:
            mark = "pass" if r["median_ms"] <= TARGET_MS else "FAIL"
        loads = ", ".join(r["loads"])
        lines.append(
            f"  {r['metric']:<24}{r['median_ms']:>10.0f}{r['max_ms']:>9.0f}  {mark:<6}{loads}".rstrip()
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=RUNS, help=f"timed runs per metric (default {RUNS})")
    ap.add_argument("--issues", type=int, default=TEAM_ISSUES, help="Jira issues of the team")
    ap.add_argument("--bench-db", type=Path, default=ROOT / "bench" / "bench.db")
    ap.add_argument("--skip-bench-db", action="store_true", help="time only the team database")
    ap.add_argument("--day", type=date.fromisoformat, default=None, help="the team data's day")
    ap.add_argument("--metric", action="append", help="time only this metric (repeatable)")
    ap.add_argument("--skip-forecast-n", action="store_true", help="do not time `/vsm forecast N`")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:  # no ./vsm.toml is picked up by accident
        entries, metrics_ms = catalogue(vsm_env(anchor()), Path(tmp), args.runs)
        metrics = args.metric or [e["id"] for e in entries]
        flow = {e["id"] for e in entries if e["family"] == "flow"}
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"vsm CLI benchmark: median of {args.runs} process wall times per command, period {PERIOD}")
        print(f"machine {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {load}")
        print(f"vsm metrics: median {metrics_ms:.0f} ms")
        results = []
        if not args.skip_bench_db:
            results.append((bench_database(args.bench_db, metrics, args.runs, Path(tmp)), False))
    results.append((team_database(args.issues, metrics, args.runs, args.day), True))
    for result, judged in results:
        print()
        print("\n".join(table(result, flow, judged)))
    if not args.skip_forecast_n:
        print()
        print("\n".join(forecast_table(forecast_items())))
    misses = verdict(results[-1][0], flow)
    print()
    print(f"target: median <= {TARGET_MS:.0f} ms for the flow metrics on the team database")
    print("ALL PASS" if not misses else "FAIL\n" + "\n".join(misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
