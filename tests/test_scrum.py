"""Scrum family: sprint membership replay, done at the sprint's end, pooling over a window.

Window: Mon 5 Jan – Mon 2 Feb 2026 (28 days, UTC); previous window 8 Dec – 5 Jan. Items are created on
2 Jan 09:00 in Backlog unless said.
"""

from __future__ import annotations

from datetime import date

from builders import item, new_db, sprint, team, ts

from metrics.catalogue import CATALOGUE
from metrics.catalogue.scrum import done_at as status_done_at
from metrics.catalogue.scrum import done_timelines, replay_membership, sprint_figures
from metrics.dataset import TeamData
from metrics.timeutil import Window, local_midnight, zone

NOW = "2026-02-10 00:00"
CREATED = "2026-01-02 09:00"


def win(since: str = "2026-01-05", until: str = "2026-02-02") -> Window:
    z = zone("UTC")
    return Window(local_midnight(date.fromisoformat(since), z), local_midnight(date.fromisoformat(until), z))


def run(db, metric_id: str, window: Window | None = None, now: str = NOW, **team_kw):
    return CATALOGUE[metric_id].compute(TeamData(db, team(**team_kw), ts(now)), window or win())


def done_at(day: str, start: str = "2026-01-06 09:00") -> list[tuple[str, str]]:
    return [(start, "In Progress"), (day, "Done")]


def sprint_one(db) -> None:
    """Sprint 1: 5 Jan 09:00 – 19 Jan 09:00, closed 19 Jan 10:00.

    committed {1, 2, 3, 6, 7, 8, 9} = 7; completed {1, 8, 9} = 3; added {4, 5, 11} = 3; removed {3} = 1;
    in the sprint at its end {1, 2, 4, 6, 7, 8, 9, 11} = 8, not done there {2, 6, 7, 11} = 4.
    """
    item(db, "PAY-1", CREATED, done_at("2026-01-10 09:00"))
    item(db, "PAY-2", CREATED, done_at("2026-01-22 09:00"))  # done in sprint 2
    item(db, "PAY-3", CREATED)
    item(db, "PAY-4", CREATED, done_at("2026-01-12 09:00", start="2026-01-08 09:00"))
    item(db, "PAY-5", CREATED)
    item(
        db, "PAY-6", CREATED, [*done_at("2026-01-15 09:00"), ("2026-01-17 09:00", "In Progress")]
    )  # reopened
    item(db, "PAY-7", CREATED, done_at("2026-01-20 09:00"))  # done after the sprint closed
    item(db, "PAY-8", CREATED, [*done_at("2026-01-12 09:00"), ("2026-01-25 09:00", "In Progress")])
    item(db, "PAY-9", CREATED, done_at("2026-01-06 09:00", start="2026-01-05 10:00"))
    item(db, "PAY-10", CREATED)
    item(db, "PAY-11", CREATED)
    sprint(
        db,
        "1",
        "2026-01-05 09:00",
        "2026-01-19 09:00",
        complete="2026-01-19 10:00",
        events=[
            ("PAY-1", "2026-01-04 10:00", "add"),
            ("PAY-2", "2026-01-04 10:00", "add"),
            ("PAY-2", "2026-01-19 10:00", "remove"),  # moved on when the sprint closed: carry-over
            ("PAY-3", "2026-01-04 10:00", "add"),
            ("PAY-3", "2026-01-08 10:00", "remove"),  # removed
            ("PAY-4", "2026-01-07 10:00", "add"),  # added
            ("PAY-5", "2026-01-07 10:00", "add"),
            ("PAY-5", "2026-01-09 10:00", "remove"),  # added then removed: once, as added
            ("PAY-6", "2026-01-04 10:00", "add"),
            ("PAY-7", "2026-01-04 10:00", "add"),
            ("PAY-8", "2026-01-04 10:00", "add"),
            ("PAY-9", "2026-01-05 09:00", "add"),  # at the start: committed
            ("PAY-10", "2026-01-03 10:00", "add"),
            ("PAY-10", "2026-01-04 10:00", "remove"),  # gone before the start: nothing
            ("PAY-11", "2026-01-08 10:00", "add"),
            ("OTHER-1", "2026-01-04 10:00", "add"),  # another project's item: not the team's
        ],
    )


