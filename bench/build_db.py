"""Build the benchmark database: a year of synthetic but plausible history for many teams.

The catalogue is timed against this file, so it has to look like a real store where it matters for
speed: the normalised tables of ``metrics.store.schema`` with their indexes, teams saved through
``metrics.teams.save_team``, items with several status changes and some moves back, PRs with reviews,
deployments linked to the PRs they shipped, incidents, and sprints for a share of the teams. Nothing
goes into ``raw``: the catalogue never reads it.

Every figure is drawn from a seeded RNG per team, so a build is deterministic. Building a million
items takes minutes, so the parameters are stored in the file (table ``bench_params``) and a later
build with the same parameters reuses it. Run ``python bench/build_db.py --help`` to build one alone.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import sys
import time
from bisect import bisect_left
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable without the project installed
    sys.path.insert(0, str(ROOT))

from metrics.errors import VsmError  # noqa: E402
from metrics.store import open_db  # noqa: E402
from metrics.teams import Team, save_team  # noqa: E402

GENERATOR_VERSION = 3  # bump whenever the generated data changes, so stale files are rebuilt
HOUR, DAY = 3600.0, 86400.0
TEAMS_PER_COMMIT = 20

STATUS_IDS = {
    "Backlog": "10000",
    "Selected": "10001",
    "In Progress": "3",
    "In Review": "10002",
    "Done": "10003",
}
STATUS_CODES = {name: code for code, name in enumerate(STATUS_IDS, start=1)}
WORKFLOW = [
    {"stage": "backlog", "kind": "backlog", "statuses": ["Backlog"]},
    {"stage": "committed", "kind": "committed", "statuses": ["Selected"]},
    {"stage": "in_progress", "kind": "active", "statuses": ["In Progress"]},
    {"stage": "review", "kind": "waiting", "statuses": ["In Review"]},
    {"stage": "done", "kind": "done", "statuses": ["Done"]},
]
TIMEZONES = (
    "Europe/London",
    "America/New_York",
    "UTC",
    "Asia/Kolkata",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Australia/Sydney",
)
ITEM_TYPES = ("Story", "Bug", "Task", "Tech Debt", "Security", "Epic")
ITEM_TYPE_CUM = (0.52, 0.76, 0.88, 0.94, 0.97, 1.0)
SCRUM_EVERY = 3  # every third team (the first included) plans in two-week sprints

COLUMNS = {
    "work_items": (
        "source key project type summary url status status_id resolution created resolved updated "
        "labels components sprints points deleted"
    ),
    "transitions": "source key project seq at from_code to_code",
    "pull_requests": (
        "source repo number title url state draft created ready first_commit merged closed updated "
        "additions deletions labels merge_sha head_ref refs author author_bot"
    ),
    "reviews": "source repo number id reviewer reviewer_bot state submitted",
    "deployments": "source id service environment production status started finished sha run url",
    "deployment_changes": "source deployment_id repo number",
    "incidents": "source id service title url created resolved severity status",
    "sprints": "source id board name state start end complete",
    "sprint_events": "source sprint_id key at change",
}
INSERT = {
    table: f"insert into {table} ({', '.join(cols.split())}) values ({', '.join('?' * len(cols.split()))})"
    for table, cols in COLUMNS.items()
}


def _logn(rng: random.Random, median: float, sigma: float) -> float:
    """A right-skewed duration around ``median`` seconds: how waits and work times are distributed."""
    return rng.lognormvariate(math.log(median), sigma)


def _share(total: int, parts: int, i: int) -> int:
    """Part ``i`` of ``total`` split as evenly as whole numbers allow (the parts sum to ``total``)."""
    return total // parts + (1 if i < total % parts else 0)


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def team_names(i: int, teams: int) -> dict:
    """Name, Jira project, repo, incident service and board of team ``i`` (0-based)."""
    n = f"{i + 1:0{max(3, len(str(teams)))}d}"
    return {
        "name": f"team-{n}",
        "project": f"T{n}",
        "repo": f"acme/team-{n}",
        "service": f"PSV{n}",
        "board": str(1000 + i + 1),
    }


def make_team(i: int, teams: int) -> Team:
    """The settings of team ``i``: one project, repo and service; the tests/builders.team() workflow."""
    names = team_names(i, teams)
    return Team(
        name=names["name"],
        channel=f"CB{i + 1:08d}",
        timezone=TIMEZONES[i % len(TIMEZONES)],
        jira_projects=[names["project"]],
        boards=[names["board"]] if i % SCRUM_EVERY == 0 else [],
        repos=[names["repo"]],
        services=[names["service"]],
        workflow=[dict(stage) for stage in WORKFLOW],
    )


# -- one team's rows ------------------------------------------------------------------------------------


def _item_moves(rng: random.Random, created: float) -> tuple[list[tuple[float, str]], str | None]:
    """An item's status changes (unbounded in time) and its final resolution.

    About 5% never leave the backlog, 5% are discarded straight from it (closed without flow), the
    rest are selected (mostly), worked, reviewed, sent back from review more often than not, pushed
    back to the backlog now and then, done, and occasionally reopened: about six changes on average.
    """
    r = rng.random()
    if r < 0.05:
        return [], None
    if r < 0.10:
        return [(created + _logn(rng, 10 * DAY, 1.0), "Done")], rng.choice(("Won't Do", "Duplicate"))
    moves = []
    t = created + _logn(rng, 4 * DAY, 1.1)
    if rng.random() < 0.9:
        moves.append((t, "Selected"))
        t += _logn(rng, DAY, 1.0)
    moves.append((t, "In Progress"))
    if rng.random() < 0.05:
        t += _logn(rng, DAY, 1.0)
        moves.append((t, "Backlog"))
        t += _logn(rng, 5 * DAY, 1.0)
        moves.append((t, "Selected"))
        t += _logn(rng, DAY, 1.0)
        moves.append((t, "In Progress"))
    for loop in range(5):
        t += _logn(rng, 1.5 * DAY, 0.9)
        moves.append((t, "In Review"))
        t += _logn(rng, 5 * HOUR, 1.0)
        if loop == 4 or rng.random() >= 0.6:
            break
        moves.append((t, "In Progress"))
    moves.append((t, "Done"))
    if rng.random() < 0.04:
        t += _logn(rng, 2 * DAY, 1.0)
        moves.append((t, "In Progress"))
        t += _logn(rng, DAY, 1.0)
        moves.append((t, "In Review"))
        t += _logn(rng, 4 * HOUR, 1.0)
        moves.append((t, "Done"))
    return moves, "Done"


def _sprints(names: dict, t0: float, t1: float) -> list[tuple[str, float, float, float | None]]:
    """Two-week sprints from the first Monday 09:00 UTC after ``t0``: (id, start, end, complete)."""
    d = datetime.fromtimestamp(t0, UTC).date()
    d += timedelta(days=(7 - d.weekday()) % 7)
    start = datetime(d.year, d.month, d.day, 9, tzinfo=UTC).timestamp()
    out = []
    k = 1
    while start < t1:
        end = start + 14 * DAY - HOUR
        out.append((str(int(names["board"]) * 1000 + k), start, end, end if end <= t1 else None))
        start += 14 * DAY
        k += 1
    return out


def team_rows(seed: int, i: int, teams: int, counts: dict, t0: float, t1: float) -> dict[str, list[tuple]]:
    """Every row of team ``i``, by table: items created over ``[t0, t1)``, nothing at or after ``t1``."""
    rng = random.Random(f"vsm-bench:{seed}:{i}")
    names = team_names(i, teams)
    project, repo, service = names["project"], names["repo"], names["service"]
    rows: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
    span = t1 - t0
    scrum = i % SCRUM_EVERY == 0
    sprints = _sprints(names, t0, t1) if scrum else []
    sprint_starts = [s[1] for s in sprints]

    # Work items, keys in creation order.
    n_items = _share(counts["items"], teams, i)
    created = sorted(t0 + rng.random() * span for _ in range(n_items))
    types = rng.choices(ITEM_TYPES, cum_weights=ITEM_TYPE_CUM, k=n_items)
    keys = [f"{project}-{k}" for k in range(1, n_items + 1)]
    for key, c, typ in zip(keys, created, types, strict=True):
        moves, resolution = _item_moves(rng, c)
        prev, last, committed = "Backlog", c, None
        for seq, (at, to) in enumerate(moves, start=1):
            if at >= t1:
                break
            rows["transitions"].append(("jira", key, project, seq, at, STATUS_CODES[prev], STATUS_CODES[to]))
            if committed is None and to in ("Selected", "In Progress"):
                committed = at
            prev, last = to, at
        done = last if prev == "Done" else None
        member_of: list[str] = []
        if scrum and committed is not None:
            member_of = _sprint_membership(
                rng, rows["sprint_events"], sprints, sprint_starts, key, committed, done
            )
        rows["work_items"].append(
            (
                "jira",
                key,
                project,
                typ,
                f"{typ} {key}",
                f"https://jira.example.com/browse/{key}",
                prev,
                STATUS_IDS[prev],
                resolution if done is not None else None,
                c,
                done,
                last,
                "[]",
                "[]",
                json.dumps(member_of),
                float(rng.choice((1, 2, 3, 5, 8))) if scrum else None,
                0,
            )
        )
    for sid, start, end, complete in sprints:
        rows["sprints"].append(
            (
                "jira",
                sid,
                names["board"],
                f"Sprint {sid}",
                "closed" if complete else "active",
                start,
                end,
                complete,
            )
        )

    # Incidents first: a share of hotfix PRs names the incident they fix.
    n_inc = _share(counts["incidents"], teams, i)
    incidents = []
    for k in range(1, n_inc + 1):
        c = t0 + rng.random() * span
        resolved = c + _logn(rng, 2 * HOUR, 1.5)
        inc_id = f"Q{i + 1:04d}I{k:05d}"
        incidents.append((c, inc_id))
        rows["incidents"].append(
            (
                "pagerduty",
                inc_id,
                service,
                rng.choice(("Checkout errors above 2%", "API latency p99 high", "Queue backlog growing")),
                f"https://acme.pagerduty.example/incidents/{inc_id}",
                c,
                resolved if resolved < t1 else None,
                rng.choice(("high", "high", "low")),
                "resolved" if resolved < t1 else "triggered",
            )
        )

    merged = _pull_requests(
        rng, rows, i, repo, _share(counts["prs"], teams, i), t0, t1, keys, created, incidents
    )
    _deployments(rng, rows, i, repo, _share(counts["deployments"], teams, i), t0, t1, merged)
    return rows


def _sprint_membership(
    rng: random.Random,
    events: list[tuple],
    sprints: list[tuple],
    starts: list[float],
    key: str,
    committed: float,
    done: float | None,
) -> list[str]:
    """Sprint-field history of one committed item; returns the sprints it was ever in.

    Most items are planned at the sprint's start (all committed on its first day, 80% of the later
    ones: the board is worked through the sprint), the others are added when committed. Unfinished at
    the sprint's end: carried over into the next one at its start (closing a sprint is not a removal).
    One membership in twenty is removed mid-sprint and replanned into the next sprint.
    """
    s = bisect_left(starts, committed + 1) - 1
    if s < 0:
        s = 0
    member_of = []
    planned = committed < starts[s] + DAY or rng.random() < 0.8
    at = starts[s] - HOUR if planned else committed
    while s < len(sprints) and len(member_of) < 4:
        sid, start, end, _complete = sprints[s]
        events.append(("jira", sid, key, at, "add"))
        member_of.append(sid)
        if rng.random() < 0.05:
            events.append(("jira", sid, key, at + (end - at) * rng.random(), "remove"))
        elif done is not None and done < end:
            break
        s += 1
        if s < len(sprints):
            at = sprints[s][1] - HOUR
    return member_of


def _pull_requests(
    rng: random.Random,
    rows: dict[str, list[tuple]],
    i: int,
    repo: str,
    n: int,
    t0: float,
    t1: float,
    keys: list[str],
    item_created: list[float],
    incidents: list[tuple[float, str]],
) -> list[tuple[float, int, str]]:
    """PRs with 1-3 reviews each; returns the merged ones as (merged, number, merge_sha), in time order."""
    people = [f"dev{i + 1}-{j}" for j in range(rng.randint(5, 9))]
    created = sorted(t0 + rng.random() * (t1 - t0) for _ in range(n))
    hotfix_for = {}
    for c, inc_id in incidents:
        if rng.random() < 0.3:
            j = bisect_left(created, c)
            if j < n:
                hotfix_for[j] = inc_id
    merged_prs = []
    for j, c in enumerate(created):
        number = j + 1
        bot = rng.random() < 0.06
        author = "renovate[bot]" if bot else rng.choice(people)
        ref = keys[max(0, bisect_left(item_created, c) - 1 - rng.randint(0, 40))] if keys else None
        r = rng.random()
        if j in hotfix_for:
            title, head = f"Hotfix {hotfix_for[j]}: guard against empty basket", f"hotfix/{hotfix_for[j]}"
        elif bot:
            title, head = "Bump dependency versions", f"renovate/deps-{number}"
        elif r < 0.03:
            title, head = f'Revert "PR {max(1, number - 3)}"', f"revert-{number}"
        elif r < 0.05 or ref is None:
            title, head = "hotfix: retry on timeout", f"hotfix-{number}"
        else:
            title, head = f"{ref} Implement the change", f"{ref}-change"
        draft = rng.random() < 0.15
        ready = c + _logn(rng, 6 * HOUR, 1.0) if draft else None
        first_commit = c - _logn(rng, 5 * HOUR, 1.2)
        t = ready if ready is not None else c
        reviews = []
        for v in range(rng.choices((1, 2, 3), cum_weights=(0.5, 0.85, 1.0))[0]):
            t += _logn(rng, 3 * HOUR if v == 0 else 4 * HOUR, 1.3)
            x = rng.random()
            reviewer = "coderabbit[bot]" if x < 0.05 else (author if x < 0.08 else rng.choice(people))
            submitted = None if rng.random() < 0.03 else t
            if submitted is not None and submitted >= t1:
                break
            state = "PENDING" if submitted is None else ("APPROVED" if v == 0 else "COMMENTED")
            reviews.append(
                (
                    "github",
                    repo,
                    number,
                    f"{i + 1}-{number}-{v}",
                    reviewer,
                    int(reviewer.endswith("[bot]")),
                    state,
                    submitted,
                )
            )
        outcome = rng.random()
        merged = closed = None
        if outcome < 0.88:
            m = t + _logn(rng, 2 * HOUR, 1.2)
            merged = closed = m if m < t1 else None
        elif outcome < 0.95:
            x = c + _logn(rng, 2 * DAY, 1.0)
            closed = x if x < t1 else None
        if ready is not None and ready >= t1:
            ready = None  # still a draft
        sha = _sha(rng) if merged is not None else None
        if merged is not None:
            merged_prs.append((merged, number, sha))
        rows["reviews"].extend(reviews)
        rows["pull_requests"].append(
            (
                "github",
                repo,
                number,
                title,
                f"https://github.example.com/{repo}/pull/{number}",
                "merged" if merged is not None else ("closed" if closed is not None else "open"),
                int(draft and ready is None),
                c,
                ready,
                first_commit,
                merged,
                closed,
                max(x for x in (c, ready, merged, closed) if x is not None),
                int(_logn(rng, 60, 1.2)),
                int(_logn(rng, 20, 1.3)),
                "[]",
                sha,
                head,
                json.dumps([ref] if ref and ref in title else []),
                author,
                int(bot),
            )
        )
    merged_prs.sort()
    return merged_prs


def _deployments(
    rng: random.Random,
    rows: dict[str, list[tuple]],
    i: int,
    repo: str,
    n: int,
    t0: float,
    t1: float,
    merged: list[tuple[float, int, str]],
) -> None:
    """Deployment records of the repo: mostly successful production runs, some staging, failures and
    re-run attempts (same run, later finish). Each merged PR ships in the first successful production
    run that finishes after its merge; the run deploys the last of those merge commits."""
    finished = sorted(t0 + rng.random() * (t1 - t0) for _ in range(n))
    records = []  # (finished, id, environment, status, run)
    run = 0
    for k, f in enumerate(finished, start=1):
        if records and rng.random() < 0.04:
            prev = records[-1]
            f = min(max(f, prev[0] + _logn(rng, 15 * 60, 0.5)), t1 - 1)
            records.append((f, f"D{i + 1:04d}-{k}", prev[2], "success", prev[4]))
            continue
        run += 1
        env = "production" if rng.random() < 0.85 else "staging"
        status = "success" if rng.random() < 0.92 else "failure"
        records.append((f, f"D{i + 1:04d}-{k}", env, status, f"{i + 1}-{run}"))
    shipped_in_run: dict[str, str] = {}  # run -> id of the record that lists the run's changes
    p = 0
    sha = _sha(rng)
    for f, dep_id, env, status, run_id in sorted(records):
        if env == "production" and status == "success" and run_id not in shipped_in_run:
            shipped_in_run[run_id] = dep_id
            while p < len(merged) and merged[p][0] < f - 10 * 60:
                rows["deployment_changes"].append(("github", dep_id, repo, merged[p][1]))
                sha = merged[p][2]
                p += 1
        rows["deployments"].append(
            (
                "github",
                dep_id,
                repo,
                env,
                int(env == "production"),
                status,
                f - _logn(rng, 8 * 60, 0.5),
                f,
                sha,
                run_id,
                f"https://github.example.com/{repo}/actions/runs/{run_id}",
            )
        )


# -- the file -------------------------------------------------------------------------------------------


def _read_params(path: Path) -> dict | None:
    """The stored parameters of a bench database, None if the file is not one (or unreadable)."""
    try:
        conn = sqlite3.connect(str(path))
        try:
            row = conn.execute("select value from bench_params where key = 'params'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None
    return json.loads(row[0]) if row else None


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)


def db_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in (Path(path), Path(f"{path}-wal")) if p.exists())


def build(
    path: str | Path,
    items: int = 1_000_000,
    teams: int = 500,
    prs: int = 200_000,
    deployments: int = 50_000,
    seed: int = 1,
    weeks: int = 52,
    end: date | None = None,
    incidents: int | None = None,
    progress=None,
) -> dict:
    """Build the database at ``path``, or reuse it when it was built with the same parameters.

    ``end`` is the last day of history (default: today, UTC); the bench's "now" is 12:00 UTC that day,
    stored as ``now``. A file built with the same counts and seed is reused whatever its end day unless
    ``end`` is given, so re-running the bench on another day does not rebuild. ``incidents`` defaults to
    a tenth of the deployments. Returns the stored parameters plus ``reused`` and ``db_bytes``.
    Refuses to overwrite a file that is not a bench database.
    """
    path = Path(path)
    if teams < 1 or items < 0 or prs < 0 or deployments < 0 or weeks < 1:
        raise VsmError("bench build: teams and weeks must be >= 1, counts >= 0")
    counts = {
        "items": items,
        "prs": prs,
        "deployments": deployments,
        "incidents": deployments // 10 if incidents is None else incidents,
    }
    wanted = {"version": GENERATOR_VERSION, "teams": teams, "seed": seed, "weeks": weeks, **counts}
    if path.exists():
        stored = _read_params(path)
        if stored is None:
            raise VsmError(f"{path} exists and is not a bench database: remove it or choose another --db")
        same = all(stored.get(k) == v for k, v in wanted.items())
        if same and stored.get("complete") and (end is None or stored.get("end") == end.isoformat()):
            return stored | {"reused": True, "db_bytes": db_bytes(path)}
        _remove(path)

    began = time.perf_counter()
    end = end or datetime.now(UTC).date()
    t1 = datetime(end.year, end.month, end.day, 12, tzinfo=UTC).timestamp()
    t0 = t1 - weeks * 7 * DAY
    params = wanted | {"end": end.isoformat(), "now": t1, "complete": False}
    db = open_db(path)
    conn = db.conn
    conn.execute("create table bench_params (key text primary key, value text)")
    conn.execute("insert into bench_params values ('params', ?)", [json.dumps(params)])
    conn.commit()
    for name, code in STATUS_CODES.items():  # what metrics.store.statuses would have coded
        conn.execute("insert into statuses values ('jira', ?, ?, ?)", [code, STATUS_IDS[name], name])
    conn.commit()
    for t in range(teams):
        save_team(db, make_team(t, teams), who="bench")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")  # 256 MB: index pages stay hot during the inserts
    written = dict.fromkeys(COLUMNS, 0)
    for first in range(0, teams, TEAMS_PER_COMMIT):
        with conn:
            for t in range(first, min(teams, first + TEAMS_PER_COMMIT)):
                for table, table_rows in team_rows(seed, t, teams, counts, t0, t1).items():
                    conn.executemany(INSERT[table], table_rows)
                    written[table] += len(table_rows)
        if progress:
            done = min(teams, first + TEAMS_PER_COMMIT)
            progress(
                f"  {done}/{teams} teams, {written['work_items']:,} items, {time.perf_counter() - began:.0f} s"
            )
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    params |= {
        "complete": True,
        "rows": written | {"teams": teams},
        "build_seconds": round(time.perf_counter() - began, 1),
        "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with conn:
        conn.execute("update bench_params set value = ? where key = 'params'", [json.dumps(params)])
    conn.close()
    return params | {"reused": False, "db_bytes": db_bytes(path)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Build (or reuse) the benchmark database; prints its parameters as JSON."
    )
    ap.add_argument("--db", default=str(Path(__file__).with_name("bench.db")))
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--teams", type=int, default=500)
    ap.add_argument("--prs", type=int, default=None, help="default: a fifth of --items")
    ap.add_argument("--deployments", type=int, default=None, help="default: a twentieth of --items")
    ap.add_argument("--incidents", type=int, default=None, help="default: a tenth of the deployments")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument(
        "--end", type=date.fromisoformat, default=None, help="last day of history (default today)"
    )
    args = ap.parse_args(argv)
    try:
        result = build(
            args.db,
            items=args.items,
            teams=args.teams,
            prs=args.items // 5 if args.prs is None else args.prs,
            deployments=args.items // 20 if args.deployments is None else args.deployments,
            seed=args.seed,
            weeks=args.weeks,
            end=args.end,
            incidents=args.incidents,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except VsmError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
