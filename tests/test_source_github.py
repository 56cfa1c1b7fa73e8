"""The GitHub connector over real HTTP against a loopback fake of the REST API (2022-11-28).

Every test checks the stored rows exactly (``expected_*`` recompute them from the fake's data), and never
sleeps: the policy records the waits instead.
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import pytest
from builders import assert_not_in_files, new_db, run_sync, team, ts
from fakes.github import FakeGitHub, when
from fakes.github_graphql import ALIAS
from fakes.server import Fault
from requests import post as http_post

from metrics.catalogue import compute
from metrics.normalise import github as gh_norm
from metrics.normalise import ingest, rebuild
from metrics.sources.github import OVERLAP, RECONCILE_EVERY, RUN_CAP
from metrics.store import open_db
from metrics.timeutil import Window, local_midnight, parse_instant, zone

TOKEN = "ghp_S3cr3tT0kenValue0123456789abcdefXYZ"
PAY, WEB = "acme/pay", "acme/web"
NOW = ts("2026-02-10 00:00")
DAY = 86400.0
HOUR = 3600.0


@pytest.fixture
def gh():
    fake = FakeGitHub(TOKEN)
    yield fake
    fake.close()


def source(gh: FakeGitHub, **kw) -> dict:
    return gh.source(**{"repos": [PAY], **kw})


def sync(db, gh, *, now: float = NOW, token: str = TOKEN, waits: list | None = None, **kw):
    return run_sync(db, source(gh, **kw), "GITHUB_TOKEN", token, now, waits)


# -- what the store must hold, recomputed from the fake ---------------------------------------------------
def pull_rows(db) -> dict:
    return {
        (r["repo"], r["number"]): (
            r["state"],
            r["draft"],
            r["created"],
            r["merged"],
            r["closed"],
            r["ready"],
            r["first_commit"],
            r["additions"],
            r["deletions"],
            r["merge_sha"],
            r["author"],
        )
        for r in db.query("select * from pull_requests where source = 'github'")
    }


def expected_pulls(gh: FakeGitHub, *, now: float = NOW, days: int = 365, repos=(PAY,)) -> dict:
    out = {}
    for repo in repos:
        for n, p in gh.pulls[repo].items():
            pull = p["pull"]
            if parse_instant(pull["updated_at"]) < now - days * DAY:
                continue
            merged = parse_instant(pull["merged_at"])
            ready = [
                parse_instant(e["created_at"]) for e in p["timeline"] if e["event"] == "ready_for_review"
            ]
            out[(repo, n)] = (
                "merged" if merged else pull["state"],
                int(pull["draft"]),
                parse_instant(pull["created_at"]),
                merged,
                parse_instant(pull["closed_at"]),
                min(ready, default=None),
                min(parse_instant(c["commit"]["author"]["date"]) for c in p["commits"]),
                p["detail"]["additions"],
                p["detail"]["deletions"],
                pull["merge_commit_sha"] if merged else None,
                pull["user"]["login"],
            )
    return out


def review_rows(db) -> set:
    return {
        (r["repo"], r["number"], r["id"], r["reviewer"], r["state"], r["submitted"])
        for r in db.query("select * from reviews where source = 'github'")
    }


def expected_reviews(gh: FakeGitHub, pulls: dict) -> set:
    return {
        (repo, n, str(r["id"]), r["user"]["login"], r["state"], parse_instant(r.get("submitted_at")))
        for (repo, n) in pulls
        for r in gh.pulls[repo][n]["reviews"]
    }


DEPLOYMENT_COLUMNS = ("service", "environment", "production", "status", "started", "finished", "sha")


def deployment_rows(db) -> dict:
    return {
        r["id"]: tuple(r[c] for c in DEPLOYMENT_COLUMNS)
        for r in db.query("select * from deployments where source = 'github'")
    }


def expected_deployments(gh: FakeGitHub, *, now: float = NOW, days: int = 365, repo: str = PAY) -> dict:
    out = {}
    for did, dep in gh.deployments[repo].items():
        if parse_instant(dep["created_at"]) < now - days * DAY or dep["environment"] != "production":
            continue
        payload = {**dep, "statuses": list(reversed(gh.statuses[did]))}
        r = gh_norm.deployment_row(payload, "github", ["production"])
        out[str(did)] = tuple(r[c] for c in DEPLOYMENT_COLUMNS)
    return out


def change_rows(db) -> dict:
    out: dict = {}
    for r in db.query("select * from deployment_changes where source = 'github'"):
        out.setdefault(r["deployment_id"], set()).add(r["number"])
    return out


def expected_changes(gh: FakeGitHub, *, now: float = NOW, days: int = 365, repo: str = PAY) -> dict:
    """Each successful production deployment in the window: the PRs merged after the previous successful
    one (before the window too) up to its sha."""
    index = {c: i for i, c in enumerate(gh.history[repo])}
    by_merge = {p["pull"]["merge_commit_sha"]: n for n, p in gh.pulls[repo].items() if p["pull"]["merged_at"]}
    deps = sorted(
        (d for d in gh.deployments[repo].values() if d["environment"] == "production"),
        key=lambda d: (d["created_at"], d["id"]),
    )
    out, prev = {}, None
    for d in deps:
        if not any(s["state"] == "success" for s in gh.statuses[d["id"]]):
            continue
        if prev is not None and parse_instant(d["created_at"]) >= now - days * DAY:
            shas = gh.history[repo][index[prev] + 1 : index[d["sha"]] + 1]
            numbers = {by_merge[s] for s in shas if s in by_merge}
            if numbers:
                out[str(d["id"])] = numbers
        prev = d["sha"]
    return out


def incident_rows(db) -> dict:
    return {
        r["id"]: (r["service"], r["created"], r["resolved"], r["status"])
        for r in db.query("select * from incidents where source = 'github'")
    }


def expected_incidents(gh: FakeGitHub, label: str = "incident", repo: str = PAY) -> dict:
    return {
        f"{repo}#{n}": (
            repo,
            parse_instant(i["created_at"]),
            parse_instant(i["closed_at"]) if i["state"] == "closed" else None,
            "resolved" if i["state"] == "closed" else "triggered",
        )
        for n, i in gh.issues[repo].items()
        if label in {x["name"] for x in i["labels"]}
    }


def raw_snapshot(db) -> list[tuple]:
    return db.execute(
        "select kind, external_id, updated_at, fetched_at, payload from raw order by kind, external_id"
    ).fetchall()


def status(db, stream: str) -> dict:
    row = next(db.query("select * from sync_status where source = 'github' and stream = ?", [stream]))
    return {**row, "state": json.loads(row["cursor"]) if row["cursor"] else None}


def requests(gh: FakeGitHub, start: int = 0, suffix: str = "") -> list:
    return [r for r in gh.server.log[start:] if r.path.endswith(suffix)]


def asked(gh: FakeGitHub, start: int = 0) -> list[list[int]]:
    """The PR numbers each GraphQL batch query asked for, in order."""
    return [
        [int(n) for _, n in ALIAS.findall(r.json()["query"])]
        for r in requests(gh, start, "/graphql")
        if ALIAS.search(r.json()["query"])
    ]


# -- histories -------------------------------------------------------------------------------------------
def pulls_history(gh: FakeGitHub, n: int = 230, repo: str = PAY) -> list[int]:
    """``n`` PRs over the last ~100 days: merged after a review, some drafts made ready, some open,
    one closed unmerged, a bot's, a pending review; plus two PRs last touched before the window."""
    numbers = []
    start = NOW - 100 * DAY
    for k in range(n):
        at = start + k * (99 * DAY / n)
        kw: dict = {"reviews": [(at + 2 * HOUR, "hubot", "APPROVED")], "merged": at + 5 * HOUR}
        if k % 7 == 0:
            kw.update(draft=True, ready=at + HOUR)
        if k % 11 == 0:
            kw.update(
                merged=None,
                reviews=[(at + HOUR, "monalisa", "CHANGES_REQUESTED"), (None, "hubot", "PENDING")],
            )
        if k % 13 == 0:
            kw.update(merged=None, closed=at + 3 * HOUR)
        if k % 17 == 0:
            kw.update(author="dependabot[bot]", author_type="Bot", reviews=[])
        numbers.append(gh.add_pull(repo, at, commits=1 + k % 4, additions=10 + k, **kw))
    for k in range(2):  # before the history window
        gh.add_pull(repo, NOW - 400 * DAY + k * DAY, merged=NOW - 399 * DAY + k * DAY)
    return numbers


