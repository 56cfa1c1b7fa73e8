"""Stage dates by docs/metrics.md rules 1-6, on exact instants (metrics.workflow.replay)."""

from __future__ import annotations

import pytest
from builders import item, new_db, team, ts

from metrics.dataset import TeamData
from metrics.errors import VsmError
from metrics.workflow import Transition, Workflow, active_seconds, replay

H = 3600.0
WF = Workflow.from_list(team().workflow)  # backlog, committed, in_progress (active), review (waiting), done
BACKLOG, COMMITTED, IN_PROGRESS, REVIEW, DONE = range(5)


def moves(initial: str, steps: list[tuple[str, str]]) -> list[Transition]:
    """A chain of status changes from ``initial``; seq follows the list order."""
    out, prev = [], initial
    for seq, (at, to) in enumerate(steps, start=1):
        out.append(Transition(ts(at), seq, None, prev, None, to))
        prev = to
    return out


def flow_of(created: str, initial: str, steps: list[tuple[str, str]], wf: Workflow = WF):
    trans = moves(initial, steps)
    current = steps[-1][1] if steps else initial
    return replay(wf, ts(created), None, current, trans)


# -- the worked example of docs/metrics.md -------------------------------------------------------------------
def test_worked_example_backfills_committed_from_first_dated_in_flow_stage():
    f = flow_of(
        "2026-01-01 09:00",
        "Backlog",
        [
            ("2026-01-02 10:00", "Selected"),
            ("2026-01-03 12:00", "In Progress"),
            ("2026-01-04 00:00", "Backlog"),  # clears Selected and In Progress
            ("2026-01-05 08:00", "In Progress"),
            ("2026-01-06 18:00", "Done"),
        ],
    )
    # Selected was cleared and never re-entered: committed = In Progress's date, 5 Jan 08:00.
    assert f.committed == ts("2026-01-05 08:00")
    assert f.done == ts("2026-01-06 18:00")
    # backlog keeps its first entry (1 Jan 09:00): entering a stage clears only *later* ones.
    assert f.stage_dates == [
        ts("2026-01-01 09:00"),
        None,
        ts("2026-01-05 08:00"),
        None,
        ts("2026-01-06 18:00"),
    ]
    # cycle time: 6 Jan 18:00 - 5 Jan 08:00 = 24 h + 10 h = 34 h (= 1.4 d)
    assert (f.done - f.committed) / H == 34.0
    # lead time: 6 Jan 18:00 - 1 Jan 09:00 = 5 d 9 h = 129 h = 5.375 d, shown half-up as 5.4 d
    assert (f.done - ts("2026-01-01 09:00")) / H == 129.0
    assert (f.done - ts("2026-01-01 09:00")) / 86400 == 5.375
    assert not f.closed_without_flow


# -- rule 1: initial status ---------------------------------------------------------------------------------
def test_initial_status_is_first_changes_from_at_created():
    # Created straight into Selected (the first change's `from`): committed at creation.
    f = flow_of("2026-01-01 09:00", "Selected", [("2026-01-02 09:00", "In Progress")])
    assert f.committed == ts("2026-01-01 09:00")
    assert f.stage_dates[COMMITTED] == ts("2026-01-01 09:00")
    assert f.stage_dates[IN_PROGRESS] == ts("2026-01-02 09:00")
    assert f.done is None


def test_item_without_transitions_starts_in_its_current_status():
    f = replay(WF, ts("2026-01-01 09:00"), None, "In Progress", [])
    assert f.committed == ts("2026-01-01 09:00")
    assert f.done is None
    assert f.timeline == [(ts("2026-01-01 09:00"), IN_PROGRESS)]


def test_item_without_transitions_in_backlog_has_no_dates_but_backlog():
    f = replay(WF, ts("2026-01-01 09:00"), None, "Backlog", [])
    assert f.stage_dates == [ts("2026-01-01 09:00"), None, None, None, None]
    assert f.committed is None and f.done is None and not f.closed_without_flow


