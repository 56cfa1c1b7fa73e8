"""Pull-request family and the stale-PR list, end to end through TeamData (its review and bot filters).

Window: Mon 5 Jan – Mon 2 Feb 2026 (28 days, UTC); previous window 8 Dec – 5 Jan.
"""

from __future__ import annotations

from datetime import date

from builders import new_db, pr, team, ts

from metrics.catalogue import CATALOGUE
from metrics.catalogue.pull_requests import stale_prs
from metrics.dataset import TeamData
from metrics.timeutil import Window, local_midnight, zone

NOW = "2026-02-10 00:00"


def win(since: str = "2026-01-05", until: str = "2026-02-02") -> Window:
    z = zone("UTC")
    return Window(local_midnight(date.fromisoformat(since), z), local_midnight(date.fromisoformat(until), z))


def run(db, metric_id: str, window: Window | None = None, now: str = NOW, **team_kw):
    return CATALOGUE[metric_id].compute(TeamData(db, team(**team_kw), ts(now)), window or win())


def review_db():
    """PRs whose reviews exercise every rule: drafts, early reviews, self/bot/pending/dismissed."""
    db = new_db()
    # 1: created 5 Jan 09:00, reviewed 13:00 (4 h), merged 17:00 (review 4 h)
    pr(
        db,
        1,
        "2026-01-05 09:00",
        merged="2026-01-05 17:00",
        reviews=[("2026-01-05 13:00", "bob", "APPROVED")],
    )
    # 2: opened as draft 6 Jan 09:00, ready 7 Jan 09:00, reviewed 15:00 (6 h), merged 8 Jan 15:00 (24 h)
    pr(
        db,
        2,
        "2026-01-06 09:00",
        ready="2026-01-07 09:00",
        merged="2026-01-08 15:00",
        reviews=[("2026-01-07 15:00", "bob", "COMMENTED"), ("2026-01-08 10:00", "carol", "APPROVED")],
    )
    # 3: reviewed 8 Jan 10:00 before it was ready (12:00): pickup 0; merged 11:00 (review 1 h)
    pr(
        db,
        3,
        "2026-01-08 09:00",
        ready="2026-01-08 12:00",
        merged="2026-01-08 11:00",
        reviews=[("2026-01-08 10:00", "bob", "APPROVED")],
    )
    # 4: self, bot and pending reviews do not count; the dismissed one (10 Jan 09:00) does: pickup 24 h
    pr(
        db,
        4,
        "2026-01-09 09:00",
        reviews=[
            ("2026-01-09 10:00", "alice", "APPROVED"),
            ("2026-01-09 11:00", "ci[bot]", "APPROVED"),
            ("2026-01-09 12:00", "bob", "PENDING"),
            (None, "dave", "COMMENTED"),
            ("2026-01-10 09:00", "carol", "DISMISSED"),
        ],
    )
    # 5: first review after the window
    pr(db, 5, "2026-01-01 09:00", reviews=[("2026-02-03 09:00", "bob", "APPROVED")])
    # 6: still a draft (never ready): no pickup
    pr(db, 6, "2026-01-12 09:00", draft=True, reviews=[("2026-01-12 10:00", "bob", "COMMENTED")])
    # 7: bot-authored, reviewed after 2 h
    pr(
        db,
        7,
        "2026-01-13 09:00",
        author="dependabot[bot]",
        author_bot=True,
        reviews=[("2026-01-13 11:00", "bob", "APPROVED")],
    )
    return db


def test_catalogue_entries_match_metrics_md():
    expected = {
        "pr-pickup-time": ("PR pickup time", "duration", "lower"),
        "pr-review-time": ("PR review time", "duration", "lower"),
        "pr-cycle-time": ("PR cycle time", "duration", "lower"),
        "pr-size": ("PR size", "lines", "lower"),
        "merged-without-review": ("Merged without review", "%", "lower"),
    }
    for mid, (name, unit, better) in expected.items():
        m = CATALOGUE[mid]
        assert (m.name, m.unit, m.better) == (name, unit, better)


# -- pickup ---------------------------------------------------------------------------------------------
def test_pickup_time_from_ready_to_first_counted_review():
    r = run(review_db(), "pr-pickup-time")
    # [4, 6, 0, 24] h -> sorted [0, 4, 6, 24]: p50 h = 1.5 -> 4 + 0.5 * 2 = 5; p85 h = 2.55 -> 6 + 0.55 * 18 = 15.9
    assert r.value == {"p50": 5.0, "p85": 15.9}
    assert r.sample_size == 4
    assert [i["key"] for i in r.items] == ["acme/pay#1", "acme/pay#2", "acme/pay#3", "acme/pay#4"]
    assert r.items[1]["start"] == "2026-01-07T09:00:00Z"  # ready, not created
    assert r.items[2]["hours"] == 0.0  # reviewed before ready
    assert r.items[3]["end"] == "2026-01-10T09:00:00Z"  # the dismissed review


