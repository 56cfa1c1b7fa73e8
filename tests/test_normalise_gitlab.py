"""The GitLab normaliser on hand-written payloads (shaped as GitLab's API documentation shows them),
with every expected row computed by hand: reviews derived from notes and approvals, the ready time,
diff line counts, bots, children arriving before their MR, and a rebuild from raw."""

from __future__ import annotations

import json

import pytest
from builders import new_db, ts

from metrics.normalise import gitlab as gl
from metrics.normalise import ingest, rebuild

SRC, P = "gitlab", "acme/mobile"
OPTS = {"kind": "gitlab", "production_environments": ["Production"]}


def u(username: str, uid: int, **kw) -> dict:
    return {"id": uid, "username": username, "name": username.title(), "state": "active", **kw}


ALICE, BOB, CAROL = u("alice", 1), u("bob", 2), u("carol", 3)


def note(nid: int, at: str, author: dict, body: str, system: bool = False) -> dict:
    return {"id": nid, "body": body, "author": author, "created_at": at, "system": system, "noteable_iid": 7}


MR = {
    "id": 84,
    "iid": 7,
    "project_id": 3,
    "title": "Draft: PAY-12 cache rates",
    "description": "See https://acme.pagerduty.com/incidents/Q1ABC2DEF",
    "state": "merged",
    "created_at": "2026-01-05T09:00:00.000Z",
    "updated_at": "2026-01-06T15:00:00.000Z",
    "merged_at": "2026-01-06T14:00:00.000Z",
    "closed_at": None,
    "target_branch": "main",
    "source_branch": "feature/pay-12",
    "author": ALICE,
    "draft": False,
    "work_in_progress": False,
    "labels": ["backend"],
    "sha": "a" * 40,
    "merge_commit_sha": None,
    "squash_commit_sha": "s" * 40,
    "web_url": "https://gitlab.example.com/acme/mobile/-/merge_requests/7",
}
NOTES = [
    note(10, "2026-01-05T09:00:00.000Z", ALICE, "marked this merge request as **draft**", True),
    note(11, "2026-01-05T12:00:00.000+01:00", BOB, "Early thought"),  # 11:00 UTC, before ready
    note(12, "2026-01-05T16:00:00.000Z", ALICE, "marked this merge request as **ready**", True),
    note(13, "2026-01-05T17:00:00.000Z", ALICE, "Thanks!"),  # the author: never a review
    note(14, "2026-01-05T18:00:00.000Z", BOB, "Another comment"),  # not bob's first
    note(15, "2026-01-06T10:00:00.000Z", CAROL, "approved this merge request", True),
    note(16, "2026-01-06T11:00:00.000Z", BOB, "approved this merge request", True),
    note(17, "2026-01-06T11:30:00.000Z", u("renovate-bot", 9), "Rebased"),
    note(18, "2026-01-06T12:00:00.000Z", CAROL, "added 1 commit", True),  # other system note: nothing
]
APPROVALS = {
    "iid": 7,
    "approved": True,
    "approved_by": [
        {"user": CAROL, "approved_at": "2026-01-06T10:00:00.000Z"},
        {"user": BOB, "approved_at": "2026-01-06T11:00:00.000Z"},
        # Approved without a note in the list (e.g. the note was deleted): counted from approved_at.
        {"user": u("dave", 4), "approved_at": "2026-01-06T13:00:00.000Z"},
        {"user": u("erin", 5)},  # older GitLab: no approved_at -> no timed review
    ],
}
COMMITS = [
    {"id": "c2", "authored_date": "2026-01-05T10:00:00.000+02:00", "committed_date": "2026-01-06T09:00:00Z"},
    {"id": "c1", "authored_date": "2026-01-04T23:30:00.000-01:00", "committed_date": "2026-01-06T09:00:00Z"},
]
DIFFS = [
    {"old_path": "a.py", "new_path": "a.py", "diff": "@@ -1,3 +1,3 @@\n ctx\n-- old\n+++ new\n+x\n"},
    {"old_path": "b.py", "new_path": "c.py", "renamed_file": True, "diff": ""},
    {"old_path": "big.json", "new_path": "big.json", "too_large": True, "diff": ""},
]


def load(db, mr: dict = MR, *, order: str = "children-first") -> None:
    ext = gl.mr_id(P, mr["iid"])
    children = [
        ("merge_request_commits", COMMITS),
        ("merge_request_notes", NOTES),
        ("merge_request_approvals", APPROVALS),
        ("merge_request_diffs", gl.summarise_diffs(DIFFS)),
    ]
    parent = [("merge_request", mr)]
    for kind, payload in children + parent if order == "children-first" else parent + children:
        ingest(db, SRC, kind, ext, None, payload, OPTS)


