"""A failed sync that later syncs repair (issue 10, item 3).

A stream that fails half-way leaves part of its data unstored; the next sync must bring the store to
exactly what a clean database holds, rows derived from two streams included: ``deployment_changes``
joins a deployment's compare (deployments stream) with the PRs' merge commits (pulls stream), and
``lead-time-for-changes`` reads that join. Each test syncs once with a fault that stops the pulls
stream part-way, then clean, and compares with a database that only ever synced clean, over the real
loopback fakes (docs/sources.md, "A failed sync").
"""

from __future__ import annotations

import json
import threading
from datetime import date

import pytest
import sqlite_utils
from builders import new_db, run_sync, team, ts
from fakes.github import FakeGitHub
from fakes.gitlab import FakeGitLab
from fakes.server import FakeServer, Fault, Reply

from metrics.catalogue import compute
from metrics.sources.http import Policy
from metrics.sources.sync import sync_source
from metrics.store.schema import MIGRATIONS
from metrics.timeutil import Window, local_midnight, parse_instant, zone

GH_TOKEN = "ghp_R3pairT0kenValue0123456789abcdefXYZ"
PAY = "acme/pay"
NOW = ts("2026-02-10 00:00")
DAY, HOUR = 86400.0, 3600.0
MANY = 12  # more faults than any retry policy tries: the fault outlasts the sync


# -- a history: merged PRs, a production deployment after every fourth ------------------------------
def github_history(gh: FakeGitHub) -> None:
    """130 PRs over 80 days (three GraphQL batches), each merged after a review; a production
    deployment after every fourth merge, so most deployments ship several PRs."""
    start = NOW - 80 * DAY
    for k in range(130):
        at = start + k * 0.6 * DAY
        n = gh.add_pull(PAY, at, reviews=[(at + HOUR, "hubot", "APPROVED")])
        gh.merge(PAY, n, at + (3 + k % 9) * HOUR)
        if k % 4 == 3:
            t = at + 20 * HOUR
            gh.deploy(PAY, t, [(t, "queued"), (t + 600, "success")])


def gh_sync(db, gh: FakeGitHub, policy: Policy | None = None, **kw):
    """Sync ``PAY`` from ``gh`` (``kw`` adds source keys), with no real sleeps unless ``policy``."""
    source = gh.source(repos=[PAY], **kw)
    if policy is None:
        return run_sync(db, source, "GITHUB_TOKEN", GH_TOKEN, NOW)
    return sync_source(db, source, env={"GITHUB_TOKEN": GH_TOKEN}, policy=policy, now=NOW)


def changes(db, source: str = "github") -> set[tuple]:
    return {
        tuple(r)
        for r in db.execute(
            "select deployment_id, repo, number from deployment_changes where source = ?", [source]
        )
    }


def lead_time(db, who=None) -> tuple:
    """``lead-time-for-changes`` through the catalogue, for the repo's team: (p50, p85, n)."""
    z = zone("UTC")
    window = Window(local_midnight(date(2025, 11, 1), z), local_midnight(date(2026, 2, 10), z))
    who = who or team(repos=[PAY], services=[])
    got = compute(db, who, "lead-time-for-changes", window, NOW).to_json()
    value = got["value"] or {}
    return value.get("p50"), value.get("p85"), got["sample_size"]


def synced_clean(sync, fake, source: str = "github", who=None) -> tuple[set, tuple]:
    """What a database that only ever synced clean from ``fake`` holds: deployment changes and lead time."""
    db = new_db()
    result = sync(db, fake)
    assert result.ok, result.errors
    return changes(db, source), lead_time(db, who)


@pytest.fixture(scope="module")
def clean_github():
    gh = FakeGitHub(GH_TOKEN)
    try:
        github_history(gh)
        yield synced_clean(gh_sync, gh)
    finally:
        gh.close()


def clear_faults(gh) -> None:
    with gh.server.lock:
        gh.server.faults.clear()
        gh.server.armed.clear()