def test_pickup_time_includes_bot_prs_when_the_team_opts_in():
    r = run(review_db(), "pr-pickup-time", include_bot_prs=True)
    # [0, 2, 4, 6, 24]: p50 = 4; p85 h = 3.4 -> 6 + 0.4 * 18 = 13.2
    assert r.value == {"p50": 4.0, "p85": 13.2}
    assert r.sample_size == 5


def test_pickup_time_is_placed_by_the_first_review():
    db = new_db()
    pr(db, 1, "2025-12-30 09:00", reviews=[("2026-01-05 09:00", "bob", "APPROVED")])  # created before
    pr(db, 2, "2026-01-04 09:00", reviews=[("2026-01-04 21:00", "bob", "APPROVED")])  # previous window
    r = run(db, "pr-pickup-time")
    assert r.value == {"p50": 144.0, "p85": 144.0}  # 30 Dec 09:00 -> 5 Jan 09:00
    # PR 2 (12 h) was picked up the week before, but that period begins before the PRs' history (the
    # week of 29 Dec, their earliest update): unknown, not PR 2's figure.
    assert (r.previous, r.previous_note) == (None, "no earlier data")


# -- review ---------------------------------------------------------------------------------------------
def test_review_time_first_review_to_merge_on_merged_prs():
    db = review_db()
    # 8: reviewed only after the merge: no review time
    pr(
        db,
        8,
        "2026-01-14 09:00",
        merged="2026-01-14 10:00",
        reviews=[("2026-01-14 12:00", "bob", "APPROVED")],
    )
    pr(db, 9, "2026-01-14 09:00", merged="2026-01-14 10:00")  # no review at all
    r = run(db, "pr-review-time")
    # PR1 4 h, PR2 24 h (from the first review, not the approval), PR3 1 h -> [1, 4, 24]
    # p50 = 4; p85 h = 1.7 -> 4 + 0.7 * 20 = 18
    assert r.value == {"p50": 4.0, "p85": 18.0}
    assert [i["key"] for i in r.items] == ["acme/pay#1", "acme/pay#3", "acme/pay#2"]  # by merge time


# -- cycle ----------------------------------------------------------------------------------------------
def test_pr_cycle_time_first_commit_to_merge():
    db = new_db()
    pr(db, 1, "2026-01-05 12:00", first_commit="2026-01-04 12:00", merged="2026-01-06 12:00")  # 48 h
    pr(db, 2, "2026-01-07 09:00", merged="2026-01-07 11:00")  # no commits: from creation, 2 h
    pr(db, 3, "2026-01-07 09:00", first_commit="2026-01-08 09:00", merged="2026-01-07 10:00")  # negative
    pr(db, 4, "2026-01-07 09:00", closed="2026-01-08 09:00")  # closed unmerged
    pr(db, 5, "2026-01-07 09:00")  # open
    r = run(db, "pr-cycle-time")
    assert r.value == {"p50": 25.0, "p85": 41.1}  # [2, 48]: p50 25; p85 2 + 0.85 * 46 = 41.1
    assert r.sample_size == 2
    assert "1 PR merged before its first commit (bad data) is left out" in r.notes


# -- size -----------------------------------------------------------------------------------------------
def test_pr_size_in_lines_not_hours():
    db = new_db()
    sizes = [(1, 9), (20, 0), (30, 0), (35, 5), (90, 10)]  # 10, 20, 30, 40, 100 lines
    for n, (a, d) in enumerate(sizes, start=1):
        pr(db, n, "2026-01-05 09:00", merged=f"2026-01-{5 + n:02d} 09:00", additions=a, deletions=d)
    pr(db, 10, "2026-01-05 09:00", additions=500, deletions=500)  # open: not counted
    unsized = pr(db, 11, "2026-01-05 09:00", merged="2026-01-06 09:00")
    db["pull_requests"].update(("github", "acme/pay", 11), {"additions": None, "deletions": None})
    assert unsized["number"] == 11  # merged, but its line counts were never fetched
    r = run(db, "pr-size")
    # [10, 20, 30, 40, 100]: p50 30; p85 h = 3.4 -> 40 + 0.4 * 60 = 64
    assert r.value == {"p50": 30.0, "p85": 64.0}
    assert r.unit == "lines"
    assert r.sample_size == 5
    assert r.items[0]["lines"] == 10
    assert r.series[0] == {"week": "2026-01-05", "value": 30.0, "p85": 64.0}  # weekly median and p85, lines
    assert "1 merged PR has no line counts yet and is left out" in r.notes
    assert r.previous is None