def pr_row(db) -> dict:
    return dict(next(db.query("select * from pull_requests")))


def review_set(db) -> set[tuple]:
    return {
        (r["reviewer"], r["state"], r["submitted"], r["reviewer_bot"])
        for r in db.query("select * from reviews where number = 7")
    }


EXPECTED_REVIEWS = {
    ("bob", "COMMENTED", ts("2026-01-05 11:00"), 0),
    ("bob", "APPROVED", ts("2026-01-06 11:00"), 0),
    ("carol", "APPROVED", ts("2026-01-06 10:00"), 0),
    ("dave", "APPROVED", ts("2026-01-06 13:00"), 0),
    ("renovate-bot", "COMMENTED", ts("2026-01-06 11:30"), 1),
}


@pytest.mark.parametrize("order", ["children-first", "parent-first"])
def test_an_mr_and_its_children_give_hand_computed_rows_in_any_order(order):
    db = new_db()
    load(db, order=order)
    row = pr_row(db)
    assert (row["repo"], row["number"], row["state"], row["draft"]) == (P, 7, "merged", 0)
    assert row["created"] == ts("2026-01-05 09:00")
    assert row["ready"] == ts("2026-01-05 16:00")  # the "marked ... as **ready**" note
    assert row["first_commit"] == ts("2026-01-05 00:30")  # c1: 23:30 at -01:00, earlier than c2 (08:00)
    assert row["merged"] == row["closed"] == ts("2026-01-06 14:00")
    assert (row["additions"], row["deletions"]) == (2, 1)  # "-- old" and "+++ new" are content lines
    assert row["merge_sha"] == "s" * 40  # squash commit when there is no merge commit
    assert row["head_ref"] == "feature/pay-12" and row["author"] == "alice" and row["author_bot"] == 0
    # Title, description and branch are searched for links (GitHub's find_refs owns the order).
    assert set(json.loads(row["refs"])) == {
        "PAY-12",
        "https://acme.pagerduty.com/incidents/Q1ABC2DEF",
        "Q1ABC2DEF",
    }
    assert review_set(db) == EXPECTED_REVIEWS


def test_a_child_before_its_mr_derives_nothing():
    db = new_db()
    ingest(db, SRC, "merge_request_notes", gl.mr_id(P, 7), None, NOTES, OPTS)
    assert db.execute("select count(*) from pull_requests").fetchone()[0] == 0
    assert db.execute("select count(*) from reviews").fetchone()[0] == 0


def test_without_diffs_the_size_is_unknown_not_zero():
    db = new_db()
    ingest(db, SRC, "merge_request", gl.mr_id(P, 7), None, MR, OPTS)
    row = pr_row(db)
    assert (row["additions"], row["deletions"], row["first_commit"], row["ready"]) == (None, None, None, None)


def test_count_lines_counts_inside_hunks_only():
    diff = (
        "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n \\ No newline at end of file\n@@ -9 +9,2 @@\n+c\n+-d\n"
    )
    assert gl.count_lines(diff) == (3, 1)
    assert gl.count_lines(None) == (0, 0)
    files = gl.summarise_diffs(DIFFS)
    assert [(f["new_path"], f["additions"], f["deletions"], f["too_large"]) for f in files] == [
        ("a.py", 2, 1, False),
        ("c.py", 0, 0, False),
        ("big.json", 0, 0, True),
    ]
    assert files[1]["renamed_file"] is True and "diff" not in files[0]


@pytest.mark.parametrize(
    ("user", "bot"),
    [
        ({"username": "project_41_bot_3f9c2a"}, True),
        ({"username": "group_7_bot"}, True),
        ({"username": "renovate-bot"}, True),
        ({"username": "dependabot[bot]"}, True),
        ({"username": "dependabot"}, True),
        ({"username": "Renovate"}, True),
        ({"username": "renovated"}, False),
        ({"username": "ci", "bot": True}, True),
        ({"username": "svc", "user_type": "service_account"}, True),
        ({"username": "robotics"}, False),
        ({"username": "abbot"}, False),
        (None, False),
    ],
)
def test_bots(user, bot):
    assert gl.is_bot(user) is bot