# (fault kind, path, faults to queue after the first answer) - each stops the pulls stream part-way.
GRAPHQL_ERROR = b'{"data": null, "errors": [{"type": "SERVICE_UNAVAILABLE", "message": "try later"}]}'
FAULTS = {
    "429 past the wait limit": ("/graphql", [Fault(429, {"Retry-After": "86400"})]),
    "5xx until retries run out": ("/graphql", [Fault(500)] * MANY),
    "GraphQL top-level error": ("/graphql", [Fault(200, {}, GRAPHQL_ERROR)]),
    "connection closed mid-body": ("/graphql", [Fault(drop=True)] * MANY),
    "malformed JSON": ("/graphql", [Fault(body=b'{"data": {"repository": {"p12": {"numb')] * MANY),
    "list page 5xx": (f"/repos/{PAY}/pulls", [Fault(502)] * MANY),
}


@pytest.mark.parametrize("kind", [*FAULTS, "timeout"])
def test_a_sync_the_pulls_stream_failed_is_repaired_by_the_next(kind, clean_github):
    expected_changes, expected_lead = clean_github
    gh = FakeGitHub(GH_TOKEN)
    try:
        github_history(gh)
        db = new_db()
        policy = None
        if kind == "timeout":
            # GraphQL answers after the first take longer than the deadline: each try is given up,
            # smaller batches too, down to one PR.
            slow = slow_after_first(gh)
            policy = Policy(attempts=2, backoff=0.001, deadline=0.1, sleep=[].append)
        else:
            path, faults = FAULTS[kind]
            gh.arm(path, 1, *faults)
        failed = gh_sync(db, gh, policy)
        assert not failed.ok and failed.errors[0].startswith("pulls:"), failed.errors
        if kind == "timeout":
            slow.set()
        clear_faults(gh)
        broken = changes(db)
        assert broken < expected_changes  # the fault left PRs unstored, so links missing
        repaired = gh_sync(db, gh)
        assert repaired.ok, repaired.errors
        assert changes(db) == expected_changes
        assert lead_time(db) == expected_lead
        assert expected_lead[2] > 60
    finally:
        gh.close()


def slow_after_first(gh: FakeGitHub) -> threading.Event:
    """GraphQL answers the first query, then none in time (until the returned event is set)."""
    answer, answered, fixed = gh.server.routes[0][2], [], threading.Event()

    def route(req):
        answered.append(req)
        return answer(req) if fixed.is_set() or len(answered) == 1 else Reply(delay=0.3)

    gh.server.route("POST", "/graphql", route)
    return fixed


# -- GitLab: pipelines as deployments join their compares with the merge requests -------------------------
GL_TOKEN = "glpat-R3pair_sEcReT-42abcDEF"
MOBILE = "acme/mobile"
MR_LIST = "/api/v4/projects/acme%2Fmobile/merge_requests"
GITLAB_TEAM = team(repos=[], gitlab_projects=[MOBILE], services=[])


def gitlab_history(gl: FakeGitLab) -> None:
    """130 merged MRs over 80 days (two list pages), a successful pipeline on main after every fourth."""
    start = NOW - 80 * DAY
    gl.add_pipeline(MOBILE, start - DAY)  # the first compare's base
    for k in range(130):
        at = start + k * 0.6 * DAY
        gl.add_mr(MOBILE, at, commits=[at - HOUR], merged=at + (3 + k % 9) * HOUR)
        if k % 4 == 3:
            gl.add_pipeline(MOBILE, at + 20 * HOUR)


def gl_sync(db, gl: FakeGitLab):
    source = gl.source(projects=[MOBILE], deployment_signal="pipelines")
    return run_sync(db, source, "GITLAB_TOKEN", GL_TOKEN, NOW)


@pytest.fixture(scope="module")
def clean_gitlab():
    gl = FakeGitLab(GL_TOKEN)
    try:
        gitlab_history(gl)
        yield synced_clean(gl_sync, gl, "gitlab", GITLAB_TEAM)
    finally:
        gl.close()