def deploy_history(gh: FakeGitHub, repo: str = PAY) -> dict:
    """Merges, with production deployments after every third one (one failing, one still running), a
    staging deployment, and two successful deployments from before the history window."""
    made: dict = {}
    old = [
        gh.add_pull(repo, NOW - 420 * DAY + k * DAY, merged=NOW - 420 * DAY + k * DAY + HOUR)
        for k in range(3)
    ]
    made["ancient"] = gh.deploy(
        repo, NOW - 418 * DAY, [(NOW - 418 * DAY, "queued"), (NOW - 418 * DAY + 600, "success")]
    )
    gh.add_pull(repo, NOW - 380 * DAY, merged=NOW - 380 * DAY + HOUR)
    made["edge"] = gh.deploy(
        repo, NOW - 370 * DAY, [(NOW - 370 * DAY, "queued"), (NOW - 370 * DAY + 900, "success")]
    )
    made["old"] = old
    start = NOW - 60 * DAY
    made["prod"] = []
    for k in range(18):
        at = start + k * 3 * DAY
        made.setdefault("merges", []).append(
            gh.add_pull(repo, at, reviews=[(at + HOUR, "hubot", "APPROVED")], merged=at + 4 * HOUR)
        )
        if k % 3 == 2:
            t = at + 6 * HOUR
            states = [(t, "queued"), (t + 60, "in_progress"), (t + 600, "success")]
            if k == 8:
                states = [(t, "queued"), (t + 300, "failure")]
            made["prod"].append(gh.deploy(repo, t, states))
            if k == 5:
                made["staging"] = gh.deploy(repo, t - HOUR, [(t - HOUR, "success")], environment="staging")
    t = NOW - 2 * HOUR
    gh.add_pull(repo, t - 5 * HOUR, merged=t - HOUR)
    made["running"] = gh.deploy(repo, t, [(t, "queued"), (t + 60, "in_progress")])
    return made


# -- pull requests -----------------------------------------------------------------------------------------
def test_first_sync_pages_through_pulls_with_their_children_and_pinned_headers(gh):
    pulls_history(gh)
    pulls_history(gh, 40, repo=WEB)
    db = new_db()
    result = sync(db, gh, repos=[PAY, WEB])
    assert result.ok, result.errors
    want = expected_pulls(gh, repos=(PAY, WEB))
    assert pull_rows(db) == want and len(want) == 270
    assert review_rows(db) == expected_reviews(gh, want)
    assert any(r[5] is None for r in review_rows(db))  # the pending review is kept, unsubmitted
    assert {k for k, v in want.items() if v[9] is None and v[0] == "merged"} == set()
    listing = requests(gh, suffix=f"/repos/{PAY}/pulls")
    assert [r.arg("page", "1") for r in listing] == ["1", "2", "3"]
    assert {(r.arg("state"), r.arg("sort"), r.arg("direction"), r.arg("per_page")) for r in listing} == {
        ("all", "updated", "desc", "100")
    }
    for r in gh.server.log:
        assert r.headers["authorization"] == f"Bearer {TOKEN}"
        assert r.headers["accept"] == "application/vnd.github+json"
        assert r.headers["x-github-api-version"] == "2022-11-28"
    # The same rows again from the stored nodes alone.
    rebuild(db, {"github": source(gh, repos=[PAY, WEB])})
    assert pull_rows(db) == want and review_rows(db) == expected_reviews(gh, want)
    # Each page's PRs in GraphQL batches of at most 50; no REST request per PR.
    assert [len(b) for b in asked(gh)] == [50, 50, 50, 50, 30, 40]
    assert sorted(n for b in asked(gh) for n in b) == sorted(n for _, n in want)
    assert not [r for r in gh.server.log if "/pulls/" in r.path or r.path.endswith("/timeline")]
    assert status(db, "pulls")["state"]["repos"][PAY]["cursor"] == max(
        p["pull"]["updated_at"] for p in gh.pulls[PAY].values()
    )


def test_a_changed_pr_alone_has_its_children_refetched_and_the_walk_stops_at_the_cursor(gh):
    numbers = pulls_history(gh)
    db = new_db()
    assert sync(db, gh).ok
    changed = numbers[50]
    gh.review(PAY, changed, NOW + HOUR, "octocat", "APPROVED")
    gh.edit_pull(PAY, numbers[60], NOW + 2 * HOUR, title="Renamed PAY-99")
    start = len(gh.server.log)
    result = sync(db, gh, now=NOW + DAY)
    assert result.ok, result.errors
    assert pull_rows(db) == expected_pulls(gh, now=NOW + DAY)
    assert review_rows(db) == expected_reviews(gh, expected_pulls(gh, now=NOW + DAY))
    listing = requests(gh, start, f"/repos/{PAY}/pulls")
    assert len(listing) == 1  # page 1 holds both changes, then a PR older than cursor - overlap
    assert [sorted(b) for b in asked(gh, start)] == [sorted([changed, numbers[60]])]
    assert status(db, "pulls")["rows_changed"] == 2  # the reviewed PR, the renamed PR: one payload each
    title = db.execute("select title from pull_requests where number = ?", [numbers[60]]).fetchone()[0]
    assert title == "Renamed PAY-99"


