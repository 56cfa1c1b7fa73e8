"""The flow family (metrics.catalogue.flow), each figure hand-computed from a small history."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from builders import deploy, item, new_db, pr, team, ts

from metrics.catalogue import CATALOGUE
from metrics.catalogue.flow import METRICS
from metrics.dataset import TeamData
from metrics.timeutil import dates_window, zone

NY = "America/New_York"


def run(db, metric: str, since: str, until: str, now: str, **team_kw):
    t = team(**team_kw)
    return CATALOGUE[metric].compute(TeamData(db, t, ts(now)), dates_window(since, until, zone(t.timezone)))


def flowed(db, key: str, committed: str, done: str | None, *, created: str | None = None, **kw) -> None:
    """Created (default: at commitment) in Backlog, In Progress at ``committed``, Done at ``done``."""
    steps = [(committed, "In Progress")] + ([(done, "Done")] if done else [])
    item(db, key, created or committed, steps, **kw)


def values(result) -> list:
    return [p["value"] for p in result.series]


# -- the catalogue entries ----------------------------------------------------------------------------------
def test_catalogue_entries_match_metrics_md():
    got = {m.id: (m.name, m.unit, m.better, m.family) for m in METRICS}
    assert got == {
        "cycle-time": ("Cycle time", "duration", "lower", "flow"),
        "lead-time": ("Lead time", "duration", "lower", "flow"),
        "throughput": ("Throughput", "items/week", "higher", "flow"),
        "wip": ("Work in progress", "items", "context", "flow"),
        "aging-wip": ("Aging WIP", "items, duration", "lower", "flow"),
        "flow-efficiency": ("Flow efficiency", "%", "higher", "flow"),
        "flow-distribution": ("Flow distribution", "% by type", "context", "flow"),
        "flow-load": ("Flow load", "items", "context", "flow"),
        "net-flow": ("Net flow", "items/week", "≈ 0", "flow"),
        "time-to-value": ("Time to value", "duration", "lower", "flow"),
    }
    assert all(m.definition and "\n" not in m.definition for m in METRICS)
    assert [m.entry()["id"] for m in METRICS] == list(got)


# -- cycle time -------------------------------------------------------------------------------------------
def cycle_db():
    db = new_db()
    flowed(db, "PAY-1", "2026-02-02 00:00", "2026-02-02 01:00")  # 1 h, week of 2 Feb
    flowed(db, "PAY-2", "2026-02-03 00:00", "2026-02-03 02:00")  # 2 h
    flowed(db, "PAY-3", "2026-02-04 00:00", "2026-02-04 03:00")  # 3 h
    flowed(db, "PAY-4", "2026-02-10 00:00", "2026-02-10 04:00")  # 4 h, week of 9 Feb
    flowed(db, "PAY-5", "2026-02-11 00:00", "2026-02-11 10:00")  # 10 h
    item(db, "PAY-6", "2026-02-01 00:00", [("2026-02-05 00:00", "Done")])  # closed without flow
    flowed(db, "PAY-7", "2026-02-05 00:00", "2026-02-06 00:00", resolution="Won't Do")  # discarded
    # clock skew: created 10:00 in Selected, moved to Done at 09:00 -> cycle -1 h
    item(db, "PAY-8", "2026-02-07 10:00", [("2026-02-07 09:00", "Done")], initial="Selected")
    flowed(db, "PAY-9", "2026-02-15 00:00", "2026-02-16 00:00")  # done at the window end: next window
    flowed(db, "PAY-10", "2026-01-30 00:00", "2026-01-30 05:00")  # previous window, 5 h
    flowed(db, "PAY-11", "2026-02-03 00:00", None)  # open
    return db


def test_cycle_time_percentiles_and_exclusions():
    r = run(cycle_db(), "cycle-time", "2026-02-02", "2026-02-16", "2026-03-01 00:00")
    # [1, 2, 3, 4, 10] h: p50 = 3; p85: h = 4 * 0.85 = 3.4 -> 4 + 0.4 * (10 - 4) = 6.4
    assert r.value == {"p50": 3.0, "p85": 6.4}
    assert r.sample_size == 5
    assert [i["key"] for i in r.items] == ["PAY-1", "PAY-2", "PAY-3", "PAY-4", "PAY-5"]
    assert r.items[0] == {
        "key": "PAY-1",
        "start": "2026-02-02T00:00:00Z",
        "end": "2026-02-02T01:00:00Z",
        "hours": 1.0,
        "url": "https://jira.example/browse/PAY-1",
    }
    assert r.notes == [
        "1 item went straight from Backlog to Done and is not in cycle time",
        "1 item closed as discarded (Won't Do, Duplicate and the like) is not in cycle time",
        "1 item finished before it started (clock skew or bad data) is left out",
    ]
    # week of 2 Feb: median(1, 2, 3) = 2, p85 2 + 0.7 = 2.7; week of 9 Feb: median(4, 10) = 7, p85 9.1
    assert r.series == [
        {"week": "2026-02-02", "value": 2.0, "p85": 2.7},
        {"week": "2026-02-09", "value": 7.0, "p85": 9.1},
    ]
    # PAY-10 alone (5 h) was done the week before, but the history's first week is PAY-10's own (its
    # last change): the previous period begins before it, so its figure is unknown, not PAY-10's.
    assert (r.previous, r.previous_note) == (None, "no earlier data")


def test_cycle_time_empty_window_has_no_value_never_zero():
    r = run(cycle_db(), "cycle-time", "2026-03-02", "2026-03-09", "2026-04-01 00:00")
    assert r.value is None
    assert r.sample_size == 0
    assert values(r) == [None]
    assert r.notes == []


def test_cycle_time_is_exact_seconds_across_a_dst_change():
    db = new_db()
    # Sat 7 Mar 12:00 EST (UTC-5) -> Sun 8 Mar 12:00 EDT (UTC-4): one calendar day but 23 h
    flowed(db, "PAY-1", "2026-03-07 12:00-05:00", "2026-03-08 12:00-04:00")
    r = run(db, "cycle-time", "2026-03-02", "2026-03-09", "2026-04-01 00:00", timezone=NY)
    assert r.value == {"p50": 23.0, "p85": 23.0}
    assert r.notes == ["low sample: only 1 item"]


def test_cycle_time_notes_unmapped_statuses():
    db = new_db()
    item(
        db,
        "PAY-1",
        "2026-02-02 00:00",
        [("2026-02-02 01:00", "In Progress"), ("2026-02-02 02:00", "Blocked"), ("2026-02-02 05:00", "Done")],
    )
    r = run(db, "cycle-time", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    assert r.value == {"p50": 4.0, "p85": 4.0}  # 01:00 -> 05:00; Blocked ignored
    assert "Blocked is not mapped to a stage, so moves into it do not change an item's stage" in r.notes


# -- lead time -------------------------------------------------------------------------------------------
def test_lead_time_counts_closed_without_flow_and_discarded_items():
    db = new_db()
    flowed(db, "PAY-1", "2026-02-02 00:00", "2026-02-03 00:00", created="2026-02-01 00:00")  # 48 h
    item(db, "PAY-2", "2026-02-03 00:00", [("2026-02-03 12:00", "Done")])  # closed without flow, 12 h
    flowed(
        db,
        "PAY-3",
        "2026-02-02 06:00",
        "2026-02-05 00:00",
        created="2026-02-02 00:00",
        resolution="Duplicate",
    )
    item(db, "PAY-4", "2026-02-07 10:00", [("2026-02-07 09:00", "Done")], initial="Selected")  # -1 h
    r = run(db, "lead-time", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    # [12, 48, 72] h: p50 = 48; p85: h = 2 * 0.85 = 1.7 -> 48 + 0.7 * 24 = 64.8
    assert r.value == {"p50": 48.0, "p85": 64.8}
    assert [(i["key"], i["hours"]) for i in r.items] == [("PAY-1", 48.0), ("PAY-2", 12.0), ("PAY-3", 72.0)]
    assert r.items[1]["closed_without_flow"] is True
    assert r.items[2]["discarded"] is True
    assert "closed_without_flow" not in r.items[0] and "discarded" not in r.items[0]
    assert r.notes == [
        "1 item went straight from Backlog to Done; lead time counts it all the same",
        "1 item closed as discarded (Won't Do, Duplicate and the like); lead time counts it",
        "1 item finished before it started (clock skew or bad data) is left out",
        "low sample: only 3 items",
    ]


def test_lead_time_worked_example():
    db = new_db()
    item(
        db,
        "PAY-1",
        "2026-01-01 09:00",
        [
            ("2026-01-02 10:00", "Selected"),
            ("2026-01-03 12:00", "In Progress"),
            ("2026-01-04 00:00", "Backlog"),
            ("2026-01-05 08:00", "In Progress"),
            ("2026-01-06 18:00", "Done"),
        ],
    )
    lead = run(db, "lead-time", "2026-01-01", "2026-01-08", "2026-02-01 00:00")
    cycle = run(db, "cycle-time", "2026-01-01", "2026-01-08", "2026-02-01 00:00")
    assert lead.value["p50"] == 129.0  # 5 d 9 h = 129 h = 5.375 d (5.4 d)
    assert cycle.value["p50"] == 34.0  # 5 Jan 08:00 -> 6 Jan 18:00
    assert cycle.items[0]["start"] == "2026-01-05T08:00:00Z"


# -- throughput --------------------------------------------------------------------------------------------
def test_throughput_mean_per_week_and_zero_filled_series():
    db = new_db()
    flowed(db, "PAY-1", "2026-02-02 00:00", "2026-02-02 10:00")
    flowed(db, "PAY-2", "2026-02-03 00:00", "2026-02-04 10:00")
    flowed(db, "PAY-3", "2026-02-20 00:00", "2026-02-21 10:00")  # third week
    item(db, "PAY-4", "2026-02-01 00:00", [("2026-02-05 00:00", "Done")])  # closed without flow
    flowed(db, "PAY-5", "2026-02-05 00:00", "2026-02-06 00:00", resolution="Won't Do")  # discarded
    flowed(db, "PAY-6", "2026-01-20 00:00", "2026-01-21 00:00")  # previous window
    r = run(db, "throughput", "2026-02-02", "2026-02-23", "2026-03-01 00:00")
    assert r.value == 1.0  # 3 items / 3 weeks
    assert values(r) == [2.0, 0.0, 1.0]  # the empty week is 0, not missing
    assert r.sample_size == 3
    assert r.items[0] == {
        "key": "PAY-1",
        "done": "2026-02-02T10:00:00Z",
        "url": "https://jira.example/browse/PAY-1",
    }
    # The 3 weeks before start on 12 Jan, before the items' history (its first week is that of 19 Jan,
    # PAY-6's): their figure is unknown, not PAY-6 over 3 weeks.
    assert (r.previous, r.previous_note) == (None, "no earlier data")
    assert r.notes[:2] == [
        "1 item went straight from Backlog to Done and is not in throughput",
        "1 item closed as discarded (Won't Do, Duplicate and the like) is not in throughput",
    ]


def test_throughput_over_a_window_of_partial_weeks():
    db = new_db()
    for i in range(3):
        flowed(db, f"PAY-{i}", "2026-02-02 00:00", f"2026-02-0{3 + i} 00:00")
    r = run(db, "throughput", "2026-02-01", "2026-03-03", "2026-04-01 00:00")
    assert r.value == 0.7  # 3 items / (30 days / 7) = 0.7 per week
    assert len(r.series) == 6  # weeks of 26 Jan .. 2 Mar overlap the window


def test_throughput_empty_window_is_zero_per_week():
    db = new_db()
    flowed(db, "PAY-1", "2026-01-20 00:00", "2026-01-26 00:00")  # synced: the history began before
    r = run(db, "throughput", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    assert r.value == 0.0
    assert values(r) == [0.0]


def test_throughput_weeks_start_monday_local_across_spring_dst():
    db = new_db()
    flowed(db, "PAY-1", "2026-03-08 20:00-04:00", "2026-03-08 23:30-04:00")  # Sun 23:30 EDT = Mon 03:30 UTC
    flowed(db, "PAY-2", "2026-03-08 20:00-04:00", "2026-03-09 00:30-04:00")  # Mon 00:30 EDT
    flowed(db, "PAY-3", "2026-03-01 20:00-05:00", "2026-03-01 23:30-05:00")  # Sun 1 Mar 23:30 EST: before
    flowed(db, "PAY-4", "2026-03-15 20:00-04:00", "2026-03-15 23:30-04:00")  # Sun 15 Mar 23:30 EDT: last day
    r = run(db, "throughput", "2026-03-02", "2026-03-16", "2026-04-01 00:00", timezone=NY)
    # Sunday 23:30 local belongs to the week that started the Monday before, although it is Monday in UTC.
    assert r.series == [{"week": "2026-03-02", "value": 1.0}, {"week": "2026-03-09", "value": 2.0}]
    assert r.value == 1.5  # 3 items / 2 weeks
    # The 2 weeks before 2 Mar begin before the week of PAY-3 (the history's first): unknown.
    assert (r.previous, r.previous_note) == (None, "no earlier data")
    assert r.window.start == ts("2026-03-02 05:00")  # Monday 00:00 EST
    assert r.window.end == ts("2026-03-16 04:00")  # Monday 00:00 EDT


def test_throughput_weeks_start_monday_local_across_autumn_dst():
    db = new_db()
    flowed(db, "PAY-1", "2026-11-01 00:30-04:00", "2026-11-01 01:30-04:00")  # first 01:30 (EDT)
    flowed(db, "PAY-2", "2026-11-01 20:00-05:00", "2026-11-01 23:30-05:00")  # Sun 23:30 EST = Mon 04:30 UTC
    flowed(db, "PAY-3", "2026-11-01 20:00-05:00", "2026-11-02 00:30-05:00")  # Mon 00:30 EST
    r = run(db, "throughput", "2026-10-26", "2026-11-09", "2026-12-01 00:00", timezone=NY)
    assert r.series == [{"week": "2026-10-26", "value": 2.0}, {"week": "2026-11-02", "value": 1.0}]


# -- WIP and flow load -------------------------------------------------------------------------------------
def wip_db():
    db = new_db()
    flowed(db, "PAY-A", "2026-02-01 10:00", "2026-02-03 12:00")
    flowed(db, "PAY-B", "2026-02-03 09:00", None)
    flowed(db, "PAY-C", "2026-02-04 00:00", "2026-02-06 00:00")  # both on day boundaries
    item(db, "PAY-D", "2026-02-01 00:00", [("2026-02-04 00:00", "Done")])  # closed without flow
    # moved back to backlog: with final stage dates it never was in WIP
    item(
        db,
        "PAY-E",
        "2026-02-01 00:00",
        [("2026-02-02 00:00", "In Progress"), ("2026-02-05 00:00", "Backlog")],
    )
    flowed(db, "PAY-F", "2026-02-05 10:00", "2026-02-07 10:00", resolution="Won't Do")  # discarded: was WIP
    # reopened: final dates say committed 1 Feb, not done -> WIP on every day
    item(
        db,
        "PAY-G",
        "2026-02-01 00:00",
        [
            ("2026-02-01 08:00", "In Progress"),
            ("2026-02-02 12:00", "Done"),
            ("2026-02-06 12:00", "In Progress"),
        ],
    )
    return db


def test_wip_daily_samples_average_and_current():
    r = run(wip_db(), "wip", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    # end of 2 Feb: A, G = 2 | 3 Feb: B, C (committed exactly at the day's end), G = 3 (A done 12:00)
    # 4 Feb: B, C, G = 3 | 5 Feb: B, F, G = 3 (C done exactly at the day's end) | 6 Feb: B, F, G = 3
    # 7 Feb: B, G = 2 (F done 10:00) | 8 Feb: B, G = 2  -> 18 / 7 = 2.5714
    assert [i["wip"] for i in r.items] == [2, 3, 3, 3, 3, 2, 2]
    assert r.value == 2.5714
    assert r.items[0] == {"day": "2026-02-02", "at": "2026-02-03T00:00:00Z", "wip": 2}
    assert r.sample_size == 7
    assert r.extra["current"] == 2  # B and G at the window's end
    assert [(i["key"], i["stage"]) for i in r.extra["current_items"]] == [
        ("PAY-G", "in_progress"),
        ("PAY-B", "in_progress"),
    ]
    assert r.series == [{"week": "2026-02-02", "value": 2.5714}]
    # previous week (26 Jan - 1 Feb): the items' history begins at their earliest last change (3 Feb,
    # PAY-A's done), so the week before is unknown, not the 2 / 7 the final stage dates would give.
    assert (r.previous, r.previous_note) == (None, "no earlier data")
    assert r.notes == ["1 item went straight from Backlog to Done and is not in WIP"]


def test_flow_load_is_the_window_average_of_wip():
    wip = run(wip_db(), "wip", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    load = run(wip_db(), "flow-load", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    assert load.metric == "flow-load"
    assert load.value == wip.value == 2.5714
    assert load.previous == wip.previous


def test_wip_window_in_progress_samples_today_at_now():
    db = new_db()
    flowed(db, "PAY-A", "2026-02-02 10:00", None)
    flowed(db, "PAY-B", "2026-02-03 10:00", "2026-02-05 11:00")
    r = run(db, "wip", "2026-02-02", "2026-02-09", "2026-02-05 12:00")
    # ends of 2, 3, 4 Feb: 1, 2, 2; 5 Feb sampled at now (12:00): A only = 1; later days not begun
    assert [(i["day"], i["wip"]) for i in r.items] == [
        ("2026-02-02", 1),
        ("2026-02-03", 2),
        ("2026-02-04", 2),
        ("2026-02-05", 1),
    ]
    assert r.items[-1]["at"] == "2026-02-05T12:00:00Z"
    assert r.value == 1.5  # 6 / 4
    assert r.extra["current"] == 1
    assert r.series == [{"week": "2026-02-02", "value": 1.5, "partial": True}]
    assert r.notes == ["low sample: only 4 days sampled"]


def test_wip_future_window_has_no_value():
    r = run(wip_db(), "wip", "2026-04-06", "2026-04-13", "2026-03-01 00:00")
    assert r.value is None
    assert r.sample_size == 0
    assert values(r) == [None]


def test_wip_samples_local_day_ends_across_dst():
    db = new_db()
    # committed Sat 7 Mar 12:00 EST, done Mon 9 Mar 00:30 EDT (04:30 UTC)
    flowed(db, "PAY-1", "2026-03-07 12:00-05:00", "2026-03-09 00:30-04:00")
    r = run(db, "wip", "2026-03-07", "2026-03-10", "2026-04-01 00:00", timezone=NY)
    # Sunday ends at Monday 00:00 EDT = 04:00 UTC, 23 h after Saturday's end: the item is still open then.
    assert [(i["at"], i["wip"]) for i in r.items] == [
        ("2026-03-08T05:00:00Z", 1),
        ("2026-03-09T04:00:00Z", 1),
        ("2026-03-10T04:00:00Z", 0),
    ]
    assert r.value == 0.6667  # 2 / 3


# -- aging WIP --------------------------------------------------------------------------------------------
def aging_db(done_recent: int = 5):
    db = new_db()
    for i, h in enumerate([10, 20, 30, 40, 50][:done_recent]):
        flowed(db, f"PAY-{i}", "2026-02-02 00:00", f"2026-02-0{2 + h // 24} {h % 24:02d}:00")
    flowed(db, "PAY-OLD", "2025-11-01 00:00", "2025-12-01 00:00")  # done > 90 days before: out
    flowed(db, "PAY-WD", "2026-01-01 00:00", "2026-02-01 00:00", resolution="Won't Do")  # discarded: out
    flowed(db, "PAY-O1", "2026-03-05 00:00", None)  # age 12 h
    item(
        db,
        "PAY-O2",
        "2026-03-03 00:00",
        [("2026-03-03 00:00", "In Progress"), ("2026-03-04 00:00", "In Review")],
    )
    flowed(db, "PAY-O3", "2026-03-03 16:00", None)  # age exactly 44 h: not above p85
    item(db, "PAY-BL", "2026-03-01 00:00")  # backlog: not committed
    return db


def test_aging_wip_flags_items_older_than_p85_cycle_time():
    r = run(aging_db(), "aging-wip", "2026-03-02", "2026-03-09", "2026-03-05 12:00")
    # p85 of [10, 20, 30, 40, 50] h: h = 3.4 -> 40 + 0.4 * 10 = 44 h; as of now (before the window end)
    assert r.extra == {"flagged": 1, "p85_hours": 44.0, "done_90d": 5, "as_of": "2026-03-05T12:00:00Z"}
    assert r.value == 3
    assert r.items == [
        {
            "key": "PAY-O2",
            "stage": "review",
            "status": "In Review",
            "age_hours": 60.0,
            "flagged": True,
            "url": "https://jira.example/browse/PAY-O2",
        },
        {
            "key": "PAY-O3",
            "stage": "in_progress",
            "status": "In Progress",
            "age_hours": 44.0,
            "flagged": False,
            "url": "https://jira.example/browse/PAY-O3",
        },
        {
            "key": "PAY-O1",
            "stage": "in_progress",
            "status": "In Progress",
            "age_hours": 12.0,
            "flagged": False,
            "url": "https://jira.example/browse/PAY-O1",
        },
    ]
    assert r.previous == 0  # nothing open at 2 Mar 00:00
    assert r.series == [{"week": "2026-03-02", "value": 3, "partial": True}]
    # No signal rule applies to it: the line under the figure says how many are aging, not "normal".
    assert r.signal_note == (
        "1 of 3 open items is older than usual: over 1.8 d, the cycle time within which 85% of the "
        "items finished in the last 90 days were done"
    )


def test_aging_wip_no_flags_with_fewer_than_five_done():
    r = run(aging_db(done_recent=4), "aging-wip", "2026-03-02", "2026-03-09", "2026-03-05 12:00")
    assert r.extra["flagged"] == 0
    assert r.extra["p85_hours"] is None
    assert r.extra["done_90d"] == 4
    assert not any(i["flagged"] for i in r.items)
    assert r.signal_note == (
        "no item is flagged as aging: only 4 items finished in the last 90 days, "
        "and it takes 5 to know what is usual"
    )


def test_aging_wip_of_a_past_window_is_as_of_its_end():
    db = new_db()
    flowed(db, "PAY-1", "2026-02-08 00:00", "2026-02-20 00:00")  # open on 9 Feb, done later
    r = run(db, "aging-wip", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    assert r.value == 1
    assert r.items[0]["age_hours"] == 24.0  # 9 Feb 00:00 - 8 Feb 00:00
    assert r.extra["as_of"] == "2026-02-09T00:00:00Z"


# -- flow efficiency ----------------------------------------------------------------------------------------
def efficiency_db():
    db = new_db()
    # A: committed 00:00, active 02:00-06:00, review 06:00-10:00 -> 4 / 10 = 40%
    item(
        db,
        "PAY-A",
        "2026-02-02 00:00",
        [
            ("2026-02-02 00:00", "Selected"),
            ("2026-02-02 02:00", "In Progress"),
            ("2026-02-02 06:00", "In Review"),
            ("2026-02-02 10:00", "Done"),
        ],
    )
    flowed(db, "PAY-B", "2026-02-03 00:00", "2026-02-03 05:00")  # 5 / 5 = 100%
    item(
        db,
        "PAY-C",
        "2026-02-04 00:00",
        [
            ("2026-02-04 00:00", "In Progress"),
            ("2026-02-04 02:00", "In Review"),
            ("2026-02-04 10:00", "Done"),
        ],
    )  # 2 / 10 = 20%
    flowed(db, "PAY-D", "2026-02-05 00:00", "2026-02-05 00:00")  # cycle time 0: skipped
    flowed(db, "PAY-E", "2026-02-05 00:00", "2026-02-05 09:00", resolution="Won't Do")  # discarded
    db["flags"].insert(
        {"source": "jira", "key": "PAY-B", "start": ts("2026-02-03 01:00"), "end": ts("2026-02-03 03:00")}
    )
    return db


def test_flow_efficiency_median_and_mean_of_item_ratios():
    r = run(efficiency_db(), "flow-efficiency", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    assert [(i["key"], i["efficiency"]) for i in r.items] == [
        ("PAY-A", 40.0),
        ("PAY-B", 100.0),
        ("PAY-C", 20.0),
    ]
    assert r.value == 40.0  # median(40, 100, 20)
    assert r.extra["mean"] == 53.3333  # (40 + 100 + 20) / 3
    assert r.items[0]["active_hours"] == 4.0 and r.items[0]["hours"] == 10.0
    assert r.notes[:2] == [
        "1 item finished the moment it started (zero cycle time) is not in flow efficiency",
        "1 item closed as discarded (Won't Do, Duplicate and the like) is not in flow efficiency",
    ]
    assert r.series == [{"week": "2026-02-02", "value": 40.0}]


def test_flow_efficiency_impediments_count_as_waiting_when_the_team_opts_in():
    r = run(
        efficiency_db(),
        "flow-efficiency",
        "2026-02-02",
        "2026-02-09",
        "2026-03-01 00:00",
        impediments_wait=True,
    )
    # B flagged 01:00-03:00 inside 5 h of active time: 3 / 5 = 60%
    assert [i["efficiency"] for i in r.items] == [40.0, 60.0, 20.0]
    assert r.value == 40.0
    assert r.extra["mean"] == 40.0  # (40 + 60 + 20) / 3


def blocked_db():
    """PAY-1: In Progress 2 h, Blocked (unmapped) 4 h, In Progress 2 h, Done; PAY-2 On Hold 1 h 30."""
    db = new_db()
    item(
        db,
        "PAY-1",
        "2026-02-02 00:00",
        [
            ("2026-02-02 00:00", "In Progress"),
            ("2026-02-02 02:00", "Blocked"),
            ("2026-02-02 06:00", "In Progress"),
            ("2026-02-02 08:00", "Done"),
        ],
    )
    item(
        db,
        "PAY-2",
        "2026-02-03 00:00",
        [
            ("2026-02-03 00:00", "In Progress"),
            ("2026-02-03 01:00", "On Hold"),
            ("2026-02-03 02:30", "In Progress"),
            ("2026-02-03 04:00", "Done"),
        ],
    )
    return db


def test_flow_efficiency_counts_time_in_an_unmapped_status_as_waiting_and_names_it():
    r = run(blocked_db(), "flow-efficiency", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    # PAY-1: 4 h active of 8 h = 50% (not 100%); PAY-2: 2.5 h of 4 h = 62.5%
    assert [(i["key"], i["efficiency"], i["active_hours"]) for i in r.items] == [
        ("PAY-1", 50.0, 4.0),
        ("PAY-2", 62.5, 2.5),
    ]
    assert r.items[0]["unmapped_hours"] == {"Blocked": 4.0}
    assert r.value == 56.25
    assert (
        "items spent 4.0 h in Blocked and 1.5 h in On Hold, statuses not mapped to a stage; "
        "that time counts as waiting"
    ) in r.notes


def test_flow_efficiency_unmapped_note_counts_the_window_only():
    r = run(blocked_db(), "flow-efficiency", "2026-02-03", "2026-02-10", "2026-03-01 00:00")
    assert [i["key"] for i in r.items] == ["PAY-2"]
    assert (
        "items spent 1.5 h in On Hold, a status not mapped to a stage; that time counts as waiting" in r.notes
    )


def test_flow_efficiency_time_in_an_unmapped_status_before_commitment_does_not_count():
    db = new_db()
    item(
        db,
        "PAY-1",
        "2026-02-02 00:00",
        [
            ("2026-02-02 00:00", "Blocked"),  # 6 h before commitment: outside the cycle
            ("2026-02-02 06:00", "In Progress"),  # committed
            ("2026-02-02 07:00", "Blocked"),  # 1 h inside it
            ("2026-02-02 08:00", "In Progress"),
            ("2026-02-02 10:00", "Done"),
        ],
    )
    r = run(db, "flow-efficiency", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    assert [(i["efficiency"], i["active_hours"], i["hours"]) for i in r.items] == [(75.0, 3.0, 4.0)]
    assert r.items[0]["unmapped_hours"] == {"Blocked": 1.0}
    assert (
        "items spent 1.0 h in Blocked, a status not mapped to a stage; that time counts as waiting" in r.notes
    )


def test_flow_efficiency_empty_window():
    r = run(efficiency_db(), "flow-efficiency", "2026-03-02", "2026-03-09", "2026-04-01 00:00")
    assert r.value is None
    assert r.extra["mean"] is None


# -- flow distribution --------------------------------------------------------------------------------------
def test_flow_distribution_shares_by_work_type():
    db = new_db()
    flowed(db, "PAY-1", "2026-02-02 00:00", "2026-02-02 10:00", type="Story")
    flowed(db, "PAY-2", "2026-02-02 00:00", "2026-02-03 10:00", type="Story")
    flowed(db, "PAY-3", "2026-02-02 00:00", "2026-02-04 10:00", type="Bug")
    flowed(db, "PAY-4", "2026-02-02 00:00", "2026-02-05 10:00", type="Spike")  # not mapped: unclassified
    item(db, "PAY-5", "2026-02-01 00:00", [("2026-02-05 00:00", "Done")], type="Task")  # closed without flow
    flowed(db, "PAY-6", "2026-02-02 00:00", "2026-02-06 10:00", type="Security", resolution="Won't Do")
    flowed(db, "PAY-7", "2026-02-02 00:00", None, type="Bug")  # open: not done
    r = run(db, "flow-distribution", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    # 6 items done: feature 2/6, defect 1/6, debt 1/6 (PAY-5), risk 1/6 (PAY-6), unclassified 1/6
    assert r.value == {
        "feature": 33.3333,
        "defect": 16.6667,
        "debt": 16.6667,
        "risk": 16.6667,
        "unclassified": 16.6667,
    }
    assert r.sample_size == 6
    assert r.extra["counts"] == {"feature": 2, "defect": 1, "unclassified": 1, "debt": 1, "risk": 1}
    assert r.items[3] == {"key": "PAY-5", "type": "Task", "category": "debt", "done": "2026-02-05T00:00:00Z"}
    assert r.previous is None  # nothing done the week before: no value, not zeros
    assert r.notes == [
        "1 item went straight from Backlog to Done; flow distribution counts it all the same",
        "1 item closed as discarded (Won't Do, Duplicate and the like); flow distribution counts it",
    ]
    assert r.series[0]["value"] == r.value


# -- net flow ----------------------------------------------------------------------------------------------
def test_net_flow_arrivals_minus_departures_per_week():
    db = new_db()
    flowed(db, "PAY-A", "2026-02-02 09:00", "2026-02-10 09:00")  # arrives wk1, departs wk2
    flowed(db, "PAY-B", "2026-02-03 09:00", "2026-02-11 09:00")  # arrives wk1, departs wk2
    flowed(db, "PAY-C", "2026-02-04 09:00", None)  # arrives wk1
    flowed(db, "PAY-X", "2026-01-20 09:00", "2026-02-05 09:00")  # arrived before, departs wk1
    flowed(
        db, "PAY-D", "2026-01-25 09:00", "2026-02-12 09:00", resolution="Won't Do"
    )  # discarded still departs
    item(db, "PAY-N", "2026-02-01 00:00", [("2026-02-12 00:00", "Done")])  # closed without flow: neither
    r = run(db, "net-flow", "2026-02-02", "2026-02-16", "2026-03-01 00:00")
    # week 2 Feb: 3 arrivals - 1 departure = +2; week 9 Feb: 0 - 3 = -3; mean = (2 - 3) / 2 weeks
    assert values(r) == [2.0, -3.0]
    assert r.value == -0.5
    assert r.sample_size == 7
    # X and D arrived in the 2 weeks before, but those begin before the history's first week (that
    # of 2 Feb, X's and D's last change being in it): unknown, not +2 / 2.
    assert (r.previous, r.previous_note) == (None, "no earlier data")
    assert r.notes == ["1 item went straight from Backlog to Done and is not in net flow"]
    assert r.items[0] == {"key": "PAY-A", "event": "arrival", "at": "2026-02-02T09:00:00Z"}


# -- time to value -----------------------------------------------------------------------------------------
def ttv_db():
    db = new_db()
    flowed(db, "PAY-A", "2026-02-02 00:00", "2026-02-03 00:00", created="2026-02-01 00:00")
    pr(db, 1, "2026-02-01 12:00", merged="2026-02-02 00:00", refs=["PAY-A"])
    pr(db, 2, "2026-02-02 12:00", merged="2026-02-03 00:00", refs=["PAY-A", "PAY-Z"])
    deploy(db, "d1", "2026-02-03 12:00", prs=[1])
    deploy(db, "d2", "2026-02-04 00:00", prs=[2])  # A's latest first deployment
    deploy(db, "d3", "2026-02-05 00:00", prs=[2])  # a later redeploy of PR 2 does not count
    flowed(db, "PAY-B", "2026-02-02 06:00", "2026-02-03 12:00", created="2026-02-02 00:00")  # no PR
    flowed(db, "PAY-C", "2026-02-03 00:00", "2026-02-06 00:00", created="2026-02-02 00:00")
    pr(db, 3, "2026-02-03 12:00", merged="2026-02-04 00:00", refs=["PAY-C"])  # merged, never deployed
    pr(db, 5, "2026-02-03 12:00", refs=["PAY-C"])  # open PR: not linked work
    flowed(db, "PAY-D", "2026-02-06 00:00", "2026-02-07 00:00", created="2026-02-06 00:00")
    pr(db, 4, "2026-02-06 12:00", merged="2026-02-07 00:00", refs=["PAY-D"])
    deploy(db, "d4", "2026-02-10 00:00", prs=[4])  # deployed after the window: D is next window's
    flowed(db, "PAY-E", "2026-02-02 00:00", None)  # open item with a deployed PR: not measured
    pr(db, 6, "2026-02-02 12:00", merged="2026-02-03 00:00", refs=["PAY-E"])
    deploy(db, "d5", "2026-02-03 06:00", prs=[6])
    return db


def test_time_to_value_uses_latest_first_deployment_else_done():
    r = run(ttv_db(), "time-to-value", "2026-02-02", "2026-02-09", "2026-03-01 00:00")
    # B: 2 Feb 00:00 -> done 3 Feb 12:00 = 36 h (no PR)
    # A: 1 Feb 00:00 -> d2 4 Feb 00:00 = 72 h (latest of d1, d2; d3 is a redeploy)
    # C: 2 Feb 00:00 -> done 6 Feb 00:00 = 96 h (its merged PR was never deployed)
    assert [(i["key"], i["hours"], i["basis"]) for i in r.items] == [
        ("PAY-B", 36.0, "done"),
        ("PAY-A", 72.0, "deployment"),
        ("PAY-C", 96.0, "done"),
    ]
    assert r.items[1]["end"] == "2026-02-04T00:00:00Z"
    # [36, 72, 96]: p50 = 72; p85: h = 1.7 -> 72 + 0.7 * 24 = 88.8
    assert r.value == {"p50": 72.0, "p85": 88.8}


def test_time_to_value_observation_sits_at_its_deployment():
    r = run(ttv_db(), "time-to-value", "2026-02-09", "2026-02-16", "2026-03-01 00:00")
    assert [(i["key"], i["hours"], i["basis"]) for i in r.items] == [
        ("PAY-D", 96.0, "deployment")
    ]  # 6 -> 10 Feb


def test_net_flow_signal_limits_are_not_floored_at_zero():
    db = new_db()
    n = 0

    def departures(monday: date, count: int) -> None:
        nonlocal n
        for _ in range(count):
            n += 1
            flowed(db, f"PAY-{n}", "2025-01-06 09:00", f"{(monday + timedelta(days=2)).isoformat()} 09:00")

    first = date(2025, 9, 15)  # 20 baseline weeks before the window's first week, 2 Feb 2026
    for k in range(20):
        departures(first + timedelta(weeks=k), 1 + k % 2)  # net flow -1, -2, -1, -2, ...
    departures(date(2026, 2, 2), 1)
    departures(date(2026, 2, 9), 2)
    r = run(db, "net-flow", "2026-02-02", "2026-02-16", "2026-03-01 00:00")
    # baseline: centre -1.5, mR = 1, limits -1.5 -/+ 2.66 = -4.16 .. 1.16; -1 and -2 sit inside.
    # (Floored at 0, the lower limit would flag every week as "below".)
    assert values(r) == [-1.0, -2.0]
    assert r.signal is None
    for _ in range(5):  # five items arrive in the second week
        n += 1
        flowed(db, f"PAY-{n}", "2026-02-10 09:00", None)
    r = run(db, "net-flow", "2026-02-02", "2026-02-16", "2026-03-01 00:00")
    assert values(r) == [-1.0, 3.0]  # 5 arrivals - 2 departures, above the upper limit 1.16
    assert r.signal == "higher than its normal weekly range (week of 9 Feb)"  # no better side
    assert r.signal_detail.startswith(
        "XmR chart: above the upper process limit (week of 9 Feb: 3.0); X̄ = -1.5"
    )


def test_aging_wip_stage_ignores_an_unmapped_status():
    db = new_db()
    item(
        db,
        "PAY-1",
        "2026-02-02 00:00",
        [("2026-02-02 01:00", "In Progress"), ("2026-02-03 00:00", "Blocked")],
    )
    r = run(db, "aging-wip", "2026-02-02", "2026-02-09", "2026-02-04 00:00")
    assert r.items[0]["stage"] == "in_progress"  # Blocked is unmapped: the item stays in progress
    assert r.items[0]["age_hours"] == 47.0  # 2 Feb 01:00 -> 4 Feb 00:00
    assert "Blocked is not mapped to a stage, so moves into it do not change an item's stage" in r.notes


EMPTY = {  # Jira never synced: every figure is unknown (null), counts included, never 0
    "cycle-time": None,
    "lead-time": None,
    "throughput": None,
    "wip": None,
    "aging-wip": None,
    "flow-efficiency": None,
    "flow-distribution": None,
    "flow-load": None,
    "net-flow": None,
    "time-to-value": None,
}


@pytest.mark.parametrize("metric", list(EMPTY))
def test_empty_history(metric):
    r = run(new_db(), metric, "2026-02-02", "2026-02-16", "2026-03-01 00:00")
    assert r.value == EMPTY[metric]
    assert r.items == [] or metric in ("wip", "flow-load")  # WIP lists its (zero) daily samples
    assert [p["week"] for p in r.series] == ["2026-02-02", "2026-02-09"]
    json.dumps(r.to_json())


@pytest.mark.parametrize("metric", list(EMPTY))
def test_results_are_json_ready(metric):
    db = wip_db()
    flowed(db, "PAY-Z", "2026-02-02 00:00", "2026-02-04 00:00")
    r = run(db, metric, "2026-02-02", "2026-02-16", "2026-03-01 00:00")
    text = json.dumps(r.to_json())
    assert json.loads(text)["metric"] == metric
    assert r.sample_size > 0