@pytest.mark.parametrize(
    "faults",
    [
        [Fault(429, {"Retry-After": "86400"})],
        [Fault(500)] * MANY,
        [Fault(drop=True)] * MANY,
    ],
    ids=["429 past the wait limit", "5xx until retries run out", "connection closed mid-body"],
)
def test_a_sync_the_merge_requests_stream_failed_is_repaired_by_the_next(faults, clean_gitlab):
    """The MR listing fails on its second page: the pipelines stream still stores every pipeline and
    its compare, linked to the MRs of the first page only; the next sync stores the rest, which link
    themselves to the compares already stored."""
    expected_changes, expected_lead = clean_gitlab
    gl = FakeGitLab(GL_TOKEN)
    try:
        gitlab_history(gl)
        gl.arm(MR_LIST, 1, *faults)
        db = new_db()
        failed = gl_sync(db, gl)
        assert not failed.ok and failed.errors[0].startswith("merge_requests:"), failed.errors
        clear_faults(gl)
        assert changes(db, "gitlab") < expected_changes
        repaired = gl_sync(db, gl)
        assert repaired.ok, repaired.errors
        assert changes(db, "gitlab") == expected_changes
        assert lead_time(db, GITLAB_TEAM) == expected_lead
        assert expected_lead[2] > 60
    finally:
        gl.close()


# -- the pipelines signal: a page part-stored, its compare base not checkpointed ----------------------
def fail_after(marker: str, answered: int):
    """An outage on paths holding ``marker`` from its ``answered + 1``-th request on: the pipelines
    stream stops part-way through its (single) page, after storing ``answered`` pipelines or so."""
    count = {"n": 0}

    def outage(req) -> bool:
        if marker not in req.path:
            return False
        count["n"] += 1
        return count["n"] > answered

    return outage


@pytest.mark.parametrize("before_window", [False, True], ids=["base in the window", "base before it"])
@pytest.mark.parametrize(
    "marker", ["/repository/compare", "/pipelines/"], ids=["compare 500", "pipelines/<id> 500"]
)
def test_a_sync_the_pipelines_stream_failed_mid_page_is_repaired_by_the_next(marker, before_window):
    """The stream stores each pipeline as it goes but saves the previous one's sha (the next compare's
    base) only with the page's cursor; the next sync re-lists the page and skips the stored ones, so
    the base must come from them, not from the state the failed sync saved: else the next new
    pipeline has no compare (its changes unlinked) or one from the pipeline before the window (it
    claims the changes earlier pipelines shipped)."""
    gl = FakeGitLab(GL_TOKEN)
    try:
        if before_window:
            gl.add_pipeline(MOBILE, NOW - 400 * DAY)  # before the 365-day history: the first base
        gitlab_history(gl)
        expected_changes, expected_lead = synced_clean(gl_sync, gl, "gitlab", GITLAB_TEAM)
        assert len(expected_changes) > 100
        gl.outage = fail_after(marker, 10)
        db = new_db()
        failed = gl_sync(db, gl)
        assert [e.split(":")[0] for e in failed.errors] == ["pipelines"], failed.errors
        stored = db.execute("select count(*) from raw where kind = 'pipeline'").fetchone()[0]
        assert 5 < stored < 30  # part of the page stored, its cursor not
        gl.outage = None
        repaired = gl_sync(db, gl)
        assert repaired.ok, repaired.errors
        assert changes(db, "gitlab") == expected_changes
        assert lead_time(db, GITLAB_TEAM) == expected_lead
    finally:
        gl.close()