def test_second_sync_with_no_remote_change_is_answered_with_304s_and_writes_nothing(gh):
    pulls_history(gh)
    deploy_history(gh)
    gh.incident(PAY, NOW - 10 * DAY, NOW - 10 * DAY + HOUR)
    db = new_db()
    assert sync(db, gh).ok
    before = raw_snapshot(db), pull_rows(db), deployment_rows(db), change_rows(db), incident_rows(db)
    start = len(gh.server.log)
    gh.not_modified.clear()
    result = sync(db, gh, now=NOW + 60)
    assert result.ok and result.changed == 0, result.errors
    assert (
        raw_snapshot(db),
        pull_rows(db),
        deployment_rows(db),
        change_rows(db),
        incident_rows(db),
    ) == before
    for stream in ("pulls", "deployments", "incidents"):
        assert status(db, stream)["rows_changed"] == 0
    assert set(gh.not_modified) >= {
        f"/repos/{PAY}/pulls",
        f"/repos/{PAY}/deployments",
        f"/repos/{PAY}/issues",
    }
    # The still-running deployment is re-read: its statuses answer 304 too.
    running = [r for r in requests(gh, start) if r.path.endswith("/statuses")]
    assert running and all(r.path in gh.not_modified for r in running)
    assert not requests(gh, start, "/graphql")


# -- deployments ---------------------------------------------------------------------------------------------
def test_deployments_with_statuses_are_linked_to_the_prs_they_shipped(gh):
    made = deploy_history(gh)
    db = new_db()
    result = sync(db, gh)
    assert result.ok, result.errors
    assert deployment_rows(db) == expected_deployments(gh)
    assert str(made["staging"]) not in deployment_rows(db) and str(made["edge"]) not in deployment_rows(db)
    assert deployment_rows(db)[str(made["running"])][3:6] == (
        "in_progress",
        parse_instant(when(NOW - 2 * HOUR)),
        None,
    )
    assert change_rows(db) == expected_changes(gh)
    # The first deployment in the window is compared with the last successful one before it.
    first = str(made["prod"][0])
    assert change_rows(db)[first] == set(made["merges"][:3])  # compared with the edge's sha
    state = status(db, "deployments")["state"]["repos"][PAY]["production"]
    assert state["edge"]["id"] == str(made["edge"]) and list(state["open"]) == [str(made["running"])]
    # The running deployment finishes: re-read from the open set and linked.
    gh.add_status(PAY, made["running"], NOW + 600, "success")
    later = NOW + 5 * DAY
    assert sync(db, gh, now=later).ok
    assert deployment_rows(db) == expected_deployments(gh, now=later)
    assert change_rows(db) == expected_changes(gh, now=later) and str(made["running"]) in change_rows(db)
    assert "open" not in status(db, "deployments")["state"]["repos"][PAY]["production"]
    compares = [r for r in gh.server.log if "/compare/" in r.path]
    assert all(r.arg("per_page") == "100" for r in compares)
    assert len(compares) == len(expected_changes(gh, now=later))  # each once; none for the failed one


def test_a_compare_of_many_commits_is_paged(gh):
    gh.add_pull(PAY, NOW - 50 * DAY, merged=NOW - 50 * DAY + HOUR)
    gh.deploy(PAY, NOW - 49 * DAY, [(NOW - 49 * DAY, "success")])
    numbers = [
        gh.add_pull(PAY, NOW - 40 * DAY + k * 600, commits=3, merged=NOW - 39 * DAY + k * 600)
        for k in range(80)
    ]
    big = gh.deploy(PAY, NOW - 30 * DAY, [(NOW - 30 * DAY, "success")])
    db = new_db()
    assert sync(db, gh).ok
    assert change_rows(db) == {str(big): set(numbers)}  # 320 commits over 4 pages
    pages = [r.arg("page", "1") for r in gh.server.log if "/compare/" in r.path]
    assert pages == ["1", "2", "3", "4"]
    stored = json.loads(db.execute("select payload from raw where kind = 'compare'").fetchone()[0])
    assert len(stored["commits"]) == 320 and "files" not in stored


def test_deleted_deployments_are_reconciled_and_the_next_one_relinked(gh):
    made = deploy_history(gh)
    db = new_db()
    assert sync(db, gh).ok
    victim, after = made["prod"][3], made["prod"][4]
    gh.delete_deployment(PAY, victim)
    soon = NOW + HOUR
    assert sync(db, gh, now=soon).ok
    assert str(victim) in deployment_rows(db)  # not due yet: no id listing
    later = NOW + RECONCILE_EVERY + HOUR
    result = sync(db, gh, now=later)
    assert result.ok, result.errors
    assert deployment_rows(db) == expected_deployments(gh, now=later) and str(victim) not in deployment_rows(
        db
    )
    assert change_rows(db) == expected_changes(gh, now=later)
    assert str(victim) not in change_rows(db) and len(change_rows(db)[str(after)]) == 9  # k = 6..14
    assert not db.execute("select 1 from raw where external_id = ?", [str(victim)]).fetchall()
    assert any(r.path == f"/repos/{PAY}/deployments/{victim}" for r in gh.server.log)  # confirmed by a 404