def sprint_two(db) -> None:
    """Sprint 2: 19 Jan 10:00 – 2 Feb 09:00, closed early on 30 Jan 12:00.

    committed {2, 12} = 2; completed {2} = 1; added {13} = 1; removed 0; at end {2, 12, 13} = 3; not done {12}.
    """
    item(db, "PAY-12", CREATED)
    item(db, "PAY-13", CREATED, done_at("2026-01-23 09:00", start="2026-01-21 09:00"))
    sprint(
        db,
        "2",
        "2026-01-19 10:00",
        "2026-02-02 09:00",
        complete="2026-01-30 12:00",
        events=[
            ("PAY-2", "2026-01-19 10:00", "add"),
            ("PAY-12", "2026-01-18 10:00", "add"),
            ("PAY-13", "2026-01-20 10:00", "add"),
        ],
    )


def test_catalogue_entries_match_metrics_md():
    expected = {
        "sprint-completion": ("Sprint completion (say/do)", "%", "higher"),
        "sprint-scope-change": ("Sprint scope change", "%", "lower"),
        "sprint-carry-over": ("Sprint carry-over", "items, %", "lower"),
    }
    for mid, (name, unit, better) in expected.items():
        m = CATALOGUE[mid]
        assert (m.name, m.unit, m.better, m.family) == (name, unit, better, "scrum")


def test_one_sprint_counts():
    db = new_db()
    sprint_one(db)
    r = run(db, "sprint-completion")
    assert r.value == 42.8571  # 3 / 7
    assert r.sample_size == 7  # items committed
    row = r.items[0]
    assert {
        k: row[k]
        for k in (
            "committed",
            "completed",
            "added",
            "removed",
            "in_sprint_at_end",
            "carried_over",
            "left_undone",
        )
    } == {
        "committed": 7,
        "completed": 3,
        "added": 3,
        "removed": 1,
        "in_sprint_at_end": 8,
        "carried_over": 4,
        "left_undone": 4,  # committed, not completed: {2, 3, 6, 7}
    }
    assert row["sprint"] == "Sprint 1"
    assert row["end"] == "2026-01-19T10:00:00Z"  # the close, not the planned end
    assert row["value"] == 42.8571
    assert r.extra["sprints"] == 1
    assert run(db, "sprint-scope-change").value == 57.1429  # (3 added + 1 removed) / 7
    carry = run(db, "sprint-carry-over")
    assert carry.value == 50.0  # 4 / 8
    assert carry.extra["carried_over"] == 4
    assert carry.sample_size == 8


def test_a_sprint_keeps_the_work_behind_its_counts():
    """The items behind each count, for naming them under a figure (metrics.behind): left undone (with
    the instant a removed one left), added (its first add after the start), carried over."""
    db = new_db()
    sprint_one(db)
    data = TeamData(db, team(), ts(NOW))
    [f], _ = sprint_figures(data, ts("2026-01-01 00:00"))
    assert f.undone == {"PAY-2": None, "PAY-3": ts("2026-01-08 10:00"), "PAY-6": None, "PAY-7": None}
    assert len(f.undone) == f.committed - f.completed
    assert f.added_at == {
        "PAY-4": ts("2026-01-07 10:00"),
        "PAY-5": ts("2026-01-07 10:00"),
        "PAY-11": ts("2026-01-08 10:00"),
    }
    assert len(f.added_at) == f.added
    assert sorted(f.carried) == ["PAY-11", "PAY-2", "PAY-6", "PAY-7"]
    assert len(f.carried) == f.carried_over


def test_two_sprints_are_pooled_and_series_by_sprint_end():
    db = new_db()
    sprint_one(db)
    sprint_two(db)
    r = run(db, "sprint-completion")
    assert r.value == 44.4444  # (3 + 1) / (7 + 2), not the mean of 42.9% and 50%
    assert [row["value"] for row in r.items] == [42.8571, 50.0]
    # sprint 1 ends in the week of 19 Jan, sprint 2 in the week of 26 Jan
    assert [p["value"] for p in r.series] == [None, None, 42.8571, 50.0]
    assert run(db, "sprint-scope-change").value == 55.5556  # (4 + 1) / 9
    assert run(db, "sprint-carry-over").value == 45.4545  # (4 + 1) / (8 + 3)
    assert r.extra["sprints"] == 2
    assert r.extra["committed"] == 9 and r.extra["completed"] == 4