# -- a database a failed sync broke before this fix is repaired when it is opened ---------------------
def test_the_migration_links_what_stored_compares_hold_and_a_failed_sync_left_unlinked():
    """Links missing from a database synced before compares kept their commits (GitHub compares,
    GitLab pipeline compares) are made by the migration that adds ``deployment_commits``."""
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="m007_deployment_commits")
    for source, did, repo in (("github", "77", PAY), ("gitlab", "pipeline-9", MOBILE)):
        db["deployments"].insert({"source": source, "id": did, "service": repo, "status": "success"})
        for number, sha in ((1, "a" * 40), (2, "b" * 40), (3, "c" * 40)):
            db["pull_requests"].insert({"source": source, "repo": repo, "number": number, "merge_sha": sha})
        db["deployment_changes"].insert({"source": source, "deployment_id": did, "repo": repo, "number": 1})
    github_compare = {"url": "x/compare/0...b", "commits": [{"sha": "a" * 40}, {"sha": "b" * 40}]}
    gitlab_compare = {"from": "0", "to": "b", "commits": [{"id": "a" * 40}, {"id": "b" * 40}]}
    db["raw"].insert_all(
        [
            {
                "source": "github",
                "kind": "compare",
                "external_id": "77",
                "payload": json.dumps(github_compare),
            },
            {
                "source": "gitlab",
                "kind": "pipeline_compare",
                "external_id": f"{MOBILE}/pipelines/9",
                "payload": json.dumps(gitlab_compare),
            },
        ]
    )
    MIGRATIONS.apply(db)
    assert changes(db, "github") == {("77", PAY, 1), ("77", PAY, 2)}
    assert changes(db, "gitlab") == {("pipeline-9", MOBILE, 1), ("pipeline-9", MOBILE, 2)}
    assert db.execute("select count(*) from deployment_commits").fetchone()[0] == 4


# -- the deployments stream's own derived part: the compares -------------------------------------------
@pytest.mark.parametrize("signal", ["deployments", "releases"])
def test_deployments_stored_whose_compares_failed_are_linked_by_the_next_sync(signal):
    """The compares run after the deployments are stored; when they fail, the stored deployments are
    no longer "changed" on the next sync, which must still make their compares."""
    gh = FakeGitHub(GH_TOKEN)
    try:
        github_history(gh)
        if signal == "releases":
            for k, dep in enumerate(sorted(gh.deployments[PAY].values(), key=lambda d: d["id"])):
                gh.release(PAY, f"v1.{k}", parse_instant(dep["created_at"]) + 600, target=dep["sha"])
        expected_changes, expected_lead = synced_clean(
            lambda db, gh: gh_sync(db, gh, deployment_signal=signal), gh
        )
        assert len(expected_changes) > 100
        gh.outage = lambda req: "/compare/" in req.path
        db = new_db()
        failed = gh_sync(db, gh, deployment_signal=signal)
        assert [e.split(":")[0] for e in failed.errors] == ["deployments"], failed.errors
        assert changes(db) == set()
        gh.outage = None
        repaired = gh_sync(db, gh, deployment_signal=signal)
        assert repaired.ok, repaired.errors
        assert changes(db) == expected_changes
        assert lead_time(db) == expected_lead
    finally:
        gh.close()


# -- a walk saved under another configured url --------------------------------------------------------
def test_a_walk_saved_under_a_url_whose_origin_changed_starts_again_from_the_top(clean_github):
    """The pulls walk saves its next link; the source then moves (another host, port or scheme) and
    the configured url with it. The saved link now names another origin, which the token is never
    sent to: the walk starts again from the first page, instead of failing on every sync."""
    expected_changes, expected_lead = clean_github
    gh = FakeGitHub(GH_TOKEN)
    first, moved = gh.server, FakeServer()
    try:
        github_history(gh)
        listing = f"/repos/{PAY}/pulls"
        gh.outage = lambda req: req.path == listing and req.arg("page") == "2"
        db = new_db()
        failed = gh_sync(db, gh)
        assert not failed.ok and failed.errors[0].startswith("pulls:"), failed.errors
        walk = json.loads(db.execute("select cursor from sync_status where stream = 'pulls'").fetchone()[0])[
            "repos"
        ][PAY]["walk"]
        assert walk["next"].startswith(gh.url + listing)
        gh.outage = None
        moved.routes = first.routes  # the same API, now at another origin
        gh.server, asked_before = moved, len(first.log)
        repaired = gh_sync(db, gh)
        assert repaired.ok, repaired.errors
        assert [r.arg("page", "1") for r in moved.log if r.path == listing] == ["1", "2"]
        assert len(first.log) == asked_before  # nothing, the token least of all, went to the old origin
        assert changes(db) == expected_changes and lead_time(db) == expected_lead
    finally:
        first.close()
        moved.close()