def test_first_change_from_wins_over_current_status_for_the_initial_stage():
    # current status says Done, but the history says it started in Selected.
    trans = moves("Selected", [("2026-01-02 09:00", "Done")])
    f = replay(WF, ts("2026-01-01 09:00"), None, "Done", trans)
    assert f.committed == ts("2026-01-01 09:00")  # not the Done date
    assert f.done == ts("2026-01-02 09:00")


# -- rule 2: first entry wins; time order, ties by changelog seq ------------------------------------------
def test_first_entry_to_a_stage_wins():
    f = flow_of(
        "2026-01-01 09:00",
        "Backlog",
        [
            ("2026-01-02 09:00", "In Progress"),
            ("2026-01-03 09:00", "In Review"),
            ("2026-01-04 09:00", "In Progress"),  # back to in progress: its date stays 2 Jan, review cleared
            ("2026-01-05 09:00", "In Review"),
            ("2026-01-06 09:00", "Done"),
        ],
    )
    assert f.stage_dates[IN_PROGRESS] == ts("2026-01-02 09:00")
    assert f.stage_dates[REVIEW] == ts("2026-01-05 09:00")  # re-set after being cleared
    assert f.committed == ts("2026-01-02 09:00")
    assert f.done == ts("2026-01-06 09:00")


def test_changes_replay_in_time_order_not_list_order():
    trans = list(
        reversed(moves("Backlog", [("2026-01-02 09:00", "In Progress"), ("2026-01-03 09:00", "Done")]))
    )
    f = replay(WF, ts("2026-01-01 09:00"), None, "Done", trans)
    assert f.committed == ts("2026-01-02 09:00")
    assert f.done == ts("2026-01-03 09:00")


def test_ties_in_time_are_ordered_by_changelog_seq():
    at = ts("2026-01-03 09:00")
    # Same instant: seq 2 moves to Done, seq 3 reopens. Given in the wrong list order on purpose.
    trans = [
        Transition(at, 3, None, "Done", None, "In Progress"),
        Transition(at, 2, None, "In Progress", None, "Done"),
        Transition(ts("2026-01-02 09:00"), 1, None, "Backlog", None, "In Progress"),
    ]
    f = replay(WF, ts("2026-01-01 09:00"), None, "In Progress", trans)
    assert f.done is None  # the reopening (seq 3) came last
    # The other way round (seq 2 reopens, seq 3 closes): done at that instant.
    trans2 = [
        Transition(at, 2, None, "Done", None, "In Progress"),
        Transition(at, 3, None, "In Progress", None, "Done"),
        Transition(ts("2026-01-02 09:00"), 1, None, "Backlog", None, "In Progress"),
    ]
    f2 = replay(WF, ts("2026-01-01 09:00"), None, "Done", trans2)
    assert f2.done == at


# -- rule 3: a move backwards clears later stages -------------------------------------------------------
def test_move_back_to_backlog_clears_committed_and_in_progress():
    f = flow_of(
        "2026-01-01 09:00",
        "Backlog",
        [
            ("2026-01-02 09:00", "Selected"),
            ("2026-01-03 09:00", "In Progress"),
            ("2026-01-04 09:00", "Backlog"),
        ],
    )
    assert f.stage_dates == [ts("2026-01-01 09:00"), None, None, None, None]
    assert f.committed is None  # progress before the move back is lost


# -- rule 4: committed back-filled when the committed stage is skipped ------------------------------------
def test_skipped_committed_stage_starts_at_first_in_progress_stage_reached():
    f = flow_of(
        "2026-01-01 09:00", "Backlog", [("2026-01-02 09:00", "In Review"), ("2026-01-03 09:00", "Done")]
    )
    assert f.stage_dates[COMMITTED] is None
    assert f.stage_dates[IN_PROGRESS] is None
    assert f.committed == ts("2026-01-02 09:00")  # the waiting "review" stage, first dated in-flow stage


def test_committed_prefers_the_committed_stage_when_dated():
    f = flow_of(
        "2026-01-01 09:00",
        "Backlog",
        [("2026-01-02 09:00", "Selected"), ("2026-01-03 09:00", "In Progress"), ("2026-01-04 09:00", "Done")],
    )
    assert f.committed == ts("2026-01-02 09:00")


