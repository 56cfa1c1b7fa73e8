"""Raw payloads in each tool's wire format -> exact normalised rows; rebuild and save_raw behaviour.

Payloads follow the official API descriptions (Jira search/jql with ``expand=changelog``, Agile sprint,
GitHub pulls/reviews/commits/timeline/deployments/statuses/compare, PagerDuty incidents), trimmed to
the fields that matter plus a few that do not. Times in comments: Jira offsets converted to UTC by hand.
"""

from __future__ import annotations

import copy
import json

import pytest

from metrics.errors import VsmError
from metrics.normalise import NORMALISED_TABLES, ingest, normalise, rebuild
from metrics.store.raw import iter_raw, save_raw
from tests.builders import new_db, ts

JIRA = {"kind": "jira", "url": "https://acme.atlassian.net/"}
GITHUB = {"kind": "github", "url": "https://api.github.com", "production_environments": ["Production"]}
PAGERDUTY = {"kind": "pagerduty", "url": "https://api.pagerduty.com"}
SOURCES = {"jira": JIRA, "github": GITHUB, "pagerduty": PAGERDUTY}


def status(name: str, sid: str, key: str = "indeterminate") -> dict:
    return {
        "self": f"https://acme.atlassian.net/rest/api/3/status/{sid}",
        "description": "",
        "name": name,
        "id": sid,
        "statusCategory": {"id": 4, "key": key, "colorName": "yellow", "name": "In Progress"},
    }


def change(field: str, frm, frm_s, to, to_s, field_id: str | None = None, fieldtype: str = "jira") -> dict:
    return {
        "field": field,
        "fieldtype": fieldtype,
        "fieldId": field_id or field,
        "from": frm,
        "fromString": frm_s,
        "to": to,
        "toString": to_s,
    }


def sprint_change(frm: str, to: str) -> dict:
    return change("Sprint", frm, frm, to, to, "customfield_10020", "custom")


def flag_change(on: bool) -> dict:
    if on:
        return change("Flagged", None, None, "[10019]", "Impediment", "customfield_10021", "custom")
    return change("Flagged", "[10019]", "Impediment", None, None, "customfield_10021", "custom")


def history(hid: str, created: str, *items: dict) -> dict:
    return {
        "id": hid,
        "author": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Mia Krystof", "active": True},
        "created": created,
        "items": list(items),
    }


def jira_issue() -> dict:
    """PAY-12: created in sprint 7 (London, BST = UTC+1), two histories tied at 10:00, flagged twice."""
    histories = [
        history(
            "10606",
            "2024-05-06T17:00:00.000+0100",
            change("status", "10002", "In Review", "10003", "Done"),
            change("resolution", None, None, "10000", "Done"),
        ),
        history("10605", "2024-05-04T09:00:00.000+0100", sprint_change("7, 8", "8"), flag_change(True)),
        history(
            "10604",
            "2024-05-03T10:00:00.000+0100",
            flag_change(False),
            change("status", "3", "In Progress", "10002", "In Review"),
        ),
        history("10603", "2024-05-02T12:00:00.000+0100", flag_change(True)),
        # Same instant as 10601: the history id decides the order (10601 first).
        history(
            "10602",
            "2024-05-01T10:00:00.000+0100",
            change("status", "10001", "Selected for Development", "3", "In Progress"),
            sprint_change("7", "7, 8"),
        ),
        history(
            "10601",
            "2024-05-01T10:00:00.000+0100",
            change("status", "10000", "Backlog", "10001", "Selected for Development"),
        ),
    ]
    return {
        "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
        "id": "10042",
        "self": "https://acme.atlassian.net/rest/api/3/issue/10042",
        "key": "PAY-12",
        "fields": {
            "summary": "Retry card capture",
            "status": status("Done", "10003", "done"),
            "issuetype": {"id": "10001", "name": "Story", "subtask": False, "hierarchyLevel": 0},
            "created": "2024-05-01T09:00:00.000+0100",
            "updated": "2024-05-06T17:05:00.000+0100",
            "resolution": {
                "self": "https://acme.atlassian.net/rest/api/3/resolution/10000",
                "id": "10000",
                "name": "Done",
            },
            "resolutiondate": "2024-05-06T17:00:00.000+0100",
            "labels": ["backend", "customer"],
            "components": [
                {
                    "self": "https://acme.atlassian.net/rest/api/3/component/10100",
                    "id": "10100",
                    "name": "Checkout",
                }
            ],
            "project": {"id": "10000", "key": "PAY", "name": "Payments", "projectTypeKey": "software"},
            "customfield_10020": [
                {
                    "id": 8,
                    "name": "PAY Sprint 8",
                    "state": "active",
                    "boardId": 1,
                    "goal": "",
                    "startDate": "2024-04-29T09:00:00.000Z",
                    "endDate": "2024-05-13T09:00:00.000Z",
                }
            ],
        },
        "changelog": {"startAt": 0, "maxResults": 6, "total": 6, "histories": histories},
    }


