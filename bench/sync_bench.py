"""Sync throughput: Jira issues with full changelogs and GitHub PRs with reviews, from loopback fakes.

One command: ``python bench/sync_bench.py`` (defaults: 20,000 Jira issues and 10,000 GitHub PRs).
The fakes (``tests/fakes``) run in a process of their own, so neither their CPU nor their memory is
counted as ours. The sync runs in another child, into a fresh SQLite file, and reports:

- our own processing rate: items (Jira issues, GitHub PRs) stored per CPU second of the sync process
  (user + system). The servers' time is in their own process, so it is excluded; our HTTP client's
  work (requests, urllib3, JSON decoding) is included, as it is ours. Target >= 2,000 items/s. Also
  shown: payloads per CPU second (a PR is one payload: its GraphQL node, read 50 to a query after the
  REST list names the PRs that changed) and wall time minus the time spent waiting for responses;
- the sync process's peak memory, at a quarter of the items and at all of them: flat means the pages
  are streamed, never held all at once.

Exit 0 whatever the figures; the last line is ALL PASS or FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

RATE_TARGET = 2000.0
FLAT_TOLERANCE_MB = 40.0  # peak growth allowed from a quarter of the items to all of them
TOKEN = "bench-token-not-secret"
DAY = 86400.0
REPOS = 20
STATUSES = ["Selected for Development", "In Progress", "In Review", "In Progress", "In Review", "Done"]


def serve(jira_issues: int, prs: int) -> None:
    """The fakes, filled and served until stdin closes."""
    import random

    from fakes.github import FakeGitHub
    from fakes.jira import FakeJira

    rng = random.Random(7)
    now = time.time()
    jira = FakeJira(TOKEN)
    for i in range(jira_issues):
        key = f"P{i % 10}-{i + 1}"
        t = now - 300 * DAY + rng.random() * 290 * DAY
        jira.add(key, t, status="Backlog")
        for status in STATUSES[: rng.randint(2, len(STATUSES))]:
            t += rng.random() * 2 * DAY
            jira.move_status(key, min(t, now - 60), status, resolution="Done" if status == "Done" else None)
    gh = FakeGitHub(TOKEN)
    for i in range(prs):
        repo = f"acme/repo-{i % REPOS}"
        created = now - 300 * DAY + rng.random() * 290 * DAY
        reviews = tuple(
            (created + (k + 1) * 3600, f"reviewer{k}", "APPROVED" if k else "COMMENTED")
            for k in range(rng.randint(1, 3))
        )
        gh.add_pull(repo, created, merged=created + 5 * 3600, reviews=reviews)
    print("READY", jira.url, gh.url, flush=True)
    sys.stdin.read()


def sync(jira_url: str, github_url: str, db_path: str) -> dict:
    from metrics.sources.http import Policy
    from metrics.sources.sync import sync_source
    from metrics.store import open_db

    db = open_db(db_path)
    env = {"JIRA_TOKEN": TOKEN, "GITHUB_TOKEN": TOKEN}
    sources = [
        {
            "name": "jira",
            "kind": "jira",
            "url": jira_url,
            "deployment": "cloud",
            "user": "bot@acme.com",
            "token_env": "JIRA_TOKEN",
            "jql": "project in (" + ", ".join(f"P{i}" for i in range(10)) + ")",
        },
        {
            "name": "github",
            "kind": "github",
            "url": github_url,
            "token_env": "GITHUB_TOKEN",
            "repos": [f"acme/repo-{i}" for i in range(REPOS)],
            "production_environments": ["production"],
        },
    ]
    out = {}
    for source in sources:
        began, cpu_began = time.perf_counter(), _cpu()
        result = sync_source(db, source, env=env, policy=Policy(backoff=0.01, backoff_max=0.1))
        total, cpu = time.perf_counter() - began, _cpu() - cpu_began
        items = db.execute(
            "select count(*) from raw where source = ? and kind in ('issue', 'pull_node')", [source["name"]]
        ).fetchone()[0]
        out[source["name"]] = {
            "items": items,
            "payloads": result.seen,
            "requests": result.requests,
            "seconds": round(total, 2),
            "cpu": round(cpu, 2),
            "waiting": round(result.wait_seconds, 2),
            "own_rate": round(items / cpu, 1),
            "payload_rate": round(result.seen / cpu, 1),
            "unwaited_rate": round(items / max(total - result.wait_seconds, 1e-9), 1),
            "errors": result.errors,
        }
    out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_scale(jira_issues: int, prs: int) -> dict:
    here = str(Path(__file__).resolve())
    server = subprocess.Popen(
        [sys.executable, here, "_serve", str(jira_issues), str(prs)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError("the fake servers did not start")
        with tempfile.TemporaryDirectory() as tmp:
            child = subprocess.run(
                [sys.executable, here, "_sync", line[1], line[2], os.path.join(tmp, "sync.db")],
                capture_output=True,
                text=True,
                check=True,
            )
        return json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        server.stdin.close()
        server.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_serve":
        serve(int(argv[1]), int(argv[2]))
        return 0
    if argv and argv[0] == "_sync":
        print(json.dumps(sync(argv[1], argv[2], argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jira", type=int, default=20000, help="Jira issues (default 20,000)")
    parser.add_argument("--prs", type=int, default=10000, help="GitHub PRs (default 10,000)")
    args = parser.parse_args(argv)
    quarter = run_scale(args.jira // 4, args.prs // 4)
    full = run_scale(args.jira, args.prs)
    misses = []
    for name in ("jira", "github"):
        r = full[name]
        print(
            f"{name:7s} {r['items']:>6,} items ({r['payloads']:,} payloads, {r['requests']:,} requests): "
            f"{r['seconds']:.1f} s wall, {r['cpu']:.1f} s CPU -> {r['own_rate']:,.0f} items/s, "
            f"{r['payload_rate']:,.0f} payloads/s per CPU second (target >= {RATE_TARGET:,.0f} items/s); "
            f"wall minus waiting: {r['unwaited_rate']:,.0f} items/s"
        )
        if r["errors"]:
            misses.append(f"{name} errors: {r['errors']}")
        if (r["own_rate"] or 0) < RATE_TARGET:
            misses.append(f"{name} rate")
    growth = full["peak_mb"] - quarter["peak_mb"]
    print(
        f"peak memory: {quarter['peak_mb']} MB at a quarter of the items, {full['peak_mb']} MB at all "
        f"(+{growth:.1f} MB; flat = within {FLAT_TOLERANCE_MB:.0f} MB)"
    )
    if growth > FLAT_TOLERANCE_MB:
        misses.append("memory not flat")
    print("ALL PASS" if not misses else "FAIL: " + "; ".join(misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