def test_dated_stages_are_never_decreasing_in_stage_order():
    f = flow_of(
        "2026-01-01 09:00",
        "Backlog",
        [
            ("2026-01-02 09:00", "In Review"),
            ("2026-01-03 09:00", "Selected"),  # back: clears review
            ("2026-01-04 09:00", "In Progress"),
            ("2026-01-05 09:00", "Done"),
        ],
    )
    dated = [d for d in f.stage_dates if d is not None]
    assert dated == sorted(dated)
    assert f.committed == ts("2026-01-03 09:00")


# -- rule 5: done iff the done stage is dated after the replay ------------------------------------------
def test_item_that_left_done_is_not_done():
    f = flow_of(
        "2026-01-01 09:00",
        "Backlog",
        [
            ("2026-01-02 09:00", "In Progress"),
            ("2026-01-03 09:00", "Done"),
            ("2026-01-04 09:00", "In Progress"),
        ],
    )
    assert f.done is None
    assert f.committed == ts("2026-01-02 09:00")  # still in WIP


def test_reopened_item_uses_the_final_done():
    f = flow_of(
        "2026-01-01 09:00",
        "Backlog",
        [
            ("2026-01-02 09:00", "In Progress"),
            ("2026-01-03 09:00", "Done"),
            ("2026-01-04 09:00", "In Progress"),
            ("2026-01-06 09:00", "Done"),
        ],
    )
    assert f.done == ts("2026-01-06 09:00")
    assert f.committed == ts("2026-01-02 09:00")  # first entry to in progress still wins


def test_item_reopened_to_backlog_then_closed_is_closed_without_flow():
    f = flow_of(
        "2026-01-01 09:00",
        "Backlog",
        [("2026-01-02 09:00", "In Progress"), ("2026-01-03 09:00", "Backlog"), ("2026-01-04 09:00", "Done")],
    )
    assert f.done == ts("2026-01-04 09:00")
    assert f.committed is None
    assert f.closed_without_flow


# -- rule 6: closed without flow --------------------------------------------------------------------------
def test_backlog_straight_to_done_is_closed_without_flow():
    f = flow_of("2026-01-01 09:00", "Backlog", [("2026-01-02 09:00", "Done")])
    assert f.done == ts("2026-01-02 09:00")
    assert f.committed is None
    assert f.closed_without_flow


def test_created_as_done_is_closed_without_flow_done_at_creation():
    f = replay(WF, ts("2026-01-01 09:00"), None, "Done", [])
    assert f.done == ts("2026-01-01 09:00")
    assert f.committed is None
    assert f.closed_without_flow


def test_open_item_is_not_closed_without_flow():
    f = flow_of("2026-01-01 09:00", "Backlog", [("2026-01-02 09:00", "Selected")])
    assert not f.closed_without_flow


# -- status matching and unmapped statuses ------------------------------------------------------------------
def test_unmapped_statuses_are_ignored_and_reported():
    f = flow_of(
        "2026-01-01 09:00",
        "Backlog",
        [
            ("2026-01-02 09:00", "In Progress"),
            ("2026-01-03 09:00", "Blocked"),  # unmapped: no stage date changes
            ("2026-01-04 09:00", "In Progress"),
            ("2026-01-05 09:00", "Done"),
            ("2026-01-06 09:00", "Archived"),  # unmapped after done: still done
        ],
    )
    assert f.unmapped == {"Blocked", "Archived"}
    assert f.committed == ts("2026-01-02 09:00")
    assert f.done == ts("2026-01-05 09:00")
    assert f.stage_dates == [
        ts("2026-01-01 09:00"),
        None,
        ts("2026-01-02 09:00"),
        None,
        ts("2026-01-05 09:00"),
    ]


def test_status_names_match_case_insensitively():
    f = flow_of(
        "2026-01-01 09:00", "BACKLOG", [("2026-01-02 09:00", "in progress"), ("2026-01-03 09:00", " DONE ")]
    )
    assert f.unmapped == set()
    assert f.committed == ts("2026-01-02 09:00")
    assert f.done == ts("2026-01-03 09:00")


