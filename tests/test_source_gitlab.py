"""The GitLab connector over real HTTP against a loopback fake of the REST API v4.

Every test checks the stored rows exactly: ``expected_*`` recompute them from the fake's own specs
(not from the normaliser), and the policy records the waits instead of sleeping.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
import requests
from builders import assert_not_in_files, new_db, run_sync, team, ts
from fakes.gitlab import FakeGitLab
from fakes.server import Fault

from metrics.catalogue import compute
from metrics.normalise import ingest, rebuild
from metrics.normalise.gitlab import summarise_diffs
from metrics.sources.gitlab import LINK_GRACE, OVERLAP, RECONCILE_EVERY, VOLATILE
from metrics.store import open_db
from metrics.timeutil import Window, iso, local_midnight, zone

TOKEN = "glpat-Zx9_sEcReT-42abcDEF"
P = "acme/mobile"
ENC = "acme%2Fmobile"
BASE = f"/api/v4/projects/{ENC}"
NOW = ts("2026-02-10 00:00")
DAY = 86400.0
START = NOW - 365 * DAY
BOT = "project_41_bot_3f9c2a"


@pytest.fixture
def gl():
    fake = FakeGitLab(TOKEN)
    yield fake
    fake.close()


def source(gl: FakeGitLab, **kw) -> dict:
    return gl.source(**{"projects": [P], **kw})


def sync(db, gl, *, now: float = NOW, token: str = TOKEN, waits: list | None = None, **kw):
    return run_sync(db, source(gl, **kw), "GITLAB_TOKEN", token, now, waits)


# -- what the store must hold, from the fake's specs ---------------------------------------------------
def prs(db) -> dict[int, tuple]:
    return {
        r["number"]: (
            r["state"],
            r["draft"],
            r["created"],
            r["ready"],
            r["first_commit"],
            r["merged"],
            r["closed"],
            r["additions"],
            r["deletions"],
            r["merge_sha"],
            r["author"],
            r["author_bot"],
        )
        for r in db.query("select * from pull_requests where source = 'gitlab' and repo = ?", [P])
    }


def expected_prs(gl: FakeGitLab, *, now: float = NOW) -> dict[int, tuple]:
    out = {}
    for mr in gl.mrs[P].values():
        if mr.updated < now - 365 * DAY:
            continue
        ready = [n.at for n in mr.notes if n.system and "ready" in n.body]
        merged = mr.merged is not None
        out[mr.iid] = (
            "merged" if merged else "closed" if mr.closed is not None else "open",
            int(mr.draft),
            mr.created,
            min(ready) if ready else None,
            min((at for _, at in mr.commits), default=None),
            mr.merged,
            mr.merged if merged else mr.closed,
            sum(a for a, _ in mr.diffs.values()),
            sum(d for _, d in mr.diffs.values()),
            (mr.merge_commit_sha or mr.squash_commit_sha) if merged else None,
            mr.author,
            _bot(mr.author),
        )
    return out


def _bot(username: str) -> int:
    """Project access-token users and ``-bot`` names are bots (GitLab's list objects carry no flag)."""
    return int(username.startswith("project_") or username.endswith("-bot"))


def reviews(db) -> set[tuple]:
    return {
        (r["number"], r["reviewer"], r["state"], r["submitted"], r["reviewer_bot"])
        for r in db.query("select * from reviews where source = 'gitlab'")
    }


def expected_reviews(gl: FakeGitLab, *, now: float = NOW) -> set[tuple]:
    """Per MR and reviewer other than the author: first comment, first approval."""
    out = set()
    for mr in gl.mrs[P].values():
        if mr.updated < now - 365 * DAY:
            continue
        firsts: dict[tuple[str, str], float] = {}
        for n in sorted(mr.notes, key=lambda n: (n.at, n.id)):
            if n.author == mr.author:
                continue
            state = "COMMENTED" if not n.system else "APPROVED" if n.body.startswith("approved") else None
            if state:
                firsts.setdefault((n.author, state), n.at)
        out |= {(mr.iid, who, st, at, _bot(who)) for (who, st), at in firsts.items()}
    return out


def deployments(db) -> dict[str, tuple]:
    return {
        r["id"]: (
            r["service"],
            r["environment"],
            r["production"],
            r["status"],
            r["finished"],
            r["sha"],
            r["run"],
        )
        for r in db.query("select * from deployments where source = 'gitlab'")
    }


def expected_deployments(gl: FakeGitLab, *, now: float = NOW, env: str = "production") -> dict[str, tuple]:
    return {
        str(d.id): (P, d.environment, 1, "success", d.finished, d.sha, str(d.pipeline))
        for d in gl.deployments[P].values()
        if d.environment == env and d.status == "success" and d.finished >= now - 365 * DAY
    }


def changes(db) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in db.query(
        "select * from deployment_changes where source = 'gitlab' order by deployment_id, number"
    ):
        assert r["repo"] == P
        out.setdefault(r["deployment_id"], []).append(r["number"])
    return out


def expected_changes(gl: FakeGitLab, *, now: float = NOW) -> dict[str, list[int]]:
    return {
        did: sorted(i for i in gl.deployments[P][int(did)].mrs if i in gl.mrs[P])
        for did in expected_deployments(gl, now=now)
        if any(i in gl.mrs[P] for i in gl.deployments[P][int(did)].mrs)
    }


def check(db, gl, *, now: float = NOW) -> None:
    assert prs(db) == expected_prs(gl, now=now)
    assert reviews(db) == expected_reviews(gl, now=now)
    assert deployments(db) == expected_deployments(gl, now=now)
    assert changes(db) == expected_changes(gl, now=now)


def raw_snapshot(db) -> list[tuple]:
    return db.execute(
        "select kind, external_id, updated_at, fetched_at, payload from raw order by kind, external_id"
    ).fetchall()


def status(db, stream: str) -> dict:
    row = next(db.query("select * from sync_status where source = 'gitlab' and stream = ?", [stream]))
    return {**row, "state": json.loads(row["cursor"]) if row["cursor"] else {}}


def after(gl: FakeGitLab, n: int, path: str) -> list:
    return [r for r in gl.server.log[n:] if r.path == path]


# -- histories ---------------------------------------------------------------------------------------------
def history(gl: FakeGitLab) -> None:
    """MRs of every shape, and deployments of several environments and outcomes."""
    a = gl.add_mr(P, "2026-01-05 09:00", commits=["2026-01-04 15:00", "2026-01-05 08:00"])
    gl.note(P, a.iid, "2026-01-05 11:00", "bob", "Could this use the cache?")
    gl.note(P, a.iid, "2026-01-05 11:30", "alice", "Done.")  # the author: no review
    gl.note(P, a.iid, "2026-01-05 12:00", "bob", "Thanks")  # a later comment: not a new review
    gl.approve(P, a.iid, "2026-01-05 13:00", "carol")
    gl.merge(P, a.iid, "2026-01-05 14:00")
    d = gl.add_mr(
        P,
        "2026-01-06 09:00",
        draft=True,
        commits=["2026-01-06 08:30"],
        diffs={"a.py": (3, 0), "b.py": (0, 7)},
    )
    gl.ready(P, d.iid, "2026-01-07 10:00")
    gl.approve(P, d.iid, "2026-01-07 12:00", "bob")
    gl.merge(P, d.iid, "2026-01-07 13:00", squash=True)
    b = gl.add_mr(
        P, "2026-01-08 09:00", author=BOT, commits=["2026-01-08 08:59"], diffs={"deps.lock": (40, 38)}
    )
    gl.note(P, b.iid, "2026-01-08 09:05", "bob", "bump ok")
    gl.merge(P, b.iid, "2026-01-08 10:00")
    c = gl.add_mr(P, "2026-01-09 09:00", commits=["2026-01-09 08:00"], closed="2026-01-09 18:00")
    gl.note(P, c.iid, "2026-01-09 10:00", "renovate-bot", "Automated check")
    gl.add_mr(P, "2026-02-01 09:00", commits=["2026-02-01 08:00"])  # open
    gl.add_mr(P, NOW - 400 * DAY, merged=NOW - 399 * DAY)  # before the history window
    gl.add_deployment(P, "2026-01-05 16:00", mrs=[a.iid])
    gl.add_deployment(P, "2026-01-07 15:00", mrs=[d.iid])
    gl.add_deployment(P, "2026-01-07 14:00", mrs=[d.iid], environment="staging")
    gl.add_deployment(P, "2026-01-08 12:00", mrs=[b.iid], status="failed")
    gl.add_deployment(P, "2026-01-09 12:00", mrs=[b.iid])
    gl.add_deployment(P, NOW - 400 * DAY, mrs=[6])  # before the history window


def many(gl: FakeGitLab, n: int, first: str = "2026-01-01 00:00", step_hours: float = 1.0) -> None:
    start = ts(first)
    for k in range(n):
        at = start + k * step_hours * 3600
        gl.add_mr(P, at, commits=[at - 600], merged=at + 1800)


# -- first sync ----------------------------------------------------------------------------------------------
def test_first_sync_stores_exactly_what_gitlab_holds(gl):
    history(gl)
    db = new_db()
    result = sync(db, gl)
    assert result.ok, result.errors
    check(db, gl)
    assert len(prs(db)) == 5 and len(deployments(db)) == 3
    # Hand-checked corners: the draft's ready time, the squash sha, the bot, the "-- x" diff lines.
    assert prs(db)[2][3] == ts("2026-01-07 10:00") and prs(db)[2][7:9] == (3, 7)
    assert prs(db)[2][9] == gl.mrs[P][2].squash_commit_sha
    assert prs(db)[3][11] == 1 and prs(db)[1][4] == ts("2026-01-04 15:00")
    assert (4, "renovate-bot", "COMMENTED", ts("2026-01-09 10:00"), 1) in reviews(db)
    lst = gl.server.requests_to(f"{BASE}/merge_requests")[0]
    assert lst.headers["private-token"] == TOKEN and "authorization" not in lst.headers
    assert {k: lst.arg(k) for k in ("state", "order_by", "sort", "per_page", "page")} == {
        "state": "all",
        "order_by": "updated_at",
        "sort": "asc",
        "per_page": "100",
        "page": "1",
    }
    assert lst.arg("updated_after") == iso(START)
    dep = gl.server.requests_to(f"{BASE}/deployments")[0]
    assert {k: dep.arg(k) for k in ("environment", "status", "order_by", "finished_after")} == {
        "environment": "production",
        "status": "success",
        "order_by": "finished_at",
        "finished_after": iso(START),
    }
    assert dep.arg("updated_after") is None
    notes = gl.server.requests_to(f"{BASE}/merge_requests/1/notes")[0]
    assert (notes.arg("sort"), notes.arg("order_by")) == ("asc", "created_at")
    assert status(db, "merge_requests")["state"]["projects"][P]["cursor"] == iso(gl.mrs[P][5].updated)
    # Diff text (the project's code) is never stored, only line counts.
    diffs = db.execute("select payload from raw where kind = 'merge_request_diffs'").fetchall()
    assert diffs and all("old line" not in d[0] for d in diffs)
    # Volatile mergeability fields are not kept (they flip without updated_at moving).
    stored = json.loads(
        db.execute("select payload from raw where kind = 'merge_request' limit 1").fetchone()[0]
    )
    assert not set(VOLATILE) & set(stored)


def test_many_pages_without_totals_above_the_cap(gl):
    gl.total_cap = 150  # GitLab's 10,000, scaled down: no x-total, x-total-pages or rel="last"
    many(gl, 250)
    db = new_db()
    assert sync(db, gl).ok
    assert prs(db) == expected_prs(gl) and len(prs(db)) == 250
    pages = [r.arg("page") for r in gl.server.requests_to(f"{BASE}/merge_requests")]
    assert pages == ["1", "2", "3"]
    assert False in gl.totals_sent
    probe = requests.get(
        f"{gl.url}{BASE}/merge_requests",
        params={"per_page": 100, "state": "all"},
        headers={"PRIVATE-TOKEN": TOKEN},
    )
    assert "x-total" not in probe.headers and 'rel="last"' not in probe.headers["Link"]
    assert probe.headers["x-next-page"] == "2"


def test_the_link_header_alone_is_followed(gl):
    gl.next_header = False  # a proxy that strips GitLab's custom headers
    many(gl, 230)
    db = new_db()
    assert sync(db, gl).ok
    assert prs(db) == expected_prs(gl) and len(prs(db)) == 230
    assert [r.arg("page") for r in gl.server.requests_to(f"{BASE}/merge_requests")] == ["1", "2", "3"]


def test_old_gitlab_without_diffs_endpoint_uses_changes(gl):
    history(gl)
    gl.no_diffs = True
    db = new_db()
    assert sync(db, gl).ok
    check(db, gl)
    assert gl.server.requests_to(f"{BASE}/merge_requests/2/changes")


def test_mixing_deployment_filters_is_refused_by_the_fake(gl):
    """The fake holds the connector to GitLab's rule, so the passing syncs above mean something."""
    gl.add_project(P)
    url, h = f"{gl.url}{BASE}/deployments", {"PRIVATE-TOKEN": TOKEN}
    bad = [
        {"finished_after": "2026-01-01T00:00:00Z", "order_by": "updated_at", "status": "success"},
        {"finished_after": "2026-01-01T00:00:00Z", "order_by": "finished_at"},
        {"updated_after": "2026-01-01T00:00:00Z", "order_by": "finished_at", "status": "success"},
    ]
    assert [requests.get(url, params=p, headers=h).status_code for p in bad] == [400, 400, 400]
    ok = {"finished_after": "2026-01-01T00:00:00Z", "order_by": "finished_at", "status": "success"}
    assert requests.get(url, params=ok, headers=h).status_code == 200


# -- incremental ---------------------------------------------------------------------------------------------
def test_second_sync_with_no_remote_change_writes_nothing(gl):
    history(gl)
    db = new_db()
    assert sync(db, gl).ok
    before, n = raw_snapshot(db), len(gl.server.log)
    gl.mrs[P][5].merge_status = "checking"  # GitLab rechecks mergeability: no updated_at bump
    gl._changed()
    result = sync(db, gl, now=NOW + 3600)
    assert result.ok and result.changed == 0
    assert raw_snapshot(db) == before
    check(db, gl)
    assert (
        status(db, "merge_requests")["rows_changed"] == 0 and status(db, "deployments")["rows_changed"] == 0
    )
    lists = after(gl, n, f"{BASE}/merge_requests")
    assert [r.arg("updated_after") for r in lists] == [iso(gl.mrs[P][5].updated - OVERLAP)]
    children = [r.path for r in gl.server.log[n:] if "/merge_requests/" in r.path]
    assert children == []  # nothing changed: no child is fetched again


def test_children_are_refetched_when_their_mr_changes(gl):
    history(gl)
    db = new_db()
    assert sync(db, gl).ok
    n = len(gl.server.log)
    gl.note(P, 5, NOW + 600, "dave", "Looks good")
    gl.approve(P, 5, NOW + 900, "dave")
    gl.merge(P, 5, NOW + 1200)
    gl.mrs[P][5].diffs["extra.py"] = (4, 1)
    result = sync(db, gl, now=NOW + DAY)
    assert result.ok, result.errors
    check(db, gl, now=NOW + DAY)
    assert {(5, "dave", "COMMENTED", NOW + 600, 0), (5, "dave", "APPROVED", NOW + 900, 0)} <= reviews(db)
    fetched = sorted({r.path for r in gl.server.log[n:] if "/merge_requests/" in r.path})
    assert fetched == sorted(
        f"{BASE}/merge_requests/5/{c}" for c in ("approvals", "commits", "diffs", "notes")
    )


def test_an_mr_edited_mid_walk_is_not_lost(gl):
    """Offset pages sorted by updated_at shift when an MR is edited during the walk: the next run's
    cursor is pulled back so the MR pushed onto an earlier page is picked up."""
    many(gl, 250)
    db = new_db()
    assert sync(db, gl).ok
    for iid in range(1, 251):  # every MR changes after the first sync
        gl.edit(P, iid, NOW + iid * 60, title=f"Renamed {iid}")
    done = []

    def edit_once(req):
        if req.arg("page") == "2" and not done:
            done.append(1)
            gl.edit(P, 50, NOW + DAY, title="Edited during the walk")  # leaves page 1: 101 shifts back

    gl.on_list = edit_once
    first = sync(db, gl, now=NOW + DAY)
    assert first.ok, first.errors
    titles = {r["number"]: r["title"] for r in db.query("select number, title from pull_requests")}
    missed = [i for i in range(1, 251) if not titles[i].startswith(("Renamed", "Edited"))]
    assert missed == [101]  # the item the shift skipped
    gl.on_list = None
    second = sync(db, gl, now=NOW + DAY + 3600)
    assert second.ok
    titles = {r["number"]: r["title"] for r in db.query("select number, title from pull_requests")}
    assert titles[101] == "Renamed 101" and titles[50] == "Edited during the walk"
    assert prs(db) == expected_prs(gl, now=NOW + DAY)


def test_deployment_mrs_linked_late_are_asked_again(gl):
    history(gl)
    late = gl.add_deployment(P, NOW - 3 * 3600, mrs=[])  # GitLab has not linked its MRs yet
    db = new_db()
    assert sync(db, gl).ok
    pending = status(db, "deployments")["state"]["projects"][P]["production"]["pending"]
    assert pending == {str(late.id): "2026-02-09T21:00:00.000Z"}  # its finished_at, as GitLab wrote it
    assert str(late.id) not in changes(db)
    gl.link(P, late.id, [5])
    gl.merge(P, 5, NOW - 4 * 3600)
    n = len(gl.server.log)
    assert sync(db, gl, now=NOW + 600).ok
    assert len(after(gl, n, f"{BASE}/deployments/{late.id}/merge_requests")) == 1
    check(db, gl, now=NOW + 600)
    assert changes(db)[str(late.id)] == [5]
    assert "pending" not in status(db, "deployments")["state"]["projects"][P]["production"]
    # A deployment that really shipped nothing stops being asked once the grace has passed.
    empty = gl.add_deployment(P, NOW + 700, mrs=[])
    assert sync(db, gl, now=NOW + 800).ok
    assert str(empty.id) in status(db, "deployments")["state"]["projects"][P]["production"]["pending"]
    n = len(gl.server.log)
    assert sync(db, gl, now=NOW + 800 + LINK_GRACE).ok
    assert len(after(gl, n, f"{BASE}/deployments/{empty.id}/merge_requests")) == 1
    assert "pending" not in status(db, "deployments")["state"]["projects"][P]["production"]


def test_deletions_are_reconciled(gl):
    history(gl)
    db = new_db()
    assert sync(db, gl).ok
    gl.delete_mr(P, 4)
    gone = next(d for d in gl.deployments[P].values() if d.finished == ts("2026-01-09 12:00"))
    gl.delete_deployment(P, gone.id)
    later = NOW + 2 * DAY  # before RECONCILE_EVERY: deletions not looked for yet
    assert sync(db, gl, now=later).ok
    assert 4 in prs(db) and str(gone.id) in deployments(db)
    later = NOW + RECONCILE_EVERY + DAY
    result = sync(db, gl, now=later)
    assert result.ok, result.errors
    check(db, gl, now=later)
    assert 4 not in prs(db) and str(gone.id) not in deployments(db)
    assert not db.execute("select 1 from raw where external_id like ?", [f"{P}!4"]).fetchall()
    assert not db.execute("select 1 from reviews where number = 4").fetchall()
    assert status(db, "merge_requests")["state"]["projects"][P]["reconciled"] == iso(later)


# -- faults: the stored data is exactly right after each -------------------------------------------------------
def test_429_with_retry_after_is_waited_out(gl):
    history(gl)
    gl.arm(f"{BASE}/merge_requests", 0, Fault(429, {"Retry-After": "7"}))
    gl.arm(f"{BASE}/deployments", 0, Fault(429, {"Retry-After": "3"}))
    db, waits = new_db(), []
    assert sync(db, gl, waits=waits).ok
    assert waits == [7.0, 3.0]
    check(db, gl)


def test_429_without_any_header_backs_off(gl):
    history(gl)
    gl.arm(f"{BASE}/merge_requests/1/notes", 0, Fault(429), Fault(429))
    db, waits = new_db(), []
    assert sync(db, gl, waits=waits).ok
    assert len(waits) == 2 and all(0 < w <= 0.02 for w in waits)  # jittered backoff, capped
    check(db, gl)


def test_a_burst_of_5xx_is_absorbed(gl):
    many(gl, 150)
    gl.arm(f"{BASE}/merge_requests", 1, Fault(500), Fault(502), Fault(503), Fault(504))
    db = new_db()
    assert sync(db, gl).ok
    assert prs(db) == expected_prs(gl) and len(prs(db)) == 150


def test_a_connection_dropped_mid_page_is_retried(gl):
    many(gl, 150)
    gl.arm(f"{BASE}/merge_requests", 1, Fault(drop=True))
    gl.arm(f"{BASE}/merge_requests/7/commits", 0, Fault(drop=True))
    db = new_db()
    assert sync(db, gl).ok
    assert prs(db) == expected_prs(gl) and len(prs(db)) == 150
    assert len(gl.server.requests_to(f"{BASE}/merge_requests")) == 3  # page 2 twice


def test_malformed_json_is_retried(gl):
    history(gl)
    gl.arm(f"{BASE}/merge_requests", 0, Fault(body=b'[{"iid": 1, "title": "'))
    gl.arm(f"{BASE}/deployments/{min(gl.deployments[P])}/merge_requests", 0, Fault(body=b"[{"))
    db = new_db()
    assert sync(db, gl).ok
    check(db, gl)


def test_an_expired_token_fails_the_streams_and_keeps_stored_data(gl):
    history(gl)
    db = new_db()
    assert sync(db, gl).ok
    before, success = raw_snapshot(db), status(db, "merge_requests")["last_success"]
    gl.note(P, 5, NOW + 60, "bob", "ping")
    result = sync(db, gl, now=NOW + DAY, token="glpat-expired-0000")
    assert not result.ok and len(result.errors) == 2
    assert all("authentication failed (401)" in e and "glpat" not in e for e in result.errors)
    assert raw_snapshot(db) == before
    st = status(db, "merge_requests")
    assert st["last_success"] == success and "401" in st["last_error"]


def test_the_token_is_never_stored_nor_shown(gl, tmp_path):
    history(gl)
    db = open_db(tmp_path / "x.db")
    assert sync(db, gl).ok
    gl.token = "rotated"
    bad = sync(db, gl, now=NOW + DAY)
    gl.token = TOKEN
    gl.outage = lambda r: True
    down = sync(db, gl, now=NOW + 2 * DAY)
    errors = bad.errors + down.errors
    assert len(errors) == 4 and all(TOKEN not in e for e in errors)
    db.conn.close()
    assert_not_in_files(tmp_path, TOKEN)


def test_one_failing_project_does_not_stop_the_others(gl):
    history(gl)
    gl.add_mr("acme/web", "2026-01-10 09:00", merged="2026-01-10 12:00")
    db = new_db()
    result = sync(db, gl, projects=["acme/missing", P, "acme/web"])
    assert not result.ok and all("acme/missing" in e and "404" in e for e in result.errors)
    assert prs(db) == expected_prs(gl)
    assert db.execute("select count(*) from pull_requests where repo = 'acme/web'").fetchone()[0] == 1


# -- resumption -------------------------------------------------------------------------------------------------
def test_an_interrupted_sync_resumes_with_nothing_lost_or_duplicated(gl):
    many(gl, 250)
    gl.outage = lambda r: r.path == f"{BASE}/merge_requests" and r.arg("page") == "3"
    db = new_db()
    first = sync(db, gl)
    assert not first.ok and "HTTP 500" in first.errors[0]
    assert len(prs(db)) == 200
    cursor = status(db, "merge_requests")["state"]["projects"][P]["cursor"]
    assert cursor == iso(gl.mrs[P][200].updated)
    gl.outage = None
    n = len(gl.server.log)
    resumed = sync(db, gl)
    assert resumed.ok, resumed.errors
    assert [r.arg("updated_after") for r in after(gl, n, f"{BASE}/merge_requests")] == [
        iso(gl.mrs[P][200].updated - OVERLAP)
    ]
    assert prs(db) == expected_prs(gl) and len(prs(db)) == 250
    refetched = {r.path.split("/")[-2] for r in gl.server.log[n:] if r.path.endswith("/commits")}
    assert refetched == {str(i) for i in range(201, 251)}  # only the unstored MRs' children
    assert db.execute("select count(*) from raw where kind = 'merge_request'").fetchone()[0] == 250


def test_an_mr_whose_children_failed_is_fetched_again(gl):
    history(gl)
    gl.outage = lambda r: r.path == f"{BASE}/merge_requests/2/notes"
    db = new_db()
    assert not sync(db, gl).ok
    assert 2 not in prs(db) and 1 in prs(db) and 3 not in prs(db)  # stopped at MR 2, parent unstored
    gl.outage = None
    assert sync(db, gl).ok
    check(db, gl)


# -- metrics from synced data equal metrics from the same payloads ingested directly ------------------------------
def _window() -> Window:
    z = zone("UTC")
    return Window(local_midnight(date(2026, 1, 5), z), local_midnight(date(2026, 2, 2), z))


METRICS = (
    "pr-pickup-time",
    "pr-review-time",
    "pr-cycle-time",
    "pr-size",
    "merged-without-review",
    "deployment-frequency",
    "lead-time-for-changes",
)


def _metrics(db) -> dict:
    t = team(repos=[], gitlab_projects=[P], services=[])
    return {m: compute(db, t, m, _window(), NOW + 2 * DAY).to_json() for m in METRICS}


def _direct(gl: FakeGitLab, now: float):
    """The fake's payloads, ingested without HTTP, as GitLab documents them."""
    db = new_db()
    opts = {"kind": "gitlab", "production_environments": ["production"]}
    for mr in gl.mrs[P].values():
        if mr.updated < now - 365 * DAY:
            continue
        ext = f"{P}!{mr.iid}"
        notes = [mr.note_payload(n) for n in sorted(mr.notes, key=lambda n: (n.at, n.id))]
        ingest(db, "gitlab", "merge_request_commits", ext, None, mr.commit_payloads(), opts)
        ingest(db, "gitlab", "merge_request_notes", ext, None, notes, opts)
        ingest(db, "gitlab", "merge_request_approvals", ext, None, mr.approvals_payload(), opts)
        ingest(db, "gitlab", "merge_request_diffs", ext, None, summarise_diffs(mr.diff_payloads()), opts)
        payload = {k: v for k, v in mr.payload().items() if k not in VOLATILE}
        ingest(db, "gitlab", "merge_request", ext, payload["updated_at"], payload, opts)
    for d in gl.deployments[P].values():
        if d.environment == "production" and d.status == "success" and d.finished >= now - 365 * DAY:
            ext = f"{P}/deployments/{d.id}"
            shipped = [gl.mrs[P][i].payload() for i in d.mrs if i in gl.mrs[P]]
            ingest(db, "gitlab", "deployment_merge_requests", ext, None, shipped, opts)
            ingest(db, "gitlab", "deployment", ext, None, d.payload(), opts)
    return db


def test_metrics_from_synced_data_equal_those_from_direct_ingestion(gl):
    history(gl)
    for k in range(6):  # a few more merged and deployed MRs for the percentiles
        at = ts("2026-01-12 09:00") + k * 2 * DAY
        mr = gl.add_mr(P, at, commits=[at - 7200], diffs={f"f{k}.py": (5 * k + 1, k)})
        gl.note(P, mr.iid, at + 3600 * (k + 1), "bob", "a question")
        gl.approve(P, mr.iid, at + 3600 * (k + 2), "carol")
        gl.merge(P, mr.iid, at + 3600 * (k + 3))
        gl.add_deployment(P, at + 3600 * (k + 5), mrs=[mr.iid])
    synced = new_db()
    assert sync(synced, gl).ok
    got = _metrics(synced)
    assert got == _metrics(_direct(gl, NOW))
    assert got["deployment-frequency"]["sample_size"] == 9  # 3 of the history + 6
    assert got["lead-time-for-changes"]["sample_size"] == 8  # the bot's MR is left out
    assert got["pr-pickup-time"]["sample_size"] > 0 and got["pr-size"]["sample_size"] > 0
    # A change after the first sync: a second sync brings it in, as direct ingestion does.
    gl.note(P, 5, NOW + 600, "bob", "late look")
    gl.merge(P, 5, NOW + 1200)
    gl.add_deployment(P, NOW + 1800, mrs=[5])
    assert sync(synced, gl, now=NOW + DAY).ok
    assert _metrics(synced) == _metrics(_direct(gl, NOW + DAY))


# -- pipelines as the deployment signal ----------------------------------------------------------------------
def test_successful_pipelines_on_the_deploy_branch_are_the_deployments(gl):
    old = gl.add_mr(P, START - 20 * DAY, merged=START - 19 * DAY)  # shipped before the history window
    gl.add_pipeline(P, START - 18 * DAY)  # the base of the first compare
    a2 = gl.add_mr(P, "2026-01-05 09:00", merged="2026-01-06 10:00")
    a3 = gl.add_mr(P, "2026-01-05 11:00", merged="2026-01-07 10:00", squash=True)
    first = gl.add_pipeline(P, "2026-01-07 12:00")
    gl.add_pipeline(P, "2026-01-07 13:00", status="failed")  # not a deployment
    gl.add_pipeline(P, "2026-01-07 14:00", ref="develop")  # another branch
    b4 = gl.add_mr(P, "2026-01-08 09:00", merged="2026-01-09 10:00")
    second = gl.add_pipeline(P, "2026-01-09 12:00")
    db = new_db()
    result = sync(db, gl, deployment_signal="pipelines")
    assert result.ok, result.errors
    assert {r[0] for r in db.execute("select stream from sync_status where source = 'gitlab'")} == {
        "merge_requests",
        "pipelines",
    }
    rows = deployments(db)
    assert set(rows) == {f"pipeline-{first['id']}", f"pipeline-{second['id']}"}
    assert rows[f"pipeline-{first['id']}"][:6] == (
        P,
        "production",
        1,
        "success",
        ts("2026-01-07 12:00"),
        first["sha"],
    )
    assert changes(db) == {
        f"pipeline-{first['id']}": [a2.iid, a3.iid],
        f"pipeline-{second['id']}": [b4.iid],
    }
    assert old.iid not in sum(changes(db).values(), [])
    # Nothing changed remotely: nothing written, no pipeline or compare fetched again.
    n = len(gl.server.log)
    again = sync(db, gl, now=NOW + DAY, deployment_signal="pipelines")
    assert again.ok and status(db, "pipelines")["rows_changed"] == 0
    assert not [
        r for r in gl.server.log[n:] if "/repository/compare" in r.path or r.path.count("/pipelines/")
    ]
    # A new merge and pipeline: exactly it is added.
    c5 = gl.add_mr(P, "2026-02-10 09:00", merged="2026-02-10 10:00")
    third = gl.add_pipeline(P, "2026-02-10 12:00")
    assert sync(db, gl, now=NOW + 2 * DAY, deployment_signal="pipelines").ok
    assert changes(db)[f"pipeline-{third['id']}"] == [c5.iid]
    assert len(deployments(db)) == 3
    # Rows rebuilt from the raw payloads alone are the same rows.
    before = (deployments(db), changes(db))
    rebuild(db, {"gitlab": source(gl, deployment_signal="pipelines")})
    assert (deployments(db), changes(db)) == before


def test_an_unknown_deployment_signal_is_a_clear_error(gl):
    result = sync(new_db(), gl, deployment_signal="tags")
    assert not result.ok and "deployment_signal must be 'deployments' or 'pipelines'" in result.errors[0]
