"""A team's new workflow mapping applies to its whole history at the next computation: no resync,
no rewrite of stored rows."""

from datetime import UTC, datetime

from builders import item, new_db, team

from metrics.catalogue import compute
from metrics.teams import get_team, save_team
from metrics.timeutil import dates_window, zone

NOW = datetime(2026, 2, 1, tzinfo=UTC)


def counts(db) -> dict:
    return {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in ("work_items", "transitions")}


def pay_1(db) -> None:
    """Committed 5 Jan 09:00, In Review 6 Jan 09:00 (24 h), Done 8 Jan 09:00 (72 h after commitment)."""
    item(
        db,
        "PAY-1",
        "2026-01-04 09:00",
        [
            ("2026-01-05 09:00", "In Progress"),
            ("2026-01-06 09:00", "In Review"),
            ("2026-01-08 09:00", "Done"),
        ],
    )


def review_counts_as_done(db) -> None:
    """Team pay drops its review stage: In Review now maps to done."""
    t = get_team(db, "pay")
    t.workflow = [s for s in t.workflow if s["stage"] != "review"]
    t.workflow[-1] = {"stage": "done", "kind": "done", "statuses": ["Done", "In Review"]}
    save_team(db, t, who="U2")


def test_remapping_review_to_done_changes_cycle_time_without_touching_rows():
    db = new_db()
    save_team(db, team(), who="U1")
    pay_1(db)
    window = dates_window("2026-01-01", "2026-02-01", zone("UTC"))
    before = compute(db, get_team(db, "pay"), "cycle-time", window, NOW)
    assert before.value == {"p50": 72.0, "p85": 72.0}
    rows = counts(db)

    review_counts_as_done(db)

    after = compute(db, get_team(db, "pay"), "cycle-time", window, NOW)
    assert after.value == {"p50": 24.0, "p85": 24.0}  # done at the first entry to In Review
    assert counts(db) == rows


def stored_flows(db) -> dict[str, int]:
    """Stored flows (metrics.store.flows) per workflow fingerprint."""
    return dict(db.execute("select workflow, count(*) from flows group by workflow").fetchall())


def test_flows_stored_under_the_old_mapping_are_never_read_and_are_dropped_once_unused():
    db = new_db()
    save_team(db, team(), who="U1")
    save_team(db, team(name="pay-twin", channel="C2"), who="U1")  # same mapping, same scope
    pay_1(db)
    window = dates_window("2026-01-01", "2026-02-01", zone("UTC"))
    old = get_team(db, "pay").flow.fingerprint
    assert compute(db, get_team(db, "pay"), "cycle-time", window, NOW).value["p85"] == 72.0
    assert stored_flows(db) == {old: 1}

    review_counts_as_done(db)
    new = get_team(db, "pay").flow.fingerprint
    assert stored_flows(db) == {old: 1}  # the twin still uses the old mapping
    assert compute(db, get_team(db, "pay"), "cycle-time", window, NOW).value["p85"] == 24.0
    assert compute(db, get_team(db, "pay-twin"), "cycle-time", window, NOW).value["p85"] == 72.0
    assert stored_flows(db) == {old: 1, new: 1}

    twin = get_team(db, "pay-twin")
    twin.workflow = get_team(db, "pay").workflow
    save_team(db, twin, who="U3")
    assert stored_flows(db) == {new: 1}  # no team maps the old way any more
    assert compute(db, get_team(db, "pay-twin"), "cycle-time", window, NOW).value["p85"] == 24.0


def test_mapping_blocked_to_a_waiting_stage_keeps_the_figure_and_drops_the_note():
    """Time in an unmapped status already waits (docs/metrics.md); mapping it names the stage, so the
    figure stays and the note asking about it goes."""
    db = new_db()
    save_team(db, team(), who="U1")
    item(
        db,
        "PAY-1",
        "2026-01-04 09:00",
        [
            ("2026-01-05 09:00", "In Progress"),  # 24 h active
            ("2026-01-06 09:00", "Blocked"),  # 48 h blocked
            ("2026-01-08 09:00", "In Progress"),  # 24 h active
            ("2026-01-09 09:00", "Done"),
        ],
    )
    window = dates_window("2026-01-01", "2026-02-01", zone("UTC"))
    before = compute(db, get_team(db, "pay"), "flow-efficiency", window, NOW)
    assert before.value == 50.0
    waited = "items spent 2.0 d in Blocked, a status not mapped to a stage; that time counts as waiting"
    assert waited in before.notes

    t = get_team(db, "pay")
    t.workflow.insert(-1, {"stage": "blocked", "kind": "waiting", "statuses": ["Blocked"]})
    save_team(db, t, who="U2")

    after = compute(db, get_team(db, "pay"), "flow-efficiency", window, NOW)
    assert after.value == 50.0
    assert not [n for n in after.notes if "not mapped to a stage" in n]
    assert stored_flows(db) == {get_team(db, "pay").flow.fingerprint: 1}
