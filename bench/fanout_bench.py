"""Digest fan-out: 1,000 teams' digests composed on the 1M-item database and delivered to a loopback
mock Slack with its per-channel rate limit on.

One command: ``python bench/fanout_bench.py`` (after ``make bench`` has built ``bench/bench.db``).
It adds 1,000 digest teams to the bench database (``fanout-0001``...: the scopes of the 500 bench
teams, two teams per channel so the per-channel pacing is exercised, six metrics each: two North Star
and four determinants), fires every team's digest through ``Scheduler.run_digest`` exactly as the
scheduler does, and reports:

- our own time to compose one digest (figures + Slack payload; target median <= 30 ms), apart from
  the time spent sending;
- messages lost or duplicated (target: 0), from the mock's record of every message and its metadata
  key, and the delivery ledger;
- 429s the mock answered (the pacer should leave none) and the wall time.

The added teams and their ledger rows are removed afterwards. Exit 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fakes.slack import MockSlack  # noqa: E402

from bot.app import web_client  # noqa: E402
from bot.delivery import EVENT_TYPE, ChannelPacer  # noqa: E402
from bot.scheduler import Scheduler  # noqa: E402
from bot.store import Store  # noqa: E402
from metrics.runtime import settle  # noqa: E402
from metrics.store import open_db  # noqa: E402
from metrics.teams import Team, get_org, list_teams, save_team, set_org  # noqa: E402

TARGET_MS = 30.0
NORTH_STAR = ["lead-time-for-changes", "deployment-frequency"]
DETERMINANTS = ["cycle-time", "throughput", "pr-pickup-time", "change-failure-rate"]
PREFIX = "fanout-"


def add_teams(db, count: int) -> list[str]:
    """``count`` digest teams over the bench teams' scopes, two per channel; their digest is due now."""
    base = [t for t in list_teams(db) if t.name.startswith("team-")]
    names = []
    for i in range(count):
        src = base[i % len(base)]
        team = Team.from_json(src.to_json())
        team.name = f"{PREFIX}{i + 1:04d}"
        team.channel = f"CF{(i % (count // 2 or 1)) + 1:08d}"
        team.metrics = list(DETERMINANTS)
        team.targets = {"cycle-time": 120.0, "throughput": 5.0}
        save_team(db, team, who="fanout-bench")
        names.append(team.name)
    return names


def remove_teams(db) -> None:
    with db.atomic():
        db.execute("delete from teams where name like ?", [PREFIX + "%"])
        db.execute("delete from settings_log where team like ?", [PREFIX + "%"])
        db.execute("delete from deliveries where team like ?", [PREFIX + "%"])


def run(db_path: Path, count: int) -> dict:
    db = open_db(db_path)
    params = json.loads(db.execute("select value from bench_params where key = 'params'").fetchone()[0])
    now = datetime.fromtimestamp(params["now"], UTC)
    remove_teams(db)
    old_north = get_org(db).get("north_star")
    set_org(db, "north_star", NORTH_STAR, who="fanout-bench")
    names = add_teams(db, count)
    try:
        with MockSlack() as slack:
            slack.channel_interval = 1.0
            client = web_client("xoxb-bench", slack.base_url)
            sched = Scheduler(Store(db_path), client, clock=lambda: now, pacer=ChannelPacer(interval=1.0))
            settle()
            began = time.perf_counter()
            outcomes = [sched.run_digest(name, now) for name in names]
            wall = time.perf_counter() - began
            again = [sched.run_digest(name, now) for name in names]  # a second fan-out must send nothing
            keys = Counter(
                m["metadata"]["event_payload"]["key"]
                for msgs in slack.posted.values()
                for m in msgs
                if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE
            )
            rate_limited = slack.rate_limited
    finally:
        remove_teams(db)
        if old_north is not None:
            set_org(db, "north_star", old_north, who="fanout-bench")
    expected = {f"{name}/digest/{now.date().isoformat()}" for name in names}
    states = Counter(o.state for o in outcomes)
    compose = [o.compose_ms for o in outcomes if o.compose_ms is not None]
    return {
        "teams": count,
        "compose_p50_ms": round(statistics.median(compose), 1),
        "compose_p95_ms": round(sorted(compose)[int(0.95 * (len(compose) - 1))], 1),
        "wall_s": round(wall, 1),
        "sent": states.get("sent", 0),
        "lost": len(expected - set(keys)),
        "duplicated": sum(1 for k, n in keys.items() if n > 1),
        "second_pass_sent": sum(1 for o in again if o.state == "sent"),
        "rate_limited": rate_limited,
        "states": dict(states),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=str(ROOT / "bench" / "bench.db"))
    parser.add_argument("--teams", type=int, default=1000)
    args = parser.parse_args(argv)
    if not Path(args.db).exists():
        print(f"fanout_bench: {args.db} does not exist: run `make bench` first to build it", file=sys.stderr)
        return 2
    r = run(Path(args.db), args.teams)
    print(
        f"digest fan-out: {r['teams']} teams, {len(NORTH_STAR) + len(DETERMINANTS)} metrics each, per-channel rate limit on"
    )
    print(
        f"  compose one digest  p50 {r['compose_p50_ms']} ms   p95 {r['compose_p95_ms']} ms   (target median <= {TARGET_MS:.0f} ms)"
    )
    print(
        f"  delivered {r['sent']}   lost {r['lost']}   duplicated {r['duplicated']}   re-sent on a second pass {r['second_pass_sent']}"
    )
    print(f"  429s from the mock {r['rate_limited']}   wall {r['wall_s']} s   states {r['states']}")
    ok = r["compose_p50_ms"] <= TARGET_MS and r["lost"] == r["duplicated"] == r["second_pass_sent"] == 0
    print("ALL PASS" if ok else "FAIL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
