"""vsm against jira-agile-metrics on the same 4,000 Jira issues: whole-process time and the figures.

One command: ``python bench/jam_compare.py`` (``make bench-jam``, which first creates the tool's own
venv, ``bench/.jam-venv``, from PyPI; the tool is never a dependency of the project). Both read the
same loopback Jira (``tests/fakes/jira.py``, Data Center: ``/rest/api/2/search`` with ``startAt``,
basic auth) serving the 4,000-issue team of ``bench/cli_bench.py``, and both run whole, as a person
runs them, in fresh processes:

- jira-agile-metrics: one process that fetches every issue with its changelog and writes cycle time
  data, cycle-time percentiles, weekly throughput and the cumulative flow (CFD) data;
- vsm: ``vsm sync`` into a fresh database, then ``vsm metric cycle-time``, ``throughput`` and
  ``wip`` over the whole history (``--json``).

Reported: the median wall time of each over ``--runs`` runs, and the figures side by side: p50/p85
cycle time (jira-agile-metrics works on calendar dates, so its cycle times are whole days; vsm's are
exact instants, in hours), how many items have the same start and done dates in both, items done
and the weekly mean, WIP now and the daily average (from the CFD: committed minus done per day).
Exit 0 whatever the figures; when the tool's venv is missing the comparison is skipped with one line.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cli_bench import (  # noqa: E402
    BACKLOG,
    DONE,
    IN_PROGRESS,
    IN_REVIEW,
    JIRA_TOKEN,
    JIRA_USER,
    PROJECT,
    SELECTED,
    TEAM,
    TEAM_ISSUES,
    anchor,
    jira_team,
    run_vsm,
    team_config,
    vsm_env,
)

JAM = HERE / ".jam-venv" / "bin" / "jira-agile-metrics"
RUNS = 3
# jira-agile-metrics names the stages by these columns; the first is the backlog, the last done, and
# every column between is "accepted" (its cycle time starts at the first of them with a date).
COLUMNS = {"Backlog": BACKLOG, "Committed": SELECTED, "In Progress": IN_PROGRESS, "In Review": IN_REVIEW}
COLUMNS["Done"] = DONE
ACCEPTED = ("Committed", "In Progress", "In Review")


# -- jira-agile-metrics ----------------------------------------------------------------------------------


def jam_config(folder: Path, jira_url: str) -> Path:
    """The tool's YAML config: the fake, the team's query, the workflow, the three outputs."""
    workflow = "\n".join(f"  {column}: {status}" for column, status in COLUMNS.items())
    path = folder / "config.yml"
    path.write_text(
        f"Connection:\n  Domain: {jira_url}\n  Username: {JIRA_USER}\n  Password: {JIRA_TOKEN}\n"
        f"Query: project = {PROJECT}\nWorkflow:\n{workflow}\nOutput:\n  Quantiles: [0.5, 0.85]\n"
        "  Cycle time data: cycletime.csv\n  Percentiles data: percentiles.csv\n"
        "  Throughput data: throughput.csv\n  Throughput frequency: 1W-MON\n  CFD data: cfd.csv\n"
    )
    return path


def run_jam(jira_url: str) -> tuple[float, dict]:
    """One whole jira-agile-metrics process: its wall time and its outputs, read."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = jam_config(folder, jira_url)
        began = time.perf_counter()
        proc = subprocess.run(
            [str(JAM), str(config), "--output-directory", str(folder)], capture_output=True, text=True
        )
        took = time.perf_counter() - began
        if proc.returncode != 0:
            raise RuntimeError(f"jira-agile-metrics exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        return took, read_jam(folder)


def jam_startup() -> float:
    """Wall time of ``jira-agile-metrics --help``: the tool's imports (pandas, matplotlib, seaborn,
    statsmodels) with no work, to tell its start-up from its fetching and computing."""
    began = time.perf_counter()
    subprocess.run([str(JAM), "--help"], capture_output=True, check=True)
    return time.perf_counter() - began


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


_TIMEDELTA = re.compile(r"(-?\d+) days?(?: (\d+):(\d+):(\d+(?:\.\d+)?))?$")


def days(text: str) -> float:
    """A pandas timedelta as the tool writes it (``4 days``, ``3 days 12:00:00``), in days."""
    m = _TIMEDELTA.match(text.strip())
    if not m:
        raise ValueError(f"not a pandas timedelta: {text!r}")
    d, h, mi, s = m.groups()
    return int(d) + (int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)) / 86400


def read_jam(folder: Path) -> dict:
    """The tool's four CSV files: percentiles, per-item stage dates, weekly counts, daily CFD."""
    percentiles = {float(r[""]): days(r["cycle_time"]) for r in _rows(folder / "percentiles.csv")}
    items = {}
    for r in _rows(folder / "cycletime.csv"):
        start = next((r[c] for c in ACCEPTED if r[c]), None)
        if start and r["Done"]:
            items[r["ID"]] = (start, r["Done"])
    weeks = [float(r["count"]) for r in _rows(folder / "throughput.csv")]
    wip = {r[""]: float(r["Committed"] or 0) - float(r["Done"] or 0) for r in _rows(folder / "cfd.csv")}
    return {"percentiles": percentiles, "items": items, "weeks": weeks, "wip": wip}


# -- vsm ---------------------------------------------------------------------------------------------------