def test_jira_issue_rows():
    db = new_db()
    normalise(db, "jira", "issue", jira_issue(), JIRA)
    assert list(db["work_items"].rows) == [
        {
            "source": "jira",
            "key": "PAY-12",
            "project": "PAY",
            "type": "Story",
            "summary": "Retry card capture",
            "url": "https://acme.atlassian.net/browse/PAY-12",  # base URL's trailing slash dropped
            "status": "Done",
            "status_id": "10003",
            "resolution": "Done",
            "created": ts("2024-05-01 08:00"),  # 09:00+0100
            "resolved": ts("2024-05-06 16:00"),
            "updated": ts("2024-05-06 16:00"),  # last status change, not fields.updated (16:05)
            "labels": '["backend", "customer"]',
            "components": '["Checkout"]',
            "sprints": '["8"]',
            "points": None,
            "deleted": 0,
        }
    ]
    rows = [
        (r["seq"], r["at"], r["from_status"], r["from_id"], r["to_status"], r["to_id"], r["project"])
        for r in db.query("select * from status_changes order by at, seq")
    ]
    assert rows == [
        (1060100, ts("2024-05-01 09:00"), "Backlog", "10000", "Selected for Development", "10001", "PAY"),
        (1060200, ts("2024-05-01 09:00"), "Selected for Development", "10001", "In Progress", "3", "PAY"),
        (1060401, ts("2024-05-03 09:00"), "In Progress", "3", "In Review", "10002", "PAY"),  # 2nd item
        (1060600, ts("2024-05-06 16:00"), "In Review", "10002", "Done", "10003", "PAY"),
    ]
    flags = [(r["start"], r["end"]) for r in db.query("select * from flags order by start")]
    assert flags == [
        (ts("2024-05-02 11:00"), ts("2024-05-03 09:00")),
        (ts("2024-05-04 08:00"), None),  # still flagged
    ]
    events = [
        (r["sprint_id"], r["at"], r["change"])
        for r in db.query("select * from sprint_events order by at, sprint_id")
    ]
    assert events == [
        ("7", ts("2024-05-01 08:00"), "add"),  # created in sprint 7: the first change's `from`
        ("8", ts("2024-05-01 09:00"), "add"),  # "7" -> "7, 8"
        ("7", ts("2024-05-04 08:00"), "remove"),  # "7, 8" -> "8"
    ]


def test_jira_issue_created_in_a_sprint_without_sprint_changes():
    issue = jira_issue()
    issue["changelog"] = {"startAt": 0, "maxResults": 0, "total": 0, "histories": []}
    issue["fields"]["status"] = status("Backlog", "10000", "new")
    issue["fields"]["resolution"] = None
    issue["fields"]["resolutiondate"] = None
    db = new_db()
    normalise(db, "jira", "issue", issue, JIRA)
    row = db["work_items"].get(("jira", "PAY-12"))
    assert (row["status"], row["resolution"], row["resolved"], row["updated"]) == (
        "Backlog",
        None,
        None,
        ts("2024-05-01 08:00"),  # no status change: updated = created
    )
    assert [(r["sprint_id"], r["at"], r["change"]) for r in db["sprint_events"].rows] == [
        ("8", ts("2024-05-01 08:00"), "add")  # the current sprint field, at creation
    ]
    assert db["transitions"].count == 0 and db["flags"].count == 0