def test_status_id_matches_before_name():
    wf = Workflow.from_list(
        [
            {"stage": "backlog", "kind": "backlog", "statuses": ["Backlog", "1"]},
            {"stage": "doing", "kind": "active", "statuses": ["In Progress", "3"]},
            {"stage": "review", "kind": "waiting", "statuses": ["In Review", "10042"]},
            {"stage": "done", "kind": "done", "statuses": ["Done", "6"]},
        ]
    )
    # id 10042 is review although the name says In Progress: the id wins.
    assert wf.stage_index("10042", "In Progress") == 2
    # an unknown id falls back to the name
    assert wf.stage_index("99999", "in progress") == 1
    # a status renamed in the tool ("Doing") still maps by its id
    trans = [
        Transition(ts("2026-01-02 09:00"), 1, "1", "Backlog", "3", "Doing"),
        Transition(ts("2026-01-03 09:00"), 2, "3", "Doing", "6", "Finished"),
    ]
    f = replay(wf, ts("2026-01-01 09:00"), "6", "Finished", trans)
    assert f.committed == ts("2026-01-02 09:00")
    assert f.done == ts("2026-01-03 09:00")
    assert f.unmapped == set()


def test_workflow_rejects_a_status_in_two_stages():
    rows = [dict(r) for r in team().workflow]
    rows[2] = {**rows[2], "statuses": ["In Progress", "Selected"]}
    with pytest.raises(VsmError, match="mapped to both"):
        Workflow.from_list(rows)


# -- stage_at and active time -----------------------------------------------------------------------------
def test_stage_at_walks_the_timeline():
    f = flow_of(
        "2026-01-01 09:00", "Backlog", [("2026-01-02 09:00", "In Progress"), ("2026-01-03 09:00", "Done")]
    )
    assert f.stage_at(ts("2026-01-01 08:00")) is None  # before creation
    assert f.stage_at(ts("2026-01-01 09:00")) == BACKLOG
    assert f.stage_at(ts("2026-01-02 12:00")) == IN_PROGRESS
    assert f.stage_at(ts("2026-01-03 09:00")) == DONE


def test_active_seconds_counts_only_active_stages_between_committed_and_done():
    f = flow_of(
        "2026-01-01 00:00",
        "Backlog",
        [
            ("2026-01-01 10:00", "Selected"),  # committed (waiting)
            ("2026-01-01 12:00", "In Progress"),  # active 12:00-16:00 = 4 h
            ("2026-01-01 16:00", "In Review"),  # waiting 16:00-18:00
            ("2026-01-01 18:00", "In Progress"),  # active 18:00-19:00 = 1 h
            ("2026-01-01 19:00", "Done"),
        ],
    )
    assert active_seconds(WF, f) == 5 * H  # 4 h + 1 h of a 9 h cycle


def test_active_seconds_subtracts_impediments_once_even_when_they_overlap():
    f = flow_of(
        "2026-01-01 00:00",
        "Backlog",
        [("2026-01-01 10:00", "In Progress"), ("2026-01-01 20:00", "Done")],
    )
    blocked = [
        (ts("2026-01-01 12:00"), ts("2026-01-01 15:00")),
        (ts("2026-01-01 14:00"), ts("2026-01-01 16:00")),
    ]
    # 10 h active; flags cover 12:00-16:00 once = 4 h -> 6 h (not 10 - 3 - 2 = 5 h)
    assert active_seconds(WF, f, blocked) == 6 * H
    # a flag reaching outside the cycle only counts inside it: 08:00-11:00 overlaps 10:00-11:00 = 1 h
    assert active_seconds(WF, f, [(ts("2026-01-01 08:00"), ts("2026-01-01 11:00"))]) == 9 * H