def test_open_sprint_counts_once_its_end_date_has_passed_running_ones_do_not():
    db = new_db()
    item(db, "PAY-20", CREATED, done_at("2026-01-25 09:00"))
    item(db, "PAY-22", CREATED)
    item(db, "PAY-21", CREATED)
    # not closed, end date 30 Jan 00:00 passed; a removal after the end date is carry-over
    sprint(
        db,
        "3",
        "2026-01-19 00:00",
        "2026-01-30 00:00",
        events=[
            ("PAY-20", "2026-01-18 00:00", "add"),
            ("PAY-22", "2026-01-18 00:00", "add"),
            ("PAY-22", "2026-01-30 12:00", "remove"),
        ],
    )
    sprint(db, "4", "2026-01-26 00:00", "2026-02-01 00:00", events=[("PAY-21", "2026-01-25 00:00", "add")])
    r = run(db, "sprint-completion", now="2026-01-31 00:00")  # sprint 4 is still running
    assert [row["id"] for row in r.items] == ["3"]
    assert r.value == 50.0  # PAY-20 of {PAY-20, PAY-22}
    assert r.items[0]["closed"] is False
    assert r.items[0]["removed"] == 0 and r.items[0]["carried_over"] == 1
    later = run(db, "sprint-completion", now="2026-02-05 00:00")  # sprint 4's end has passed too
    assert later.value == 33.3333  # 1 of 3


def test_zero_commitment_gives_no_value():
    db = new_db()
    item(db, "PAY-1", CREATED, done_at("2026-01-08 09:00"))
    sprint(db, "1", "2026-01-05 09:00", "2026-01-19 09:00", complete="2026-01-19 09:00", events=[("PAY-1", "2026-01-06 10:00", "add")])  # fmt: skip
    r = run(db, "sprint-completion")
    assert r.value is None
    assert r.sample_size == 0
    assert r.items[0]["added"] == 1 and r.items[0]["value"] is None
    assert "no items committed at the start of the period's sprints" in r.notes
    assert run(db, "sprint-scope-change").value is None
    assert run(db, "sprint-carry-over").value == 0.0  # 0 not done of 1 in the sprint at its end


def test_no_sprints_no_value():
    r = run(new_db(), "sprint-completion")
    assert r.value is None and r.items == [] and r.previous is None
    assert [p["value"] for p in r.series] == [None, None, None, None]


def test_previous_window_sprint():
    db = new_db()
    item(db, "PAY-1", "2025-12-01 09:00", done_at("2025-12-12 09:00", start="2025-12-09 09:00"))
    item(db, "PAY-2", "2025-12-01 09:00")
    sprint(
        db,
        "0",
        "2025-12-08 09:00",
        "2025-12-22 09:00",
        complete="2025-12-22 09:00",
        events=[("PAY-1", "2025-12-07 09:00", "add"), ("PAY-2", "2025-12-07 09:00", "add")],
    )
    r = run(db, "sprint-completion")
    assert r.previous == 50.0  # 1 of 2
    assert r.value is None


def test_boards_select_the_sprints_and_other_projects_items_are_left_out():
    db = new_db()
    item(db, "PAY-1", CREATED, done_at("2026-01-10 09:00"))
    item(db, "PAY-2", CREATED)
    sprint(
        db,
        "A",
        "2026-01-05 09:00",
        "2026-01-19 09:00",
        complete="2026-01-19 09:00",
        board="7",
        events=[("PAY-1", "2026-01-04 10:00", "add"), ("OTHER-1", "2026-01-04 10:00", "add")],
    )
    sprint(
        db,
        "B",
        "2026-01-05 09:00",
        "2026-01-19 09:00",
        complete="2026-01-19 09:00",
        board="8",
        events=[("PAY-2", "2026-01-04 10:00", "add")],
    )
    r = run(db, "sprint-completion", boards=["7"])
    assert [row["id"] for row in r.items] == ["A"]
    assert r.value == 100.0  # PAY-1 of {PAY-1}; OTHER-1 not counted
    assert "items of other projects on the team's boards are left out" in r.notes
    both = run(db, "sprint-completion")  # no boards: every sprint holding a PAY item
    assert sorted(row["id"] for row in both.items) == ["A", "B"]
    assert both.value == 50.0  # PAY-1 done, PAY-2 not


def test_items_done_long_ago_count_done_and_unknown_items_are_left_out():
    db = new_db()
    # Done in Feb 2025 and untouched since: TeamData does not load it, yet it is done at the end.
    item(
        db, "PAY-30", "2025-01-01 09:00", [("2025-01-10 09:00", "In Progress"), ("2025-02-01 09:00", "Done")]
    )
    item(db, "PAY-31", CREATED)
    sprint(
        db,
        "1",
        "2026-01-05 09:00",
        "2026-01-19 09:00",
        complete="2026-01-19 09:00",
        events=[
            ("PAY-30", "2026-01-04 10:00", "add"),
            ("PAY-31", "2026-01-04 10:00", "add"),
            ("PAY-99", "2026-01-04 10:00", "add"),  # not in the store
        ],
    )
    r = run(db, "sprint-completion")
    assert r.items[0]["committed"] == 2
    assert r.value == 50.0  # PAY-30 of {PAY-30, PAY-31}
    assert "1 sprint item is deleted or not synced yet and left out" in r.notes