def test_jira_sprint_row():
    sprint = {
        "id": 8,
        "self": "https://acme.atlassian.net/rest/agile/1.0/sprint/8",
        "state": "closed",
        "name": "PAY Sprint 8",
        "startDate": "2024-04-29T09:00:00.000Z",
        "endDate": "2024-05-13T09:00:00.000Z",
        "completeDate": "2024-05-13T08:30:00.000+0100",
        "createdDate": "2024-04-22T10:00:00.000Z",
        "originBoardId": 1,
        "goal": "Checkout v2",
    }
    db = new_db()
    normalise(db, "jira", "sprint", sprint, JIRA)
    assert list(db["sprints"].rows) == [
        {
            "source": "jira",
            "id": "8",
            "board": "1",
            "name": "PAY Sprint 8",
            "state": "closed",
            "start": ts("2024-04-29 09:00"),
            "end": ts("2024-05-13 09:00"),
            "complete": ts("2024-05-13 07:30"),  # 08:30+0100
        }
    ]


# -- GitHub ---------------------------------------------------------------------------------------------
def user(login: str, type_: str = "User") -> dict:
    return {"login": login, "id": 1, "node_id": "MDQ6VXNlcjE=", "type": type_, "site_admin": False}


def pull(number: int = 42, **kw) -> dict:
    """A pulls-list object merged with the single GET's size fields."""
    body = {
        "url": f"https://api.github.com/repos/acme/payments/pulls/{number}",
        "id": 1000 + number,
        "node_id": "MDExOlB1bGxSZXF1ZXN0MQ==",
        "html_url": f"https://github.com/acme/payments/pull/{number}",
        "number": number,
        "state": "closed",
        "locked": False,
        "title": "PAY-12: retry card capture",
        "user": user("octocat"),
        "body": "Also PAY-7 (not pay-9). Fixes Q1ABC2DEF3, see https://acme.pagerduty.com/incidents/Q1ABC2DEF3.",
        "labels": [{"id": 208045946, "name": "bug", "color": "f29513", "default": True}],
        "created_at": "2024-05-02T10:00:00Z",
        "updated_at": "2024-05-03T15:00:05Z",
        "closed_at": "2024-05-03T15:00:00Z",
        "merged_at": "2024-05-03T15:00:00Z",
        "merge_commit_sha": "e5bd3914e2e596debea16f433f57875b5b90bcd6",
        "draft": False,
        "head": {
            "label": "octocat:PAY-12-retry",
            "ref": "PAY-12-retry",
            "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        },
        "base": {
            "label": "acme:main",
            "ref": "main",
            "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
            "repo": {"id": 1296269, "name": "payments", "full_name": "acme/payments"},
        },
        "author_association": "MEMBER",
        "additions": 120,
        "deletions": 30,
        "changed_files": 5,
        "commits": 2,
    }
    body.update(kw)
    return body


REVIEWS = [
    {
        "id": 81,
        "user": user("sonarcloud[bot]", "Bot"),
        "body": "",
        "state": "COMMENTED",
        "submitted_at": "2024-05-02T11:05:00Z",
        "commit_id": "6dcb09b",
    },
    {
        "id": 80,
        "user": user("octocat"),
        "body": "note to self",
        "state": "COMMENTED",
        "submitted_at": "2024-05-02T11:30:00Z",
        "commit_id": "6dcb09b",
    },
    {
        "id": 82,
        "user": user("hubot"),
        "body": "",
        "state": "DISMISSED",
        "submitted_at": "2024-05-02T12:00:00Z",
        "commit_id": "6dcb09b",
    },
    {
        "id": 83,
        "user": user("mona"),
        "body": "LGTM",
        "state": "APPROVED",
        "submitted_at": "2024-05-03T14:00:00Z",
        "commit_id": "6dcb09b",
    },
    {
        "id": 84,
        "user": user("lisa"),
        "body": "",
        "state": "PENDING",
        "commit_id": "6dcb09b",
    },  # no submitted_at
]
COMMITS = [
    {
        "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "commit": {
            "author": {"name": "Octo", "email": "o@x.io", "date": "2024-05-01T16:00:00Z"},
            "committer": {"name": "Octo", "email": "o@x.io", "date": "2024-05-02T09:00:00Z"},
            "message": "retry",
        },
    },
    {
        "sha": "7638417db6d59f3c431d3e1f261cc637155684cd",
        # Rebased: the author date (kept) is older than the first commit's; the committer date is not.
        "commit": {
            "author": {"name": "Octo", "email": "o@x.io", "date": "2024-04-30T18:00:00Z"},
            "committer": {"name": "Octo", "email": "o@x.io", "date": "2024-05-02T09:00:00Z"},
            "message": "tests",
        },
    },
]
TIMELINE = [
    {"id": 1, "event": "convert_to_draft", "actor": user("octocat"), "created_at": "2024-05-02T10:30:00Z"},
    {"id": 2, "event": "ready_for_review", "actor": user("octocat"), "created_at": "2024-05-02T11:00:00Z"},
    {"event": "reviewed", "id": 83, "state": "approved", "submitted_at": "2024-05-03T14:00:00Z"},
    {"id": 3, "event": "ready_for_review", "actor": user("octocat"), "created_at": "2024-05-02T13:00:00Z"},
]