def test_releases_as_the_deployment_signal(gh):
    gh.add_pull(PAY, NOW - 100 * DAY, merged=NOW - 100 * DAY + HOUR)
    gh.release(PAY, "v0.9", NOW - 99 * DAY)
    a = [
        gh.add_pull(PAY, NOW - 50 * DAY + k * HOUR, merged=NOW - 50 * DAY + k * HOUR + 600) for k in range(3)
    ]
    v1 = gh.release(PAY, "v1.0", NOW - 45 * DAY)
    b = [
        gh.add_pull(PAY, NOW - 40 * DAY + k * HOUR, merged=NOW - 40 * DAY + k * HOUR + 600) for k in range(2)
    ]
    rc = gh.release(PAY, "v1.1-rc1", NOW - 38 * DAY, prerelease=True)
    c = [gh.add_pull(PAY, NOW - 35 * DAY, merged=NOW - 35 * DAY + 600)]
    draft = gh.release(PAY, "v1.2", None, created=NOW - 30 * DAY, draft=True)
    v11 = gh.release(PAY, "v1.1", NOW - 20 * DAY)
    db = new_db()
    result = sync(db, gh, deployment_signal="releases", history_days=60)
    assert result.ok, result.errors
    rows = deployment_rows(db)
    assert set(rows) == {f"release-{v1}", f"release-{rc}", f"release-{v11}"}
    assert rows[f"release-{v1}"] == (PAY, "production", 1, "success", NOW - 45 * DAY, NOW - 45 * DAY, "v1.0")
    assert rows[f"release-{rc}"][1:3] == ("prerelease", 0)
    assert change_rows(db) == {f"release-{v1}": set(a), f"release-{v11}": set(b + c)}
    assert f"release-{draft}" not in rows and not requests(gh, suffix="/deployments")
    # Published later, the draft is found by the periodic full listing; a deleted release goes.
    gh.releases[PAY][draft].update(draft=False, published_at=when(NOW + HOUR))
    del gh.releases[PAY][v1]
    gh.changed()
    later = NOW + RECONCILE_EVERY + HOUR
    assert sync(db, gh, now=later, deployment_signal="releases", history_days=60).ok
    rows = deployment_rows(db)
    assert set(rows) == {f"release-{rc}", f"release-{v11}", f"release-{draft}"}
    assert change_rows(db) == {f"release-{v11}": set(a + b + c)}  # v1.1 now follows v0.9, the edge


def test_workflow_runs_as_the_deployment_signal_split_created_ranges_under_the_cap(gh):
    gh.add_pull(PAY, NOW - 30 * DAY, merged=NOW - 30 * DAY + 600)
    first = gh.run(PAY, NOW - 29 * DAY, finished=NOW - 29 * DAY + 300)
    shipped = [
        gh.add_pull(PAY, NOW - 20 * DAY + k * 60, merged=NOW - 20 * DAY + k * 60 + 30) for k in range(4)
    ]
    for k in range(2300):  # CI noise: more than the cap of one query inside a week
        gh.run(PAY, NOW - 12 * DAY + k * 120, name="CI", path=".github/workflows/ci.yml")
    deploy = gh.run(PAY, NOW - 10 * DAY, finished=NOW - 10 * DAY + 400)
    failed = gh.run(PAY, NOW - 9 * DAY, conclusion="failure", finished=NOW - 9 * DAY + 100)
    running = gh.run(PAY, NOW - 2 * HOUR, status="in_progress")
    db = new_db()
    result = sync(db, gh, deployment_signal="workflow_runs", deploy_workflow="deploy.yml", history_days=40)
    assert result.ok, result.errors
    rows = deployment_rows(db)
    assert set(rows) == {f"run-{i}" for i in (first, deploy, failed, running)}
    assert rows[f"run-{deploy}"][3:6] == ("success", NOW - 10 * DAY, NOW - 10 * DAY + 400)
    assert rows[f"run-{running}"][3] == "in_progress" and rows[f"run-{running}"][5] is None
    assert change_rows(db) == {f"run-{deploy}": set(shipped)}
    listings = [r for r in gh.server.log if r.path.endswith("/actions/runs")]

    def count(r) -> int:
        lo, hi = (parse_instant(x) for x in r.arg("created").split(".."))
        return sum(lo <= parse_instant(x["created_at"]) <= hi for x in gh.runs[PAY].values())

    over = [r for r in listings if count(r) > RUN_CAP]
    assert over and all(r.arg("page", "1") == "1" for r in over)  # an over-cap range is halved at once
    paged = [r for r in listings if r.arg("page", "1") != "1"]
    assert paged and all(count(r) <= RUN_CAP for r in paged)
    gh.finish_run(PAY, running, NOW + 600)
    assert sync(
        db,
        gh,
        now=NOW + DAY,
        deployment_signal="workflow_runs",
        deploy_workflow="deploy.yml",
        history_days=40,
    ).ok
    assert deployment_rows(db)[f"run-{running}"][3:6] == ("success", NOW - 2 * HOUR, NOW + 600)


# -- incidents -----------------------------------------------------------------------------------------------
def test_issues_labelled_as_incidents_and_their_reconciliation(gh):
    a = gh.incident(PAY, NOW - 20 * DAY, NOW - 20 * DAY + 2 * HOUR, labels=("sev1", "outage"))
    b = gh.incident(PAY, NOW - 5 * DAY, labels=("outage",))
    gh.incident(PAY, NOW - 4 * DAY, NOW - 3 * DAY, labels=("bug",))
    gh.add_pull(PAY, NOW - 3 * DAY, labels=("outage",))  # a labelled PR: listed by /issues, skipped
    db = new_db()
    result = sync(db, gh, incident_labels=["outage"])
    assert result.ok, result.errors
    assert incident_rows(db) == expected_incidents(gh, "outage") and len(incident_rows(db)) == 2
    severity = db.execute("select severity from incidents where id = ?", [f"{PAY}#{a}"]).fetchone()[0]
    assert severity == "sev1"
    gh.close_issue(PAY, b, NOW + HOUR)
    assert sync(db, gh, now=NOW + 2 * HOUR, incident_labels=["outage"]).ok
    assert incident_rows(db)[f"{PAY}#{b}"][2:] == (NOW + HOUR, "resolved")
    gh.relabel(PAY, a, NOW - 19 * DAY, ("bug",))  # relabelled, and backdated past the cursor
    later = NOW + RECONCILE_EVERY + 3 * HOUR
    assert sync(db, gh, now=later, incident_labels=["outage"]).ok
    assert incident_rows(db) == expected_incidents(gh, "outage") and set(incident_rows(db)) == {f"{PAY}#{b}"}
    assert not db.execute(
        "select 1 from raw where kind = 'issue' and external_id = ?", [f"{PAY}#{a}"]
    ).fetchall()


# -- faults: the stored data is exactly right after each ---------------------------------------------------
def _check_all(db, gh) -> None:
    assert pull_rows(db) == expected_pulls(gh)
    assert review_rows(db) == expected_reviews(gh, expected_pulls(gh))
    assert deployment_rows(db) == expected_deployments(gh)
    assert change_rows(db) == expected_changes(gh)


