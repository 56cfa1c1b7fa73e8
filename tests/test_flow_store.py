"""Stored flows (metrics.store.flows): every figure the same as with a replay, and never a stale one.

All through the real loader (``TeamData``) on real SQLite databases: the sample history, hand-built
items, and the Jira normaliser's own writes.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
from builders import SRC, item, new_db, team, ts
from slackkit import NOW
from test_normalise import JIRA, jira_issue

from metrics import workflow as workflow_module
from metrics.catalogue import CATALOGUE
from metrics.dataset import TeamData
from metrics.normalise import ingest
from metrics.store import flows, open_db
from metrics.store.flows import StoredFlow
from metrics.store.tx import transaction
from metrics.teams import list_teams
from metrics.timeutil import dates_window, days_ending_today, zone
from metrics.workflow import Flow, Workflow

T0 = ts("2026-02-01 00:00")


def stored(db, key: str | None = None) -> int:
    if key is None:
        return db.execute("select count(*) from flows").fetchone()[0]
    return db.execute("select count(*) from flows where key = ?", [key]).fetchone()[0]


def flow_fields(flow: Flow) -> tuple:
    return (flow.stage_dates, flow.committed, flow.done, flow.timeline, flow.unmapped, flow.unmapped_time)


def item_fields(items) -> list[tuple]:
    return [
        (
            it.source,
            it.key,
            it.category,
            it.status,
            it.created,
            it.discarded,
            it.impediments,
            *flow_fields(it.flow),
        )
        for it in items
    ]


def went_back(flow: Flow) -> bool:
    stages = [s for _, s in flow.timeline if s is not None]
    return any(b < a for a, b in zip(stages, stages[1:], strict=False))


def by_key(db, t=None, start: float = 0.0) -> dict:
    return {it.key: it for it in TeamData(db, t or team(), T0).items(start)}


# -- the same figures ------------------------------------------------------------------------------------
@pytest.fixture
def sample(sample_db, tmp_path):
    path = tmp_path / "sample.db"
    shutil.copy(sample_db, path)
    return open_db(path)


def test_stored_flows_are_the_replayed_ones_for_every_sample_team(sample):
    checked, unmapped, waited, moved_back, unchanged = 0, 0, 0, 0, 0
    for t in list_teams(sample):
        fingerprint = t.flow.fingerprint
        sample.execute("delete from flows")
        replayed = TeamData(sample, t, NOW).items(0)
        assert replayed and all(type(it.flow) is Flow for it in replayed)
        count = "select count(*) from flows where workflow = ?"
        assert sample.execute(count, [fingerprint]).fetchone()[0] == len(replayed)  # stored by that load
        read = TeamData(sample, t, NOW).items(0)
        assert all(isinstance(it.flow, StoredFlow) for it in read)
        assert item_fields(read) == item_fields(replayed)
        assert read == replayed  # Item equality compares the flows too, stored against replayed
        checked += len(read)
        # The cases the encoding must carry: unmapped statuses (no stage), moves back (cleared
        # dates), items that never moved.
        unmapped += sum(bool(it.flow.unmapped) for it in read)
        waited += sum(bool(it.flow.unmapped_time) for it in read)  # in an unmapped status in its cycle
        moved_back += sum(went_back(it.flow) for it in read)
        unchanged += sum(len(it.flow.timeline) == 1 for it in read)
    assert checked > 1000 and unmapped > 30 and waited > 30 and moved_back > 100 and unchanged > 100


def test_every_catalogue_figure_is_the_same_read_from_stored_flows(sample):
    for t in list_teams(sample):
        window = days_ending_today(90, t.tz, NOW)
        read_from_store = []
        for metric_id, metric in CATALOGUE.items():
            sample.execute("delete from flows")
            replayed = metric.compute(TeamData(sample, t, NOW), window).to_json()
            read_from_store.append(stored(sample))  # what the second computation finds stored
            read = metric.compute(TeamData(sample, t, NOW), window).to_json()
            assert read == replayed, (t.name, metric_id)
        assert sum(n > 0 for n in read_from_store) >= 10  # the flow family, at least


# -- never stale -----------------------------------------------------------------------------------------
def test_a_changed_changelog_from_the_normaliser_is_replayed_again():
    db = new_db()
    flow = team(
        workflow=[
            {"stage": "backlog", "kind": "backlog", "statuses": ["Backlog"]},
            {"stage": "committed", "kind": "committed", "statuses": ["Selected for Development"]},
            {"stage": "in_progress", "kind": "active", "statuses": ["In Progress"]},
            {"stage": "review", "kind": "waiting", "statuses": ["In Review"]},
            {"stage": "done", "kind": "done", "statuses": ["Done"]},
        ]
    )
    # PAY-12 before its last history: committed 1 May 09:00 UTC, in review since 3 May, not done.
    issue = jira_issue()
    issue["changelog"]["histories"] = issue["changelog"]["histories"][1:]
    issue["fields"]["status"] = {"name": "In Review", "id": "10002"}
    ingest(db, "jira", "issue", "10042", None, issue, JIRA)
    first = by_key(db, flow)["PAY-12"].flow
    assert first.committed == ts("2024-05-01 09:00") and first.done is None
    assert stored(db, "PAY-12") == 1
    assert isinstance(by_key(db, flow)["PAY-12"].flow, StoredFlow)

    ingest(db, "jira", "issue", "10042", None, jira_issue(), JIRA)  # the next sync: moved to Done
    assert stored(db, "PAY-12") == 0  # forgotten in the sync's own transaction
    again = by_key(db, flow)["PAY-12"].flow
    assert type(again) is Flow and again.done == ts("2024-05-06 16:00")
    assert by_key(db, flow)["PAY-12"].flow.done == ts("2024-05-06 16:00")  # stored anew, then read


def two_items(db) -> None:
    item(
        db,
        "PAY-1",
        "2026-01-01 09:00",
        [("2026-01-02 09:00", "In Progress"), ("2026-01-05 09:00", "In Review")],
    )
    item(db, "PAY-2", "2026-01-01 09:00", [("2026-01-03 09:00", "In Progress")])


@pytest.mark.parametrize(
    "write",
    [
        "insert into transitions values ('jira', 'PAY-1', 'PAY', 9, 1767700000.0, 1, 2)",
        "update transitions set at = at + 60 where key = 'PAY-1' and seq = 1",
        "delete from transitions where key = 'PAY-1' and seq = 2",
        "update work_items set status = 'Done' where key = 'PAY-1'",
        "update work_items set status_id = '3' where key = 'PAY-1'",
        "update work_items set created = created - 60 where key = 'PAY-1'",
        "update work_items set project = 'PAY' where key = 'PAY-1'",
        "delete from work_items where key = 'PAY-1'",
    ],
)
def test_a_write_to_an_item_s_rows_forgets_its_flow_and_only_its(write):
    db = new_db()
    two_items(db)
    by_key(db)
    assert stored(db, "PAY-1") == stored(db, "PAY-2") == 1
    db.execute(write)
    assert stored(db, "PAY-1") == 0
    assert stored(db, "PAY-2") == 1


@pytest.mark.parametrize(
    "write",
    [
        "update work_items set summary = 'renamed', labels = '[\"x\"]' where key = 'PAY-1'",
        "update work_items set deleted = 1 where key = 'PAY-1'",
        "insert into flags values ('jira', 'PAY-1', 1767300000.0, null)",
    ],
)
def test_writes_a_flow_does_not_depend_on_keep_it(write):
    db = new_db()
    two_items(db)
    by_key(db)
    db.execute(write)
    assert stored(db, "PAY-1") == 1


@pytest.mark.parametrize(
    "write",
    [
        "update statuses set name = 'Code Review' where name = 'In Review'",
        "delete from statuses where name = 'In Review'",
        "insert into statuses values ('jira', 99, '', 'Blocked')",
    ],
)
def test_a_change_to_the_status_codes_forgets_the_source(write):
    db = new_db()
    two_items(db)
    by_key(db)
    db.execute(write)
    assert stored(db) == 0


def test_a_renamed_status_is_replayed_under_its_new_name():
    db = new_db()
    two_items(db)
    assert by_key(db)["PAY-1"].flow.unmapped == set()
    db.execute("update statuses set name = 'Code Review' where name = 'In Review'")
    assert by_key(db)["PAY-1"].flow.unmapped == {"Code Review"}


def test_an_item_without_transitions_follows_its_current_status():
    db = new_db()
    item(db, "PAY-1", "2026-01-01 09:00", status="In Progress")
    assert by_key(db)["PAY-1"].flow.committed == ts("2026-01-01 09:00")
    db.execute("update work_items set status = 'Done' where key = 'PAY-1'")
    moved = by_key(db)["PAY-1"].flow
    assert moved.done == ts("2026-01-01 09:00") and moved.committed is None  # closed without flow


def test_flows_replayed_from_a_snapshot_another_writer_moved_past_are_not_stored(tmp_path):
    path = tmp_path / "store.db"
    db = open_db(path)
    other = open_db(path)  # a sync in another process, say
    item(db, "PAY-1", "2026-01-01 09:00", [("2026-01-02 09:00", "In Progress")])
    flow = team().flow
    replayed = by_key(other)["PAY-1"].flow
    other.execute("delete from flows")
    with db.atomic():
        db.execute("select count(*) from transitions").fetchone()  # the read snapshot begins here
        item(other, "PAY-2", "2026-01-01 09:00", [("2026-01-02 09:00", "Done")])  # committed meanwhile
        assert flows.store(db, flow, [(SRC, "PAY-1", replayed)]) is False
    assert stored(db) == 0


def test_the_loader_stores_nothing_when_a_sync_commits_while_it_replays(tmp_path, monkeypatch):
    path = tmp_path / "store.db"
    db = open_db(path)
    other = open_db(path)
    item(db, "PAY-1", "2026-01-01 09:00", [("2026-01-02 09:00", "In Progress")])
    done = other.execute("select code from statuses where name = 'In Progress'").fetchone()[0] + 1
    other.execute("insert into statuses values ('jira', ?, '', 'Done')", [done])
    store = flows.store

    def sync_then_store(*args):  # the sync commits after the loader read the item, before it stores
        other.execute(
            "insert into transitions values ('jira', 'PAY-1', 'PAY', 2, ?, ?, ?)",
            [T0 - 86400, done - 1, done],
        )
        return store(*args)

    monkeypatch.setattr(flows, "store", sync_then_store)
    assert by_key(db)["PAY-1"].flow.done is None  # what the loader's snapshot held
    assert stored(db) == 0
    monkeypatch.undo()
    assert by_key(db)["PAY-1"].flow.done == T0 - 86400  # the next load replays the move
    assert by_key(db)["PAY-1"].flow.done == T0 - 86400 and stored(db) == 1


def test_a_held_write_lock_costs_the_store_not_the_figures(tmp_path):
    path = tmp_path / "store.db"
    db = open_db(path)
    item(db, "PAY-1", "2026-01-01 09:00", [("2026-01-02 09:00", "In Progress"), ("2026-01-04 09:00", "Done")])
    other = open_db(path)
    other.execute("begin immediate")  # a long sync holds the lock: the loader must not wait for it
    try:
        flow = by_key(db)["PAY-1"].flow
        assert (flow.committed, flow.done) == (ts("2026-01-02 09:00"), ts("2026-01-04 09:00"))
        assert stored(db) == 0
    finally:
        other.conn.rollback()
    by_key(db)
    assert stored(db) == 1


def test_storing_outside_the_reading_transaction_is_refused():
    db = new_db()
    flow = team().flow
    with pytest.raises(RuntimeError):
        flows.store(db, flow, [])


# -- the row format and the key --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flow",
    [
        Flow([1.0, None, 2.5, None, 9.0], 2.5, 9.0, [(1.0, 0), (2.5, 2), (3.0, None), (9.0, 4)], {"Blocked"}),
        Flow(
            [1.0, None, 2.5, None, 9.0],
            2.5,
            9.0,
            [(1.0, 0), (2.5, 2), (3.0, None), (4.0, 2), (5.0, None), (6.0, None), (9.0, 4), (10.0, None)],
            {"Blocked", "On Hold", "Archived"},  # Archived only after done: no time
            {"Blocked": 1.0, "On Hold": 1.0, "": 3.0},  # "": a status code with no name
        ),
        Flow([None] * 5, None, None, [(None, None)], {"Bloqué ✓", "On hold"}),  # no creation instant
        Flow([5.0, None, None, None, None], None, None, [], set()),
    ],
)
def test_a_stored_flow_reads_back_equal(flow):
    back = StoredFlow(*flows.encode(flow))
    assert flow_fields(back) == flow_fields(flow)
    assert back == flow and flow == back
    assert back != Flow(flow.stage_dates, flow.committed, 1e9, flow.timeline, flow.unmapped)
    if flow.unmapped_time:
        assert back != Flow(flow.stage_dates, flow.committed, flow.done, flow.timeline, flow.unmapped)


def test_flows_stored_by_replay_version_1_are_replayed_again(monkeypatch):
    """Version 1 kept no time per unmapped status (its ``unmapped`` was a JSON list of names). A
    database holding its flows must give version 2's figure and note: the old rows carry the old
    fingerprint, so they are never read, and the item is replayed and stored anew."""
    db = new_db()
    item(
        db,
        "PAY-1",
        "2026-01-05 00:00",
        [
            ("2026-01-05 00:00", "In Progress"),
            ("2026-01-05 02:00", "Blocked"),
            ("2026-01-05 06:00", "In Progress"),
            ("2026-01-05 08:00", "Done"),
        ],
    )
    with monkeypatch.context() as m:
        m.setattr(workflow_module, "REPLAY_VERSION", 1)
        v1 = Workflow.from_list(team().workflow).fingerprint
    committed, done, dates, timeline, _ = flows.encode(by_key(db)["PAY-1"].flow)
    db.execute("delete from flows")
    db.execute(
        "insert into flows values (?, ?, ?, ?, ?, ?, ?, ?)",
        [v1, SRC, "PAY-1", committed, done, dates, timeline, '["Blocked"]'],  # as version 1 wrote it
    )
    window = dates_window("2026-01-01", "2026-02-01", zone("UTC"))
    result = CATALOGUE["flow-efficiency"].compute(TeamData(db, team(), T0), window)
    assert result.value == 50.0  # 4 h in progress of 8 h: the 4 h in Blocked wait
    assert (
        "items spent 4.0 h in Blocked, a status not mapped to a stage; that time counts as waiting"
        in result.notes
    )
    rows = dict(db.execute("select workflow, unmapped from flows").fetchall())
    assert rows == {v1: '["Blocked"]', team().flow.fingerprint: '{"Blocked": 14400.0}'}


def test_the_fingerprint_names_the_mapping_and_the_replay_rules(monkeypatch):
    rows = team().workflow
    base = Workflow.from_list(rows)
    assert Workflow.from_list([dict(r) for r in rows]).fingerprint == base.fingerprint
    changed = [
        [r | {"statuses": ["In Review", "QA"]} if r["stage"] == "review" else r for r in rows],
        [r | {"kind": "active"} if r["stage"] == "review" else r for r in rows],
        [r for r in rows if r["stage"] != "committed"],
        [rows[0], rows[2], rows[1], *rows[3:]],
    ]
    prints = {Workflow.from_list(c).fingerprint for c in changed}
    assert len(prints) == len(changed) and base.fingerprint not in prints
    monkeypatch.setattr(workflow_module, "REPLAY_VERSION", workflow_module.REPLAY_VERSION + 1)
    assert Workflow.from_list(rows).fingerprint != base.fingerprint


def test_now_does_not_enter_a_stored_flow():
    """A flow depends on the item's rows and the mapping only, so it can be shared across instants."""
    db = new_db()
    item(db, "PAY-1", "2026-01-01 09:00", [("2026-01-02 09:00", "In Progress")])
    early = TeamData(db, team(), ts("2026-01-03 00:00")).items(0)[0].flow
    late = TeamData(db, team(), datetime(2026, 6, 1, tzinfo=UTC)).items(0)[0].flow
    assert isinstance(late, StoredFlow) and late == early


def test_a_writer_that_reads_first_is_not_failed_by_a_command_storing_flows(tmp_path):
    """Writers take the write lock before their first read (``metrics.store.tx``): a command storing
    flows in between cannot make them fail. With a deferred ``BEGIN``, the command's commit left the
    writer's read snapshot stale, and SQLite refused its first write at once ("database is locked")."""
    path = tmp_path / "store.db"
    sync, command = open_db(path), open_db(path)
    item(sync, "PAY-1", "2026-01-01 09:00", [("2026-01-02 09:00", "In Progress")])
    with transaction(sync):
        sync.execute("select count(*) from raw").fetchone()  # reads first, as save_raw does
        assert "PAY-1" in by_key(command)  # the command's figures stand, without waiting
        assert stored(command) == 0  # but it could not store its flows: the writer holds the lock
        ingest(sync, "jira", "issue", "10042", None, jira_issue(), JIRA)
    assert sync.execute("select count(*) from raw where kind = 'issue'").fetchone()[0] == 1
    by_key(command)
    assert stored(command) > 0