def deployment(
    did: int, sha: str, environment: str, created: str, statuses: list[dict], payload=None
) -> dict:
    return {
        "url": f"https://api.github.com/repos/acme/payments/deployments/{did}",
        "id": did,
        "node_id": "MDEwOkRlcGxveW1lbnQx",
        "sha": sha,
        "ref": "main",
        "task": "deploy",
        "payload": {} if payload is None else payload,
        "original_environment": environment,
        "environment": environment,
        "description": "Deploy request from hubot",
        "creator": user("github-actions[bot]", "Bot"),
        "created_at": created,
        "updated_at": created,
        "statuses_url": f"https://api.github.com/repos/acme/payments/deployments/{did}/statuses",
        "repository_url": "https://api.github.com/repos/acme/payments",
        "statuses": statuses,
    }


def dstatus(sid: int, state: str, created: str, log_url: str | None = None) -> dict:
    return {"id": sid, "state": state, "created_at": created, "log_url": log_url, "target_url": None}


def github_payloads() -> list[tuple[str, str, dict | list]]:
    """(kind, external id, payload), in a connector's order."""
    run = "https://github.com/acme/payments/actions/runs/555"
    return [
        ("pull", "acme/payments#42", pull()),
        # Merged, but its merge commit is not in the compare.
        (
            "pull",
            "acme/payments#43",
            pull(43, title="Tidy", body=None, merge_commit_sha="aaa43", head={"ref": "tidy"}),
        ),
        # Open: its merge_commit_sha is GitHub's test merge, in the compare but never shipped.
        (
            "pull",
            "acme/payments#44",
            pull(44, state="open", closed_at=None, merged_at=None, merge_commit_sha="bbb44"),
        ),
        ("pull_reviews", "acme/payments#42", REVIEWS),
        ("pull_commits", "acme/payments#42", COMMITS),
        ("pull_timeline", "acme/payments#42", TIMELINE),
        (
            "deployment",
            "1001",
            deployment(
                1001,
                "e5bd3914e2e596debea16f433f57875b5b90bcd6",
                "production",
                "2024-05-03T16:00:00Z",
                # Newest first, as the API lists them: failure, then success on retry, later superseded.
                [
                    dstatus(5, "inactive", "2024-05-04T10:00:00Z"),
                    dstatus(4, "success", "2024-05-03T16:20:00Z", run),
                    dstatus(3, "failure", "2024-05-03T16:10:00Z"),
                    dstatus(2, "in_progress", "2024-05-03T16:01:00Z"),
                    dstatus(1, "queued", "2024-05-03T16:00:00Z"),
                ],
                {"run_id": 555},
            ),
        ),
        (
            "deployment",
            "1002",
            deployment(
                1002,
                "f00",
                "production",
                "2024-05-04T09:00:00Z",
                [
                    dstatus(7, "failure", "2024-05-04T09:08:00Z"),
                    dstatus(6, "in_progress", "2024-05-04T09:00:30Z"),
                ],
            ),
        ),
        # Staging; GitHub also allows the payload as a (here empty) string.
        (
            "deployment",
            "1003",
            deployment(
                1003,
                "f00",
                "staging",
                "2024-05-04T08:00:00Z",
                [dstatus(8, "in_progress", "2024-05-04T08:00:10Z")],
                "",
            ),
        ),
        (
            "compare",
            "1001",
            {
                "url": "https://api.github.com/repos/acme/payments/compare/9049f12...e5bd391",
                "status": "ahead",
                "ahead_by": 3,
                "behind_by": 0,
                "total_commits": 3,
                "commits": [
                    {"sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
                    {"sha": "bbb44"},
                    {"sha": "e5bd3914e2e596debea16f433f57875b5b90bcd6"},
                ],
                "files": [],
            },
        ),
    ]


def ingest_github(db) -> None:
    for kind, external_id, payload in github_payloads():
        ingest(db, "github", kind, external_id, None, payload, GITHUB)


def test_github_pull_row():
    db = new_db()
    ingest_github(db)
    assert db["pull_requests"].get(("github", "acme/payments", 42)) == {
        "source": "github",
        "repo": "acme/payments",
        "number": 42,
        "title": "PAY-12: retry card capture",
        "url": "https://github.com/acme/payments/pull/42",
        "state": "merged",
        "draft": 0,
        "created": ts("2024-05-02 10:00"),
        "ready": ts("2024-05-02 11:00"),  # the first ready_for_review, not the later one
        "first_commit": ts("2024-04-30 18:00"),  # min author date, not the committer dates
        "merged": ts("2024-05-03 15:00"),
        "closed": ts("2024-05-03 15:00"),
        "updated": ts("2024-05-03 15:00:05"),
        "additions": 120,
        "deletions": 30,
        "labels": '["bug"]',
        "merge_sha": "e5bd3914e2e596debea16f433f57875b5b90bcd6",
        "head_ref": "PAY-12-retry",
        # keys (title, body, branch), then PagerDuty-style ids, then URLs (trailing "." dropped)
        "refs": json.dumps(
            ["PAY-12", "PAY-7", "Q1ABC2DEF3", "https://acme.pagerduty.com/incidents/Q1ABC2DEF3"]
        ),
        "author": "octocat",
        "author_bot": 0,
    }
    open_pr = db["pull_requests"].get(("github", "acme/payments", 44))
    assert (open_pr["state"], open_pr["merged"], open_pr["merge_sha"]) == ("open", None, None)
    assert db["pull_requests"].get(("github", "acme/payments", 43))["refs"] == "[]"


def test_github_reviews_keep_everything_for_the_catalogue_to_filter():
    db = new_db()
    ingest_github(db)
    rows = [
        (r["id"], r["reviewer"], r["reviewer_bot"], r["state"], r["submitted"])
        for r in db.query("select * from reviews order by id")
    ]
    assert rows == [
        ("80", "octocat", 0, "COMMENTED", ts("2024-05-02 11:30")),  # self-review: kept, flagged later
        ("81", "sonarcloud[bot]", 1, "COMMENTED", ts("2024-05-02 11:05")),
        ("82", "hubot", 0, "DISMISSED", ts("2024-05-02 12:00")),
        ("83", "mona", 0, "APPROVED", ts("2024-05-03 14:00")),
        ("84", "lisa", 0, "PENDING", None),
    ]


def test_github_bot_author_by_type_or_login_suffix():
    db = new_db()
    normalise(db, "github", "pull", pull(50, user=user("renovate", "Bot")), GITHUB)
    normalise(db, "github", "pull", pull(51, user=user("dependabot[bot]")), GITHUB)
    assert [r["author_bot"] for r in db.query("select author_bot from pull_requests order by number")] == [
        1,
        1,
    ]


def _actor(u: dict) -> dict:
    """A REST user as GraphQL's ``Actor``: the type in ``__typename``, a bot's login without ``[bot]``."""
    bot = u["type"] == "Bot"
    return {"__typename": u["type"], "login": u["login"].removesuffix("[bot]") if bot else u["login"]}


def pull_node(rest: dict, reviews: list[dict], id_field: str) -> dict:
    """A PR's REST pieces as the connector stores them since GraphQL: one ``PullRequest`` node, each
    connection's ``nodes`` complete and no ``pageInfo``. Review ids under ``id_field``:
    ``fullDatabaseId`` (a BigInt, so a string: what the connector asks now) or ``databaseId`` (an Int,
    in nodes stored before review ids outgrew 32 bits)."""
    return {
        "number": rest["number"],
        "title": rest["title"],
        "url": rest["html_url"],
        "state": "MERGED" if rest["merged_at"] else rest["state"].upper(),
        "isDraft": rest["draft"],
        "body": rest["body"] or "",
        "createdAt": rest["created_at"],
        "updatedAt": rest["updated_at"],
        "closedAt": rest["closed_at"],
        "mergedAt": rest["merged_at"],
        "additions": rest["additions"],
        "deletions": rest["deletions"],
        "headRefName": rest["head"]["ref"],
        "mergeCommit": {"oid": rest["merge_commit_sha"]} if rest["merged_at"] else None,
        "author": _actor(rest["user"]),
        "labels": {"nodes": [{"name": x["name"]} for x in rest["labels"]]},
        "commits": {"nodes": [{"commit": {"authoredDate": c["commit"]["author"]["date"]}} for c in COMMITS]},
        "reviews": {
            "nodes": [
                {
                    id_field: str(r["id"]) if id_field == "fullDatabaseId" else r["id"],
                    "state": r["state"],
                    "submittedAt": r.get("submitted_at"),
                    "author": _actor(r["user"]),
                }
                for r in reviews
            ]
        },
        "timelineItems": {
            "nodes": [
                {"__typename": "ReadyForReviewEvent", "createdAt": e["created_at"]}
                for e in TIMELINE
                if e["event"] == "ready_for_review"
            ]
        },
    }


@pytest.mark.parametrize(
    ("id_field", "first_id"),
    [("fullDatabaseId", 2_480_002_890), ("databaseId", 80)],  # as stored now / before the change
)
def test_github_pull_node_gives_the_rows_of_its_rest_pieces(id_field, first_id):
    """Review ids past 2**31 - 1 come as ``fullDatabaseId`` strings; nodes stored earlier hold
    ``databaseId``. Either way, and after a rebuild, the rows are those REST's pieces give, bots
    spelled ``x[bot]`` as REST spells them."""
    rest = pull(user=user("renovate[bot]", "Bot"))
    reviews = [{**r, "id": r["id"] - 80 + first_id} for r in REVIEWS]
    from_rest, from_node = new_db(), new_db()
    for kind, payload in (("pull", rest), ("pull_reviews", reviews), ("pull_commits", COMMITS)):
        ingest(from_rest, "github", kind, "acme/payments#42", None, payload, GITHUB)
    ingest(from_rest, "github", "pull_timeline", "acme/payments#42", None, TIMELINE, GITHUB)
    node = pull_node(rest, reviews, id_field)
    ingest(from_node, "github", "pull_node", "acme/payments#42", None, node, GITHUB)

    def rows(db) -> tuple:
        return list(db["pull_requests"].rows), sorted(db["reviews"].rows, key=lambda r: r["id"])

    assert rows(from_node) == rows(from_rest)
    prs, review_rows = rows(from_node)
    assert (prs[0]["author"], prs[0]["author_bot"]) == ("renovate[bot]", 1)
    assert review_rows[0]["id"] == str(first_id)
    assert (review_rows[1]["reviewer"], review_rows[1]["reviewer_bot"]) == ("sonarcloud[bot]", 1)
    from_node["pull_requests"].delete_where()
    from_node["reviews"].delete_where()
    rebuild(from_node, {"github": GITHUB})
    assert rows(from_node) == rows(from_rest)


def test_github_deployments():
    db = new_db()
    ingest_github(db)
    rows = {r["id"]: r for r in db["deployments"].rows}
    assert rows["1001"] == {
        "source": "github",
        "id": "1001",
        "service": "acme/payments",
        "environment": "production",
        "production": 1,  # "Production" configured: matched case-insensitively
        "status": "success",  # a success exists: the later `inactive` means superseded
        "started": ts("2024-05-03 16:00"),
        "finished": ts("2024-05-03 16:20"),  # the first success, not the failure before it
        "sha": "e5bd3914e2e596debea16f433f57875b5b90bcd6",
        "run": "555",
        "url": "https://github.com/acme/payments/actions/runs/555",
    }
    assert (rows["1002"]["status"], rows["1002"]["finished"], rows["1002"]["run"]) == (
        "failure",
        ts("2024-05-04 09:08"),  # the final status's time
        None,
    )
    assert (rows["1003"]["production"], rows["1003"]["status"], rows["1003"]["finished"]) == (
        0,
        "in_progress",
        None,
    )


def test_github_deployments_count_in_production_when_no_environment_is_configured():
    """A source left at its defaults counts deployments to ``production`` (docs/sources.md), as
    GitLab does: with no list configured none counted before."""
    db = new_db()
    defaults = {"kind": "github", "url": "https://api.github.com"}
    for kind, external_id, payload in github_payloads():
        ingest(db, "github", kind, external_id, None, payload, defaults)
    rows = {r["id"]: r["production"] for r in db["deployments"].rows}
    assert rows["1001"] == 1


def test_github_compare_links_merged_prs_only():
    db = new_db()
    ingest_github(db)
    rows = [(r["deployment_id"], r["repo"], r["number"]) for r in db["deployment_changes"].rows]
    assert rows == [("1001", "acme/payments", 42)]  # 43 not in the compare; 44's sha is a test merge


def test_github_children_before_parent():
    """Commits and timeline stored before the PR itself: the PR row still gets them from raw."""
    db = new_db()
    ingest(db, "github", "pull_commits", "acme/payments#42", None, COMMITS, GITHUB)
    ingest(db, "github", "pull_timeline", "acme/payments#42", None, TIMELINE, GITHUB)
    assert db["pull_requests"].count == 0  # no stub rows
    ingest(db, "github", "pull", "acme/payments#42", None, pull(), GITHUB)
    row = db["pull_requests"].get(("github", "acme/payments", 42))
    assert (row["first_commit"], row["ready"]) == (ts("2024-04-30 18:00"), ts("2024-05-02 11:00"))


def test_list_payload_without_its_parent_id_is_refused():
    with pytest.raises(ValueError, match="owner/repo#number"):
        normalise(new_db(), "github", "pull_reviews", REVIEWS, GITHUB)


# -- PagerDuty -----------------------------------------------------------------------------------------
def incident(
    iid: str, status_: str, resolved_at: str | None, last_change: str, urgency: str = "high"
) -> dict:
    return {
        "id": iid,
        "type": "incident",
        "summary": "[#1234] The server is on fire.",
        "self": f"https://api.pagerduty.com/incidents/{iid}",
        "html_url": f"https://acme.pagerduty.com/incidents/{iid}",
        "incident_number": 1234,
        "title": "The server is on fire.",
        "created_at": "2024-05-03T17:00:00Z",
        "updated_at": last_change,
        "status": status_,
        "incident_key": "baf7cf21b1da41b4b0221008339ff357",
        "service": {"id": "PIJ90N7", "type": "service_reference", "summary": "My Mail Service"},
        "assignments": [],
        "last_status_change_at": last_change,
        "resolved_at": resolved_at,
        "urgency": urgency,
    }


def test_pagerduty_incidents():
    db = new_db()
    normalise(
        db,
        "pagerduty",
        "incident",
        incident("PT4KHLK", "resolved", "2024-05-03T18:30:00Z", "2024-05-03T18:30:00Z"),
        PAGERDUTY,
    )
    normalise(
        db,
        "pagerduty",
        "incident",
        incident("PT4KHLL", "triggered", None, "2024-05-03T17:00:00Z", "low"),
        PAGERDUTY,
    )
    normalise(
        db, "pagerduty", "incident", incident("PT4KHLM", "resolved", None, "2024-05-03T19:00:00Z"), PAGERDUTY
    )
    rows = {r["id"]: r for r in db["incidents"].rows}
    assert rows["PT4KHLK"] == {
        "source": "pagerduty",
        "id": "PT4KHLK",
        "service": "PIJ90N7",
        "title": "The server is on fire.",
        "url": "https://acme.pagerduty.com/incidents/PT4KHLK",
        "created": ts("2024-05-03 17:00"),
        "resolved": ts("2024-05-03 18:30"),
        "severity": "high",
        "status": "resolved",
    }
    assert (rows["PT4KHLL"]["resolved"], rows["PT4KHLL"]["severity"]) == (None, "low")
    assert rows["PT4KHLM"]["resolved"] == ts("2024-05-03 19:00")  # no resolved_at: last status change


# -- store behaviour -----------------------------------------------------------------------------------
def snapshot(db) -> dict:
    return {t: sorted(json.dumps(r, sort_keys=True) for r in db[t].rows) for t in NORMALISED_TABLES}


def ingest_all(db) -> None:
    ingest(db, "jira", "issue", "10042", "2024-05-06T17:05:00.000+0100", jira_issue(), JIRA)
    ingest_github(db)
    ingest(
        db,
        "pagerduty",
        "incident",
        "PT4KHLK",
        None,
        incident("PT4KHLK", "triggered", None, "2024-05-03T17:00:00Z"),
        PAGERDUTY,
    )


def test_rebuild_reproduces_identical_rows():
    db = new_db()
    ingest_all(db)
    before = snapshot(db)
    assert {t: len(v) for t, v in before.items() if v} == {
        "work_items": 1,
        "transitions": 4,
        "flags": 2,
        "sprint_events": 3,
        "pull_requests": 3,
        "reviews": 5,
        "deployments": 3,
        "deployment_changes": 1,
        "deployment_commits": 3,
        "incidents": 1,
    }
    db.execute("update work_items set status = 'tampered'")
    db["pull_requests"].delete_where("number = 43")
    counts = rebuild(db, SOURCES)
    assert counts == {"jira": 1, "github": 10, "pagerduty": 1}
    assert snapshot(db) == before


def test_rebuild_leaves_other_sources_alone():
    db = new_db()
    ingest_all(db)
    rebuild(db, {"jira": JIRA})
    assert db["pull_requests"].count == 3 and db["incidents"].count == 1


def test_rebuild_rolls_back_on_error():
    db = new_db()
    ingest_all(db)
    before = snapshot(db)
    save_raw(db, "github", "pull_reviews", "not-a-pr-id", None, REVIEWS)
    with pytest.raises(ValueError):
        rebuild(db, SOURCES)
    assert snapshot(db) == before


def test_normalising_twice_leaves_the_same_rows():
    db = new_db()
    ingest_all(db)
    before = snapshot(db)
    normalise(db, "jira", "issue", jira_issue(), JIRA)
    for kind, external_id, payload in github_payloads():
        normalise(db, "github", kind, payload, GITHUB, external_id)
    assert snapshot(db) == before


def test_changed_children_replace_the_old_ones():
    db = new_db()
    ingest_all(db)
    ingest(db, "github", "pull_reviews", "acme/payments#42", None, REVIEWS[3:4], GITHUB)
    assert [r["id"] for r in db["reviews"].rows] == ["83"]
    issue = jira_issue()
    issue["changelog"]["histories"] = issue["changelog"]["histories"][-1:]
    ingest(db, "jira", "issue", "10042", None, issue, JIRA)
    assert [r["seq"] for r in db["transitions"].rows] == [1060100]
    assert db["flags"].count == 0


def test_save_raw_writes_nothing_for_an_identical_payload():
    db = new_db()
    payload = {"id": "PT4KHLK", "status": "triggered", "service": {"id": "PIJ90N7"}}
    assert (
        save_raw(db, "pagerduty", "incident", "PT4KHLK", "t1", payload, fetched_at="2024-05-01T00:00:00Z")
        is True
    )
    same = {"service": {"id": "PIJ90N7"}, "status": "triggered", "id": "PT4KHLK"}  # other key order
    assert (
        save_raw(db, "pagerduty", "incident", "PT4KHLK", "t2", same, fetched_at="2024-05-02T00:00:00Z")
        is False
    )
    row = db["raw"].get(("pagerduty", "incident", "PT4KHLK"))
    assert (row["updated_at"], row["fetched_at"]) == ("t1", "2024-05-01T00:00:00Z")  # untouched
    changed = copy.deepcopy(payload) | {"status": "resolved"}
    assert (
        save_raw(db, "pagerduty", "incident", "PT4KHLK", "t3", changed, fetched_at="2024-05-03T00:00:00Z")
        is True
    )
    assert [r["payload"]["status"] for r in iter_raw(db, "pagerduty", "incident")] == ["resolved"]
    assert db["raw"].count == 1


def test_ingest_normalises_only_changes():
    db = new_db()
    assert ingest(db, "jira", "issue", "10042", None, jira_issue(), JIRA) is True
    db.execute("delete from transitions")
    assert ingest(db, "jira", "issue", "10042", None, jira_issue(), JIRA) is False
    assert db["transitions"].count == 0  # nothing re-derived: the payload did not change


def test_unknown_tool_is_a_clear_error_and_unknown_kind_is_ignored():
    with pytest.raises(VsmError, match="no normaliser for kind 'linear'"):
        normalise(new_db(), "x", "issue", {}, {"kind": "linear"})
    assert normalise(new_db(), "jira", "board_configuration", {}, JIRA) is False


def test_rebuild_keeps_tombstones():
    db = new_db()
    ingest_all(db)
    db.execute("update work_items set deleted = 1 where key = 'PAY-12'")  # a connector found it gone
    rebuild(db, {"jira": JIRA})
    assert db["work_items"].get(("jira", "PAY-12"))["deleted"] == 1