def test_active_seconds_counts_an_unmapped_status_after_commitment_as_waiting():
    f = flow_of(
        "2026-01-01 00:00",
        "Backlog",
        [
            ("2026-01-01 10:00", "In Progress"),  # active 10:00-12:00 = 2 h
            ("2026-01-01 12:00", "Blocked"),  # unmapped: waiting 12:00-16:00 = 4 h
            ("2026-01-01 16:00", "In Progress"),  # active 16:00-17:00 = 1 h
            ("2026-01-01 17:00", "Done"),
        ],
    )
    # Stage dates ignore Blocked (committed 10:00, done 17:00); time-in-stage does not.
    assert (f.committed, f.done) == (ts("2026-01-01 10:00"), ts("2026-01-01 17:00"))
    assert active_seconds(WF, f) == 3 * H  # 2 h + 1 h of a 7 h cycle, not 7 h
    assert f.unmapped_time == {"Blocked": 4 * H}


def test_unmapped_time_adds_up_per_status_inside_the_cycle_only():
    f = flow_of(
        "2026-01-01 00:00",
        "Backlog",
        [
            ("2026-01-01 01:00", "On Hold"),  # before commitment: not in the cycle
            ("2026-01-01 03:00", "In Progress"),  # committed
            ("2026-01-01 04:00", "Blocked"),  # 1 h
            ("2026-01-01 05:00", "In Review"),
            ("2026-01-01 06:00", "Blocked"),  # 30 min
            ("2026-01-01 06:30", "On Hold"),  # 1 h 30
            ("2026-01-01 08:00", "Done"),
            ("2026-01-02 08:00", "Archived"),  # after done: not in the cycle
        ],
    )
    assert f.committed == ts("2026-01-01 03:00") and f.done == ts("2026-01-01 08:00")
    assert f.unmapped_time == {"Blocked": 1.5 * H, "On Hold": 1.5 * H}
    assert f.unmapped == {"On Hold", "Blocked", "Archived"}
    assert active_seconds(WF, f) == 1 * H  # 03:00-04:00 only: review and the unmapped spans wait


def test_an_unmapped_status_before_commitment_does_not_count():
    f = flow_of(
        "2026-01-01 00:00",
        "Backlog",
        [("2026-01-01 01:00", "Blocked"), ("2026-01-01 09:00", "In Progress"), ("2026-01-01 12:00", "Done")],
    )
    assert f.committed == ts("2026-01-01 09:00")
    assert f.unmapped_time == {}
    assert active_seconds(WF, f) == 3 * H  # the whole cycle


def test_unmapped_time_is_kept_only_for_items_that_flowed_to_done():
    still_blocked = flow_of(
        "2026-01-01 00:00", "Backlog", [("2026-01-01 01:00", "In Progress"), ("2026-01-01 02:00", "Blocked")]
    )
    assert still_blocked.unmapped == {"Blocked"} and still_blocked.unmapped_time == {}


def test_active_seconds_is_zero_for_items_not_done_or_never_committed():
    open_item = flow_of("2026-01-01 00:00", "Backlog", [("2026-01-01 10:00", "In Progress")])
    no_flow = flow_of("2026-01-01 00:00", "Backlog", [("2026-01-01 10:00", "Done")])
    assert active_seconds(WF, open_item) == 0.0
    assert active_seconds(WF, no_flow) == 0.0


# -- the loader replays the same way ----------------------------------------------------------------------
def test_team_data_replays_stored_history_and_discards():
    db = new_db()
    item(
        db,
        "PAY-1",
        "2026-01-01 09:00",
        [("2026-01-02 10:00", "Selected"), ("2026-01-03 12:00", "Done")],
        resolution="Won't Do",
    )
    item(db, "PAY-2", "2026-01-01 09:00", [("2026-01-02 10:00", "Blocked")])
    data = TeamData(db, team(), ts("2026-02-01 00:00"))
    by_key = {it.key: it for it in data.items(ts("2026-01-01 00:00"))}
    assert by_key["PAY-1"].flow.committed == ts("2026-01-02 10:00")
    assert by_key["PAY-1"].flow.done == ts("2026-01-03 12:00")
    assert by_key["PAY-1"].discarded
    assert by_key["PAY-2"].flow.unmapped == {"Blocked"}
    assert data.unmapped_statuses(ts("2026-01-01 00:00")) == ["Blocked"]