def test_states_and_merge_sha_fallbacks():
    opened = {**MR, "state": "opened", "merged_at": None, "draft": True}
    closed = {**MR, "state": "closed", "merged_at": None, "closed_at": "2026-01-07T00:00:00Z"}
    ff = {**MR, "squash_commit_sha": None, "merge_commit_sha": None}  # fast-forward: the head lands
    assert gl.pull_row(opened, P, SRC)["state"] == "open" and gl.pull_row(opened, P, SRC)["draft"] == 1
    assert gl.pull_row(opened, P, SRC)["merge_sha"] is None
    assert gl.pull_row(closed, P, SRC)["state"] == "closed"
    assert gl.pull_row(closed, P, SRC)["closed"] == ts("2026-01-07 00:00")
    assert gl.pull_row(ff, P, SRC)["merge_sha"] == "a" * 40
    old = [note(1, "2026-01-05T10:00:00Z", ALICE, "unmarked as a **Work In Progress**", True)]
    assert gl.ready_at(old) == ts("2026-01-05 10:00")


DEPLOYMENT = {
    "id": 41,
    "iid": 2,
    "ref": "main",
    "sha": "d" * 40,
    "status": "success",
    "created_at": "2026-01-06T15:00:00.000Z",
    "updated_at": "2026-01-06T15:10:00.000Z",
    "environment": {"id": 9, "name": "production"},
    "deployable": {
        "id": 410,
        "finished_at": "2026-01-06T15:08:00.000Z",
        "web_url": "https://gitlab.example.com/acme/mobile/-/jobs/410",
        "pipeline": {"id": 9041, "status": "success"},
    },
}


def test_deployments_and_the_mrs_they_shipped():
    db = new_db()
    ext = gl.deployment_id(P, 41)
    ingest(db, SRC, "deployment", ext, None, DEPLOYMENT, OPTS)
    ingest(db, SRC, "deployment_merge_requests", ext, None, [MR, {**MR, "iid": 5}, MR], OPTS)
    row = dict(next(db.query("select * from deployments")))
    assert row == {
        "source": SRC,
        "id": "41",
        "service": P,
        "environment": "production",
        "production": 1,  # "Production" configured: matched case-insensitively
        "status": "success",
        "started": ts("2026-01-06 15:00"),
        "finished": ts("2026-01-06 15:08"),  # no top-level finished_at: the job's
        "sha": "d" * 40,
        "run": "9041",
        "url": "https://gitlab.example.com/acme/mobile/-/jobs/410",
    }
    assert [
        (r["deployment_id"], r["repo"], r["number"]) for r in db.query("select * from deployment_changes")
    ] == [
        ("41", P, 5),
        ("41", P, 7),
    ]
    top = {**DEPLOYMENT, "finished_at": "2026-01-06T15:09:00Z"}
    assert gl.deployment_row(top, SRC, P, ["production"])["finished"] == ts("2026-01-06 15:09")
    bare = {**DEPLOYMENT, "deployable": None}
    assert gl.deployment_row(bare, SRC, P, ["production"])["finished"] == ts("2026-01-06 15:10")
    running = {**bare, "status": "running"}
    assert gl.deployment_row(running, SRC, P, ["production"])["finished"] is None


def test_rebuild_from_raw_gives_the_same_rows():
    db = new_db()
    load(db)
    ingest(db, SRC, "deployment", gl.deployment_id(P, 41), None, DEPLOYMENT, OPTS)
    ingest(db, SRC, "deployment_merge_requests", gl.deployment_id(P, 41), None, [MR], OPTS)
    tables = ("pull_requests", "reviews", "deployments", "deployment_changes")
    before = {t: sorted(map(tuple, db.execute(f"select * from {t}").fetchall())) for t in tables}
    rebuild(db, {SRC: OPTS})
    assert {t: sorted(map(tuple, db.execute(f"select * from {t}").fetchall())) for t in tables} == before
    assert len(before["reviews"]) == 5


def test_forgetting_an_mr_removes_its_payloads_and_rows():
    db = new_db()
    load(db)
    gl.forget_merge_request(db, SRC, P, 7)
    assert db.execute("select count(*) from raw").fetchone()[0] == 0
    assert db.execute("select count(*) from pull_requests").fetchone()[0] == 0
    assert db.execute("select count(*) from reviews").fetchone()[0] == 0


def test_malformed_external_ids_are_refused_clearly():
    with pytest.raises(ValueError, match="group/project!iid"):
        gl.split_mr_id("acme/mobile#7")
    with pytest.raises(ValueError, match="deployments"):
        gl.split_deployment_id("41")