def test_429_with_retry_after_is_waited_out(gh):
    pulls_history(gh)
    deploy_history(gh)
    gh.arm(f"/repos/{PAY}/pulls", 1, Fault(429, {"Retry-After": "7"}), Fault(429, {"Retry-After": "2"}))
    db, waits = new_db(), []
    result = sync(db, gh, waits=waits)
    assert result.ok, result.errors
    assert waits == [7.0, 2.0]
    _check_all(db, gh)


def test_a_rate_limit_403_waits_until_the_reset_and_a_plain_403_is_a_permission_error(gh):
    pulls_history(gh, 120)
    reset = int(time.time()) + 42
    gh.arm(
        f"/repos/{PAY}/pulls", 1, Fault(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    )
    db, waits = new_db(), []
    result = sync(db, gh, waits=waits)
    assert result.ok, result.errors
    assert len(waits) == 1 and 30 <= waits[0] <= 43  # until the reset, however long the sync took
    assert pull_rows(db) == expected_pulls(gh)
    before = raw_snapshot(db)
    gh.add_pull(PAY, NOW + HOUR)
    gh.arm(f"/repos/{PAY}/pulls", 0, Fault(403))
    waits.clear()
    denied = sync(db, gh, now=NOW + DAY, waits=waits)
    assert not denied.ok and "permission denied (403)" in denied.errors[0] and TOKEN not in denied.errors[0]
    assert waits == [] and raw_snapshot(db) == before
    assert "403" in status(db, "pulls")["last_error"]


def test_a_burst_of_5xx_is_absorbed(gh):
    pulls_history(gh)
    deploy_history(gh)
    gh.arm(f"/repos/{PAY}/pulls", 1, Fault(500), Fault(502), Fault(503), Fault(504))
    gh.arm(f"/repos/{PAY}/deployments", 0, Fault(502), Fault(500))
    db = new_db()
    assert sync(db, gh).ok
    _check_all(db, gh)


def test_a_connection_dropped_mid_page_is_retried(gh):
    pulls_history(gh)
    gh.arm(f"/repos/{PAY}/pulls", 1, Fault(drop=True))
    db = new_db()
    assert sync(db, gh).ok
    assert pull_rows(db) == expected_pulls(gh)
    assert [r.arg("page", "1") for r in requests(gh, suffix=f"/repos/{PAY}/pulls")] == ["1", "2", "2", "3"]


def test_malformed_json_is_retried(gh):
    pulls_history(gh)
    gh.arm("/graphql", 2, Fault(body=b'{"data": {"repository": {"p12": {"number'))
    gh.arm(f"/repos/{PAY}/pulls", 2, Fault(body=b'[{"url": "https://api.github.com/re'))
    db = new_db()
    assert sync(db, gh).ok
    assert pull_rows(db) == expected_pulls(gh)
    assert review_rows(db) == expected_reviews(gh, expected_pulls(gh))


def test_an_expired_token_fails_the_streams_and_keeps_stored_data(gh):
    pulls_history(gh)
    deploy_history(gh)
    db = new_db()
    assert sync(db, gh).ok
    before, success = raw_snapshot(db), status(db, "pulls")["last_success"]
    gh.add_pull(PAY, NOW + HOUR)
    result = sync(db, gh, now=NOW + DAY, token="ghp_expired000")
    assert not result.ok and len(result.errors) == 3
    assert all("authentication failed (401)" in e and "ghp_" not in e for e in result.errors)
    assert raw_snapshot(db) == before
    st = status(db, "pulls")
    assert st["last_success"] == success and "401" in st["last_error"]


def test_the_token_is_never_stored_nor_shown(gh, tmp_path):
    pulls_history(gh, 30)
    deploy_history(gh)
    db = open_db(tmp_path / "x.db")
    assert sync(db, gh).ok
    gh.token = "rotated"
    bad = sync(db, gh, now=NOW + DAY)
    gh.outage = lambda r: True
    down = sync(db, gh, now=NOW + 2 * DAY, token="rotated")
    errors = bad.errors + down.errors
    assert errors and all(TOKEN not in e and "rotated" not in e for e in errors)
    db.conn.close()
    assert_not_in_files(tmp_path, TOKEN, "Bearer")


def test_one_failing_repo_does_not_stop_the_others(gh):
    pulls_history(gh, 20)
    pulls_history(gh, 10, repo=WEB)
    gh.outage = lambda r: r.path.startswith(f"/repos/{PAY}/")
    db = new_db()
    result = sync(db, gh, repos=[PAY, WEB])
    assert not result.ok and f"{PAY}:" in result.errors[0] and WEB not in result.errors[0]
    assert pull_rows(db) == expected_pulls(gh, repos=(WEB,))


# -- resumption ----------------------------------------------------------------------------------------------
def test_an_interrupted_walk_resumes_at_the_page_where_it_stopped(gh):
    pulls_history(gh)
    gh.outage = lambda r: r.path == f"/repos/{PAY}/pulls" and r.arg("page") == "3"
    db = new_db()
    first = sync(db, gh)
    assert not first.ok and "HTTP 500" in first.errors[0]
    walk = status(db, "pulls")["state"]["repos"][PAY]["walk"]
    assert "page=3" in walk["next"] and status(db, "pulls")["state"]["repos"][PAY].get("cursor") is None
    assert len(pull_rows(db)) == 200
    stored = {k: v for k, v in pull_rows(db).items()}
    gh.outage = None
    start = len(gh.server.log)
    resumed = sync(db, gh)
    assert resumed.ok, resumed.errors
    listing = requests(gh, start, f"/repos/{PAY}/pulls")
    assert [r.arg("page") for r in listing] == ["3"]  # the saved Link, as given
    assert not {n for b in asked(gh, start) for n in b} & {n for (_, n) in stored}
    assert pull_rows(db) == expected_pulls(gh) and len(pull_rows(db)) == 232 - 2
    assert review_rows(db) == expected_reviews(gh, expected_pulls(gh))
    assert "walk" not in status(db, "pulls")["state"]["repos"][PAY]


def test_a_batch_stored_before_an_interruption_is_not_read_again(gh):
    numbers = pulls_history(gh, 120)
    batches = 0

    def second_batch(r) -> bool:
        nonlocal batches
        batches += r.path == "/graphql"
        return batches >= 2

    gh.outage = second_batch
    db = new_db()
    failed = sync(db, gh)
    assert not failed.ok and "/graphql" in failed.errors[0]
    first = set(asked(gh)[0])
    assert len(first) == 50 and {n for (_, n) in pull_rows(db)} == first
    gh.outage = None
    start = len(gh.server.log)
    assert sync(db, gh).ok
    again = {n for b in asked(gh, start) for n in b}
    assert again == set(numbers) - first
    assert pull_rows(db) == expected_pulls(gh) and review_rows(db) == expected_reviews(gh, expected_pulls(gh))


def test_connections_past_one_page_are_read_to_the_end(gh):
    """A PR with 130 commits, 140 reviews and 120 labels: GitHub gives 100 of each per query; the rest
    come from follow-up queries on that PR, and the stored node holds them all."""
    big = gh.add_pull(PAY, NOW - 5 * DAY, commits=130, labels=tuple(f"l{k}" for k in range(120)))
    for k in range(140):
        gh.review(PAY, big, NOW - 4 * DAY + k * 60, f"reviewer{k % 7}", "COMMENTED")
    gh.add_pull(PAY, NOW - 3 * DAY, reviews=[(NOW - 2 * DAY, "hubot", "APPROVED")])
    db = new_db()
    assert sync(db, gh).ok
    assert pull_rows(db) == expected_pulls(gh)
    assert review_rows(db) == expected_reviews(gh, expected_pulls(gh))
    follow = [r.json() for r in requests(gh, suffix="/graphql") if not ALIAS.search(r.json()["query"])]
    connection = [f["query"].split("pullRequest(number: $number) { ")[1].split("(")[0] for f in follow]
    assert sorted(connection) == ["commits", "labels", "reviews"]
    assert {f["variables"]["number"] for f in follow} == {big}
    node = json.loads(
        db.execute(
            "select payload from raw where kind = 'pull_node' and external_id = ?", [f"{PAY}#{big}"]
        ).fetchone()[0]
    )
    assert [len(node[c]["nodes"]) for c in ("commits", "reviews", "labels")] == [130, 140, 120]
    assert "pageInfo" not in node["reviews"]
    labels = db.execute("select labels from pull_requests where number = ?", [big]).fetchone()[0]
    assert json.loads(labels) == [f"l{k}" for k in range(120)]


def test_graphql_rate_limited_answer_is_waited_until_the_reset(gh):
    """GitHub reports spent GraphQL points as a 200 with a RATE_LIMITED error."""
    pulls_history(gh, 20)
    gh.graphql_spent, gh.graphql_reset = 1, int(time.time()) + 42
    db, waits = new_db(), []
    result = sync(db, gh, waits=waits)
    assert result.ok, result.errors
    assert len(waits) == 1 and 30 <= waits[0] <= 43
    assert pull_rows(db) == expected_pulls(gh)


def test_a_batch_github_gives_up_on_is_asked_again_in_halves(gh):
    """GitHub times out on heavy queries (a 200 with an untyped error): the batch is split until each
    part passes, so a page of long PRs cannot stall the repo's sync."""
    numbers = pulls_history(gh, 60)
    gh.graphql_limit = 12
    db = new_db()
    result = sync(db, gh)
    assert result.ok, result.errors
    assert pull_rows(db) == expected_pulls(gh) and review_rows(db) == expected_reviews(gh, expected_pulls(gh))
    sizes = [len(b) for b in asked(gh)]
    assert sizes[:3] == [50, 25, 12]  # 50 times out, then 25, then 12 passes
    assert sorted(n for b in asked(gh) if len(b) <= 12 for n in b) == sorted(numbers)
    gh.graphql_limit = 0  # nothing passes, not even one PR: the stream fails, naming the cause
    gh.edit_pull(PAY, numbers[0], NOW + HOUR, title="Renamed")
    failed = sync(db, gh, now=NOW + DAY)
    assert not failed.ok and "GitHub gave up on the query" in failed.errors[0]


def test_a_secondary_graphql_limit_without_a_reset_waits_a_minute(gh):
    pulls_history(gh, 20)
    body = b'{"errors": [{"type": "RATE_LIMITED", "message": "You have exceeded a secondary rate limit."}]}'
    gh.arm("/graphql", 0, Fault(200, {}, body))
    db, waits = new_db(), []
    result = sync(db, gh, waits=waits)
    assert result.ok, result.errors
    assert len(waits) == 1 and waits[0] >= 60
    assert pull_rows(db) == expected_pulls(gh)


def test_a_pr_graphql_cannot_find_comes_back_as_none_and_a_missing_repo_fails(gh):
    from metrics.sources import github_graphql
    from metrics.sources.github import GitHubConnector
    from metrics.sources.http import SourceError

    n = gh.add_pull(PAY, NOW - DAY)
    http = GitHubConnector.make_http(source(gh), TOKEN)
    url = github_graphql.endpoint(gh.url)
    nodes = dict(github_graphql.pull_nodes(http, url, PAY, [n, 999999]))
    assert nodes[999999] is None and nodes[n]["number"] == n and nodes[n]["author"]["login"] == "octocat"
    with pytest.raises(SourceError, match="NOT_FOUND: Could not resolve to a Repository"):
        list(github_graphql.pull_nodes(http, url, "acme/gone", [1]))
    assert github_graphql.endpoint("https://ghe.acme.com/api/v3") == "https://ghe.acme.com/api/graphql"
    assert github_graphql.endpoint("https://api.github.com") == "https://api.github.com/graphql"


def test_review_ids_past_32_bits_sync_fully_with_rest_ids_and_bot_spellings(gh):
    """Review ids are past 2,147,483,647, which GitHub's GraphQL ``databaseId`` (a 32-bit Int) cannot
    hold: the repo syncs whole, each review keyed by REST's id, bots spelled ``x[bot]`` as REST does."""
    n = gh.add_pull(
        PAY,
        NOW - 3 * DAY,
        reviews=[
            (NOW - 2 * DAY, "copilot-pull-request-reviewer[bot]", "COMMENTED"),
            (NOW - DAY, "hubot", "APPROVED"),
        ],
        merged=NOW - HOUR,
    )
    bot = gh.add_pull(PAY, NOW - 2 * DAY, author="dependabot[bot]", author_type="Bot")
    db = new_db()
    result = sync(db, gh)
    assert result.ok, result.errors
    assert pull_rows(db) == expected_pulls(gh) and len(pull_rows(db)) == 2
    assert review_rows(db) == expected_reviews(gh, expected_pulls(gh))
    reviewers = db.execute("select id, reviewer, reviewer_bot from reviews order by id").fetchall()
    assert reviewers == [
        ("2480002890", "copilot-pull-request-reviewer[bot]", 1),
        ("2480002891", "hubot", 0),
    ]
    author = db.execute("select author, author_bot from pull_requests where number = ?", [bot]).fetchone()
    assert tuple(author) == ("dependabot[bot]", 1)
    node = json.loads(
        db.execute("select payload from raw where external_id = ?", [f"{PAY}#{n}"]).fetchone()[0]
    )
    assert [r["fullDatabaseId"] for r in node["reviews"]["nodes"]] == ["2480002890", "2480002891"]
    assert node["reviews"]["nodes"][0]["author"] == {
        "__typename": "Bot",
        "login": "copilot-pull-request-reviewer",
    }


def graphql_post(gh: FakeGitHub, query: str, variables: dict | None = None, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"query": query, "variables": variables or {}}
    return http_post(f"{gh.url}/graphql", json=body, headers=headers, timeout=10)


def test_the_graphql_fake_answers_as_github_does(gh):
    """Any query is executed on GitHub's schema, so the fake answers what GitHub answers: a 32-bit
    ``databaseId`` past 2**31 - 1 is null with an untyped coercion error at its path, the BigInt
    ``fullDatabaseId`` is a string, a bot's login has no ``[bot]``, connections need ``first``/``last``
    of at most 100, an unknown PR is null with ``NOT_FOUND``; all with HTTP 200."""
    n = gh.add_pull(PAY, NOW - DAY, reviews=[(NOW - HOUR, "copilot-pull-request-reviewer[bot]", "COMMENTED")])
    repo = '{ repository(owner: "acme", name: "pay") { %s } }'
    query = repo % (
        f"pullRequest(number: {n}) {{ reviews(first: 5) {{ nodes {{ databaseId fullDatabaseId "
        "author { __typename login } } } }"
    )
    ids = graphql_post(gh, query)
    assert ids.status_code == 200
    assert ids.json() == {
        "data": {
            "repository": {
                "pullRequest": {
                    "reviews": {
                        "nodes": [
                            {
                                "databaseId": None,
                                "fullDatabaseId": "2480002890",
                                "author": {"__typename": "Bot", "login": "copilot-pull-request-reviewer"},
                            }
                        ]
                    }
                }
            }
        },
        "errors": [
            {
                "path": ["repository", "pullRequest", "reviews", "nodes", 0, "databaseId"],
                "locations": [{"line": 1, "column": query.index("databaseId") + 1}],
                "message": "Int cannot represent non 32-bit signed integer value: 2480002890",
            }
        ],
    }
    query = repo % f"pullRequest(number: {n}) {{ reviews {{ totalCount }} }}"
    unbounded = graphql_post(gh, query).json()
    assert unbounded["data"] == {"repository": {"pullRequest": {"reviews": None}}}
    assert unbounded["errors"] == [
        {
            "type": "MISSING_PAGINATION_BOUNDARIES",
            "path": ["repository", "pullRequest", "reviews"],
            "locations": [{"line": 1, "column": query.index("reviews") + 1}],
            "message": "You must provide a `first` or `last` value to properly paginate the `reviews` "
            "connection.",
        }
    ]
    excessive = graphql_post(
        gh, repo % f"p{n}: pullRequest(number: {n}) {{ number commits(first: 101) {{ totalCount }} }}"
    ).json()
    # ``commits`` is non-null: its error nulls the PR, as GraphQL propagates it.
    assert excessive["data"] == {"repository": {f"p{n}": None}}
    assert [(e["type"], e["path"], e["message"]) for e in excessive["errors"]] == [
        (
            "EXCESSIVE_PAGINATION",
            ["repository", f"p{n}", "commits"],
            "Requesting 101 records on the `commits` connection exceeds the `first` limit of 100 records.",
        )
    ]
    missing = graphql_post(gh, repo % "p9: pullRequest(number: 999999) { number }").json()
    assert missing["data"] == {"repository": {"p9": None}}
    assert [(e["type"], e["path"], e["message"]) for e in missing["errors"]] == [
        ("NOT_FOUND", ["repository", "p9"], "Could not resolve to a PullRequest with the number of 999999.")
    ]
    anonymous = graphql_post(gh, repo % "id", token=None)
    assert anonymous.status_code == 401 and anonymous.json()["message"] == "Bad credentials"
    gh.graphql_spent = 1
    spent = graphql_post(gh, repo % "id")
    assert spent.status_code == 200 and spent.headers["x-ratelimit-remaining"] == "0"
    assert [e["type"] for e in spent.json()["errors"]] == ["RATE_LIMITED"]


def test_a_field_error_on_one_pr_is_that_prs_alone(gh):
    """An error on a field the rows do not read (labels) leaves it empty and the PR is stored; one on a
    field they need (the merge commit) keeps that PR out, not the others: the stream fails naming it,
    the cursor moves, and the next sync asks for that PR alone."""
    a = gh.add_pull(PAY, NOW - 3 * DAY, labels=("feature",), merged=NOW - 2 * DAY)
    b = gh.add_pull(PAY, NOW - 3 * DAY, reviews=[(NOW - 2 * DAY, "hubot", "APPROVED")], merged=NOW - DAY)
    c = gh.add_pull(PAY, NOW - 2 * DAY, reviews=[(NOW - DAY, "mona", "APPROVED")])
    forbidden = ("FORBIDDEN", "Resource not accessible by integration")
    gh.graphql_field_errors = {(PAY, a, "labels"): forbidden, (PAY, b, "mergeCommit"): forbidden}
    db = new_db()
    failed = sync(db, gh)
    assert not failed.ok
    assert f"#{b}: mergeCommit: FORBIDDEN: Resource not accessible by integration" in failed.errors[0]
    assert f"#{a}" not in failed.errors[0]
    want = expected_pulls(gh)
    assert pull_rows(db) == {k: v for k, v in want.items() if k != (PAY, b)}
    assert review_rows(db) == expected_reviews(gh, {(PAY, c): None})
    assert db.execute("select labels from pull_requests where number = ?", [a]).fetchone()[0] == "[]"
    state = status(db, "pulls")["state"]["repos"][PAY]
    assert list(state["unread"]) == [str(b)] and state["cursor"] == gh.pulls[PAY][b]["pull"]["updated_at"]
    gh.graphql_field_errors = {}
    start = len(gh.server.log)
    again = sync(db, gh, now=NOW + HOUR)
    assert again.ok, again.errors
    assert asked(gh, start) == [[b]]
    assert pull_rows(db) == want and review_rows(db) == expected_reviews(gh, want)
    assert "unread" not in status(db, "pulls")["state"]["repos"][PAY]


@pytest.mark.parametrize(
    ("bounds", "error"),
    [
        ("labels", "MISSING_PAGINATION_BOUNDARIES: You must provide a `first` or `last` value"),
        ("labels(first: 101)", "EXCESSIVE_PAGINATION: Requesting 101 records on the `labels` connection"),
    ],
)
def test_a_pagination_error_fails_the_stream_even_on_an_optional_field(gh, monkeypatch, bounds, error):
    """GitHub's pagination errors say the query is wrong, so every PR would fail alike: they fail the
    repo's stream rather than pass as one PR's optional field."""
    from metrics.sources import github_graphql

    gh.add_pull(PAY, NOW - DAY, labels=("feature",))
    bad = github_graphql.FRAGMENT.replace("labels(first: 100)", bounds)
    monkeypatch.setattr(github_graphql, "FRAGMENT", bad)
    db = new_db()
    result = sync(db, gh)
    assert not result.ok and error in result.errors[0]
    assert pull_rows(db) == {}


# -- metrics from synced data equal metrics from the same payloads ingested directly ------------------------
def test_pr_and_dora_metrics_from_the_synced_sample_equal_direct_ingestion(gh):
    from metrics.sample import SAMPLE_SOURCES, WEEKS, sample_teams, simulate

    end = date(2026, 2, 9)
    wire = simulate(end)
    merged = []
    for pr in wire.pulls:
        if pr.created < wire.cutoff:
            gh.load_pull(wire.pull_payloads(pr))
            if pr.merged is not None and pr.merged < wire.cutoff:
                merged.append(pr)
    for pr in sorted(merged, key=lambda p: p.merged):
        for c in pr.commit_shas:
            gh._commit(pr.repo, c, pr.title)
        gh._commit(pr.repo, pr.merge_sha, f"Merge pull request #{pr.number}")
    for dep in wire.deploys:
        if dep.created < wire.cutoff:
            gh.load_deployment(
                wire.deployment_payload(dep, f"https://github.com/{dep.repo}/actions/runs/{dep.run}")
            )
    repos = sorted({pr.repo for pr in wire.pulls})
    synced = new_db()
    result = sync(synced, gh, now=wire.cutoff, repos=repos, history_days=WEEKS * 7)
    assert result.ok, result.errors
    direct = new_db()
    for src, kind, ext, updated, payload in wire.raw_rows():
        if src == "github":
            ingest(direct, "github", kind, ext, updated, payload, SAMPLE_SOURCES["github"])
    assert pull_rows(synced) == pull_rows(direct) and len(pull_rows(synced)) > 300
    assert review_rows(synced) == review_rows(direct)
    prod = {k: v for k, v in deployment_rows(direct).items() if v[2] == 1}
    assert deployment_rows(synced) == prod
    assert change_rows(synced) == {k: v for k, v in change_rows(direct).items() if k in prod}
    z = zone("UTC")
    window = Window(local_midnight(end - timedelta(days=84), z), local_midnight(end, z))
    metrics = ["pr-pickup-time", "pr-review-time", "pr-cycle-time", "pr-size", "merged-without-review"]
    metrics += ["deployment-frequency", "lead-time-for-changes"]
    for t in sample_teams():
        for m in metrics:
            got = compute(synced, t, m, window, wire.cutoff).to_json()
            assert got == compute(direct, t, m, window, wire.cutoff).to_json(), (t.name, m)
    lead = compute(synced, sample_teams()[0], "lead-time-for-changes", window, wire.cutoff).to_json()
    assert lead["sample_size"] > 10


def test_change_failure_and_restore_from_synced_incident_issues_equal_direct_ingestion(gh):
    for k in range(4):
        at = ts("2026-01-05 09:00") + k * 7 * DAY
        gh.add_pull(PAY, at, merged=at + HOUR, reviews=[(at + 0.5 * HOUR, "hubot", "APPROVED")])
        gh.deploy(PAY, at + 2 * HOUR, [(at + 2 * HOUR, "queued"), (at + 2.2 * HOUR, "success")])
    gh.incident(PAY, "2026-01-05 14:00", "2026-01-05 17:00")
    gh.incident(PAY, "2026-01-19 12:00", "2026-01-20 00:00", labels=("incident", "sev2"))
    gh.incident(PAY, "2026-01-27 08:00")  # open
    gh.incident(PAY, "2026-01-10 08:00", "2026-01-10 09:00", labels=("bug",))  # not an incident
    synced = new_db()
    assert sync(synced, gh).ok
    direct = new_db()
    opts = {"kind": "github", "production_environments": ["production"]}
    for kind, ext, payload in _direct_payloads(gh):
        ingest(direct, "github", kind, ext, None, payload, opts)
    z = zone("UTC")
    window = Window(local_midnight(date(2026, 1, 5), z), local_midnight(date(2026, 2, 2), z))
    t = team(repos=[PAY], services=[])
    for m in (
        "change-failure-rate",
        "time-to-restore",
        "deployment-frequency",
        "lead-time-for-changes",
        "pr-cycle-time",
    ):
        assert compute(synced, t, m, window, NOW).to_json() == compute(direct, t, m, window, NOW).to_json(), m
    assert compute(synced, t, "time-to-restore", window, NOW).to_json()["sample_size"] == 2
    assert compute(synced, t, "change-failure-rate", window, NOW).to_json()["value"] is not None


def _direct_payloads(gh: FakeGitHub) -> list:
    """The fake's data as raw payloads built without HTTP: PRs as REST pieces (the sample's shape),
    so the test also holds the connector's GraphQL nodes to the rows the REST pieces give."""
    out: list = []
    for n, p in gh.pulls[PAY].items():
        ext = f"{PAY}#{n}"
        out += [
            ("pull_reviews", ext, p["reviews"]),
            ("pull_commits", ext, p["commits"]),
            ("pull_timeline", ext, p["timeline"]),
        ]
        out.append(("pull", ext, {**p["pull"], **p["detail"]}))
    deps = sorted(gh.deployments[PAY].values(), key=lambda d: d["created_at"])
    prev = None
    index = {c: i for i, c in enumerate(gh.history[PAY])}
    for d in deps:
        out.append(("deployment", str(d["id"]), {**d, "statuses": list(reversed(gh.statuses[d["id"]]))}))
        if prev is not None:
            commits = [{"sha": c} for c in gh.history[PAY][index[prev] + 1 : index[d["sha"]] + 1]]
            out.append(
                ("compare", str(d["id"]), {"url": f"x/compare/{prev}...{d['sha']}", "commits": commits})
            )
        prev = d["sha"]
    for n, i in gh.issues[PAY].items():
        if "incident" in {x["name"] for x in i["labels"]}:
            out.append(("issue", f"{PAY}#{n}", i))
    return out


def test_overlap_is_at_least_five_minutes():
    assert OVERLAP >= 300