def run_vsm_side(jira_url: str, now: float, since: date, until: date) -> tuple[dict, dict]:
    """``vsm sync`` into a fresh database, then the three metrics: wall times and their JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = team_config(folder, jira_url)
        env = vsm_env(now, JIRA_TOKEN=JIRA_TOKEN)
        times = {"sync": run_vsm(["sync", "--config", str(config)], env, folder)[0]}
        out = {}
        for metric in ("cycle-time", "throughput", "wip"):
            args = ["metric", metric, "--team", TEAM, "--since", str(since), "--until", str(until)]
            times[metric], text = run_vsm([*args, "--json", "--config", str(config)], env, folder)
            out[metric] = json.loads(text)
        return times, out


# -- the comparison ------------------------------------------------------------------------------------------


def same_dates(jam_items: dict, cycle_items: list[dict]) -> tuple[int, int]:
    """Items whose start and done calendar dates (UTC, the fake's zone) agree; of the items both
    count."""
    both = same = 0
    for it in cycle_items:
        if it["key"] not in jam_items:
            continue
        both += 1
        ours = (it["start"][:10], it["end"][:10])
        same += ours == jam_items[it["key"]]
    return same, both


def jam_wip_average(wip_by_day: dict[str, float], since: date, until: date) -> float:
    """The tool's WIP at the end of each day of [since, until): 0 before its first CFD row, the last
    row after its last one (the CFD has a row from its first event to its last)."""
    days_ = [since + timedelta(days=n) for n in range((until - since).days)]
    value, out = 0.0, []
    for d in days_:
        value = wip_by_day.get(d.isoformat(), value)
        out.append(value)
    return sum(out) / len(out)


def figures(jam: dict, ours: dict, since: date, until: date) -> list[tuple[str, str, str]]:
    ct, tp, wip = ours["cycle-time"], ours["throughput"], ours["wip"]
    same, both = same_dates(jam["items"], ct["items"])
    last_day = max(jam["wip"]) if jam["wip"] else "-"
    return [
        ("cycle time p50", f"{jam['percentiles'][0.5]:.2f} d", f"{ct['value']['p50'] / 24:.2f} d"),
        ("cycle time p85", f"{jam['percentiles'][0.85]:.2f} d", f"{ct['value']['p85'] / 24:.2f} d"),
        ("items with a cycle time", f"{len(jam['items']):,}", f"{ct['sample_size']:,}"),
        ("same start and done dates", f"{same:,} of {both:,}", ""),
        ("items done (throughput)", f"{sum(jam['weeks']):,.0f}", f"{tp['sample_size']:,}"),
        (
            "throughput per week",
            f"{statistics.mean(jam['weeks']):.1f} ({len(jam['weeks'])} weeks)",
            f"{tp['value']:.1f} ({len(tp['series'])} weeks)",
        ),
        ("WIP at the end", f"{jam['wip'].get(last_day, 0):.0f} ({last_day})", f"{wip['extra']['current']}"),
        ("WIP daily average", f"{jam_wip_average(jam['wip'], since, until):.1f}", f"{wip['value']:.1f}"),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=RUNS, help=f"whole-process runs of each (default {RUNS})")
    ap.add_argument("--issues", type=int, default=TEAM_ISSUES)
    ap.add_argument("--day", type=date.fromisoformat, default=None, help="the team data's day")
    args = ap.parse_args(argv)
    if not JAM.exists():
        print(f"SKIP: jira-agile-metrics is not installed at {JAM} (`make bench-jam` creates its venv)")
        return 0
    now = anchor(args.day)
    until = datetime.fromtimestamp(now, UTC).date()
    since = until - timedelta(days=365)  # the whole history: the team's issues span 52 weeks
    jam_times, vsm_times, startups = [], [], []
    with jira_team(args.issues, now) as jira:
        for _ in range(args.runs):
            startups.append(jam_startup())
            took, jam = run_jam(jira.url)
            jam_times.append(took)
            times, ours = run_vsm_side(jira.url, now, since, until)
            vsm_times.append(times)
    med = {k: statistics.median(t[k] for t in vsm_times) for k in vsm_times[0]}
    total = statistics.median(sum(t.values()) for t in vsm_times)
    print(
        f"jira-agile-metrics against vsm: {args.issues:,} Jira issues from the loopback Jira (Data Center), "
        f"median of {args.runs} whole-process runs"
    )
    print(
        f"  {'jira-agile-metrics (fetch, cycle time, percentiles, throughput, CFD)':<72}{statistics.median(jam_times):>7.2f} s"
    )
    label = "  of which its start-up alone (jira-agile-metrics --help)"
    print(f"  {label:<72}{statistics.median(startups):>7.2f} s")
    for name, seconds in med.items():
        label = "vsm sync (fetch and store)" if name == "sync" else f"vsm metric {name} --json"
        print(f"  {label:<72}{seconds:>7.2f} s")
    print(f"  {'vsm, all four processes':<72}{total:>7.2f} s")
    print()
    print(f"figures over the whole history, {since} to {until} (exclusive), team time zone UTC")
    print(f"  {'':<28}{'jira-agile-metrics':>24}{'vsm':>20}")
    for label, theirs, mine in figures(jam, ours, since, until):
        print(f"  {label:<28}{theirs:>24}{mine:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
