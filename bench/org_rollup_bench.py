"""Times the North Star roll-up (metrics/org.py) across every team of a benchmark database.

    python bench/org_rollup_bench.py [--db bench/bench.db] [--metrics a,b,c] [--repeat 3]

Reports the median wall time of ``metrics.org.rollups`` for the metrics over all teams (the org
digest's North Star part), and where one run's time goes: each team's loads and its own figures,
pooling the observations, and the org figures (aggregation, series, signal). No target is checked
here: the org digest's benchmark owns the goal. Read-only: a database whose flows are not stored
(``vsm sync`` stores them) replays every team's items on every run, as a fresh deployment would.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metrics import org  # noqa: E402
from metrics.catalogue import CATALOGUE  # noqa: E402
from metrics.dataset import TeamData  # noqa: E402
from metrics.runtime import gc_deferred, settle  # noqa: E402
from metrics.store import open_db  # noqa: E402
from metrics.teams import list_teams  # noqa: E402

DEFAULT = "lead-time-for-changes,deployment-frequency,cycle-time"


def split(db, ids: list[str], window, now: float) -> tuple[float, float, float]:
    """One roll-up in its three parts, in seconds (the same steps as ``org.rollups``)."""
    metrics = [CATALOGUE[i] for i in ids]
    pools = {m.id: org._Pool() for m in metrics}
    loads = pooling = 0.0
    with gc_deferred():
        for team in list_teams(db):
            t0 = time.perf_counter()
            data = TeamData(db, team, now)
            results = [m.compute(data, window) for m in metrics]
            t1 = time.perf_counter()
            for m, r in zip(metrics, results, strict=True):
                if org.poolable(m) and org._known(m, r):
                    obs, _ = m.observations(data, org._team_range(m, data, window), window.end)
                    pools[m.id].add(team.name, obs, org._history_start(m, data))
            loads += t1 - t0
            pooling += time.perf_counter() - t1
        t2 = time.perf_counter()
        for m in metrics:
            org._pooled(m, pools[m.id], window, now)
    return loads, pooling, time.perf_counter() - t2


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", default=str(Path(__file__).resolve().parent / "bench.db"))
    p.add_argument("--metrics", default=DEFAULT)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    ids = [m.strip() for m in args.metrics.split(",") if m.strip()]
    db = open_db(args.db, readonly=True)
    now = datetime.now(UTC)
    window = org.org_window({}, now)
    teams = len(list_teams(db))
    settle()
    times = []
    for _ in range(max(1, args.repeat)):
        t = time.perf_counter()
        org.rollups(db, ids, window, now)
        times.append(time.perf_counter() - t)
    loads, pooling, figures = split(db, ids, window, now.timestamp())
    print(f"North Star roll-up of {', '.join(ids)} across {teams} teams, window {window.label()}")
    print(f"  median {1000 * statistics.median(times):.0f} ms over {len(times)} runs")
    print(
        f"  one run: teams' loads and own figures {1000 * loads:.0f} ms, pooling {1000 * pooling:.0f} ms, "
        f"org figures {1000 * figures:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