# -- merged without review --------------------------------------------------------------------------------
def test_merged_without_review_share():
    db = new_db()
    pr(
        db,
        1,
        "2026-01-05 09:00",
        merged="2026-01-05 17:00",
        reviews=[("2026-01-05 13:00", "bob", "APPROVED")],
    )
    pr(
        db,
        2,
        "2026-01-05 09:00",
        merged="2026-01-05 17:00",
        reviews=[("2026-01-05 17:00", "bob", "APPROVED")],
    )
    pr(
        db,
        3,
        "2026-01-05 09:00",
        merged="2026-01-05 17:00",
        reviews=[("2026-01-05 18:00", "bob", "APPROVED")],
    )
    pr(db, 4, "2026-01-05 09:00", merged="2026-01-05 17:00")
    pr(
        db,
        5,
        "2026-01-05 09:00",
        merged="2026-01-05 17:00",
        reviews=[("2026-01-05 10:00", "alice", "APPROVED"), ("2026-01-05 11:00", "bob", "PENDING")],
    )
    pr(
        db,
        6,
        "2026-01-05 09:00",
        merged="2026-01-05 17:00",
        reviews=[("2026-01-05 10:00", "bob", "DISMISSED")],
    )
    pr(db, 7, "2026-01-05 09:00", merged="2026-01-05 17:00", author="bot", author_bot=True)
    pr(db, 8, "2026-01-05 09:00", closed="2026-01-05 17:00")  # closed unmerged: not a merged PR
    r = run(db, "merged-without-review")
    # unreviewed: 3 (review after merge), 4 (none), 5 (self + pending only) -> 3 of 6 merged
    assert r.value == 50.0
    assert r.sample_size == 6
    assert [i["reviewed"] for i in r.items] == [True, True, False, False, False, True]
    r = run(db, "merged-without-review", include_bot_prs=True)
    assert r.value == 57.1429  # 4 of 7


# -- stale PRs ----------------------------------------------------------------------------------------------
def test_stale_prs_lists_open_unreviewed_prs_past_the_threshold():
    db = new_db()
    pr(db, 1, "2026-01-07 09:00")  # 75 h since creation
    pr(db, 2, "2026-01-09 09:00")  # 27 h: not yet
    pr(db, 3, "2026-01-01 09:00", draft=True)  # draft
    pr(db, 4, "2026-01-01 09:00", reviews=[("2026-01-02 09:00", "bob", "COMMENTED")])  # reviewed
    pr(db, 5, "2026-01-01 09:00", ready="2026-01-09 12:00")  # 24 h since ready
    pr(db, 6, "2026-01-01 09:00", ready="2026-01-08 00:00")  # 60 h since ready
    pr(db, 7, "2026-01-01 09:00", merged="2026-01-02 09:00")  # merged
    pr(db, 8, "2026-01-05 00:00", reviews=[("2026-01-05 01:00", "alice", "APPROVED"), ("2026-01-05 02:00", "x[bot]", "APPROVED")])  # fmt: skip
    pr(db, 9, "2026-01-01 09:00", author="bot", author_bot=True)  # bot-authored
    pr(db, 10, "2026-01-01 09:00", closed="2026-01-02 09:00")  # closed
    data = TeamData(db, team(), ts("2026-01-10 12:00"))
    out = stale_prs(data)
    # longest wait first: 8 (132 h), 1 (75 h), 6 (60 h)
    assert [(p["key"], p["hours_waiting"]) for p in out] == [
        ("acme/pay#8", 132.0),
        ("acme/pay#1", 75.0),
        ("acme/pay#6", 60.0),
    ]
    assert set(out[0]) == {"key", "title", "url", "ready", "hours_waiting"}  # PRs, never people
    assert out[2]["ready"] == "2026-01-08T00:00:00Z"


def test_stale_prs_threshold_and_explicit_now():
    db = new_db()
    pr(db, 1, "2026-01-07 09:00")
    data = TeamData(db, team(stale_pr_hours=80), ts("2026-01-10 12:00"))
    assert stale_prs(data) == []  # 75 h < 80 h
    assert stale_prs(data, now=ts("2026-01-10 17:00")) == []  # exactly 80 h: not past it
    late = stale_prs(data, now=ts("2026-01-10 17:30"))
    assert [(p["key"], p["hours_waiting"]) for p in late] == [("acme/pay#1", 80.5)]