def test_fisher_signal_on_pooled_items():
    db = new_db()
    # Baseline sprint (in the 20 weeks before the window): 12 of 12 done. Window sprint: 0 of 12.
    base_events, now_events = [], []
    for n in range(12):
        item(db, f"PAY-{100 + n}", "2025-11-01 09:00", done_at("2025-11-20 09:00", start="2025-11-18 09:00"))
        base_events.append((f"PAY-{100 + n}", "2025-11-16 09:00", "add"))
        item(db, f"PAY-{200 + n}", CREATED)
        now_events.append((f"PAY-{200 + n}", "2026-01-04 09:00", "add"))
    sprint(db, "b", "2025-11-17 09:00", "2025-11-28 09:00", complete="2025-11-28 09:00", events=base_events)
    sprint(db, "w", "2026-01-05 09:00", "2026-01-16 09:00", complete="2026-01-16 09:00", events=now_events)
    r = run(db, "sprint-completion")
    assert r.value == 0.0
    # The sprints' and items' history begins the week of 17 Nov: the baseline is its 7 weeks.
    assert r.signal == "lower (worse) than the 7 weeks before (committed items in this period vs before)"
    assert r.signal_detail.startswith("Fisher's exact test, two-sided, α = 0.05: p < 0.001")
    assert r.signal_detail.endswith(
        "0.0% in this period (0 of 12) vs 100.0% in the 7 weeks before (12 of 12)"
    )
    assert run(db, "sprint-scope-change").signal is None  # unbounded ratio: no Fisher test


def test_replay_membership_rules():
    start, end = 100.0, 200.0

    def ev(*pairs):
        return [(float(at), c) for at, c in pairs]

    assert replay_membership(ev((50, "add")), start, end) == (True, True, False)
    assert replay_membership(ev((100, "add")), start, end) == (True, True, False)  # at the start
    assert replay_membership(ev((50, "add"), (150, "remove")), start, end) == (True, False, False)
    assert replay_membership(ev((50, "add"), (200, "remove")), start, end) == (True, True, False)  # at end
    assert replay_membership(ev((150, "add"), (160, "remove")), start, end) == (False, False, True)
    assert replay_membership(ev((50, "add"), (120, "remove"), (130, "add")), start, end) == (
        True,
        True,
        False,
    )
    assert replay_membership(ev((250, "add")), start, end) == (False, False, False)  # after the end
    assert replay_membership(ev((150, "remove"), (50, "add")), start, end) == (
        True,
        False,
        False,
    )  # unordered


def test_done_timelines_agree_with_the_workflow_replay():
    db = new_db()
    item(db, "PAY-1", CREATED, done_at("2026-01-10 09:00"))
    item(
        db, "PAY-2", CREATED, [*done_at("2026-01-10 09:00"), ("2026-01-10 09:00", "In Progress")]
    )  # same instant
    item(
        db, "PAY-3", CREATED, [("2026-01-04 09:00", "Done")], initial="Done"
    )  # created done, moves "to" done
    item(db, "PAY-4", CREATED, [("2026-01-05 09:00", "Unmapped"), ("2026-01-06 09:00", "Done")])
    item(db, "PAY-5", CREATED, status="Done")  # no history: created in its current status
    data = TeamData(db, team(), ts(NOW))
    keys = {("jira", f"PAY-{n}") for n in range(1, 6)}
    timelines = done_timelines(data, keys)
    flows = {(it.source, it.key): it.flow for it in data.items(0)}
    instants = [ts(t) for t in ("2026-01-02 08:00", "2026-01-02 09:00", "2026-01-05 12:00", "2026-01-10 09:00", "2026-02-01 00:00")]  # fmt: skip
    expected = {k: [flows[k].stage_at(t) == 4 for t in instants] for k in keys}
    assert {k: [status_done_at(timelines[k], t) for t in instants] for k in keys} == expected
    assert expected[("jira", "PAY-2")] == [False, False, False, False, False]  # left done at once
    assert expected[("jira", "PAY-1")] == [False, False, False, True, True]
    assert expected[("jira", "PAY-5")] == [False, True, True, True, True]
