"""The sample history: deterministic, complete, realistic enough for the demo to show a real signal."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from metrics import stats
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import baseline_window
from metrics.dataset import TeamData
from metrics.normalise import NORMALISED_TABLES
from metrics.sample import SAMPLE_ORG, SAMPLE_SOURCES, build_sample, sample_teams
from metrics.teams import list_teams, seed_from_config
from metrics.timeutil import WEEK, days_ending_today, parse_instant
from tests.builders import new_db

END = date(2026, 4, 13)  # 26 weeks back is 2025-10-13: both DST changes of London and New York inside
CUTOFF = datetime(2026, 4, 13, tzinfo=UTC).timestamp()
# The ids of docs/metrics.md's tables (the catalogue is written elsewhere; the settings must name these).
METRIC_IDS = {
    "cycle-time",
    "lead-time",
    "throughput",
    "wip",
    "aging-wip",
    "flow-efficiency",
    "flow-distribution",
    "flow-load",
    "net-flow",
    "time-to-value",
    "forecast",
    "deployment-frequency",
    "lead-time-for-changes",
    "change-failure-rate",
    "time-to-restore",
    "rework-rate",
    "sprint-completion",
    "sprint-scope-change",
    "sprint-carry-over",
    "pr-pickup-time",
    "pr-review-time",
    "pr-cycle-time",
    "pr-size",
    "merged-without-review",
}
DATA_TABLES = ("raw", *NORMALISED_TABLES)


def dump(db) -> dict[str, list[str]]:
    return {t: sorted(json.dumps(r, sort_keys=True) for r in db[t].rows) for t in DATA_TABLES}


@pytest.fixture(scope="module")
def db():
    db = new_db()
    build_sample(db, END)
    return db


def one(db, sql: str, params=()):
    return db.execute(sql, params).fetchone()[0]


def test_same_seed_and_end_give_identical_content(db):
    again = new_db()
    build_sample(again, END)
    assert dump(again) == dump(db)


def test_another_seed_gives_another_history(db):
    other = new_db()
    build_sample(other, END, seed=7)
    assert dump(other)["work_items"] != dump(db)["work_items"]


def test_every_table_is_filled(db):
    counts = {t: db[t].count for t in DATA_TABLES}
    assert all(n > 0 for n in counts.values()), counts


def test_three_teams_with_different_zones_and_workflows():
    teams = sample_teams()
    assert [t.name for t in teams] == ["payments", "mobile", "platform"]
    assert len({t.timezone for t in teams}) == 3
    assert len({json.dumps(t.workflow) for t in teams}) == 3
    kinds = {t.name: [s["kind"] for s in t.workflow] for t in teams}
    assert "committed" not in kinds["platform"]  # Kanban without a committed stage
    assert kinds["mobile"].count("waiting") == 2  # code review and the QA queue
    assert [t.boards for t in teams] == [["1"], ["2"], []]
    for t in teams:
        t.validate(METRIC_IDS)
        assert t.digest["period_days"] == 28
        assert set(t.targets) <= set(t.metrics) | METRIC_IDS
    assert SAMPLE_ORG["north_star"] == ["lead-time-for-changes", "deployment-frequency"]


def test_sample_teams_seed_cleanly():
    db = new_db()
    assert seed_from_config(db, sample_teams(), SAMPLE_ORG) == []
    assert [t.name for t in list_teams(db)] == ["mobile", "payments", "platform"]


def test_each_team_has_its_own_data(db):
    for t in sample_teams():
        n = one(
            db,
            f"select count(*) from work_items where project in ({','.join('?' * len(t.jira_projects))})",
            t.jira_projects,
        )
        assert 300 <= n <= 600, (t.name, n)
        for repo in t.repos:
            assert (
                one(db, "select count(*) from pull_requests where repo = ? and merged is not null", [repo])
                > 20
            )
            assert (
                one(db, "select count(*) from deployments where service = ? and production = 1", [repo]) > 10
            )
        assert one(db, "select count(*) from incidents where service in (?, ?)", t.services) > 0


def test_history_is_what_a_26_week_sync_would_store_and_nothing_lies_in_the_future(db):
    start = CUTOFF - 26 * WEEK
    issue_updates = [
        parse_instant(r[0]) for r in db.execute("select updated_at from raw where kind = 'issue'")
    ]
    assert start <= min(issue_updates) < start + WEEK
    assert start <= one(db, "select min(updated) from pull_requests") < start + WEEK
    assert start <= one(db, "select min(started) from deployments") < start + WEEK
    assert start <= one(db, "select min(created) from incidents") < start + 4 * WEEK
    # Items already open at the start come along (older keys), so the first weeks are not empty.
    assert one(db, "select count(*) from work_items where created < ?", [start]) > 10
    assert (
        one(db, "select count(*) from pull_requests where merged between ? and ?", [start, start + WEEK]) > 10
    )
    latest = [
        one(db, "select max(max(created), max(coalesce(resolved, 0)), max(updated)) from work_items"),
        one(db, "select max(at) from transitions"),
        one(db, "select max(max(created), max(coalesce(merged, 0)), max(updated)) from pull_requests"),
        one(db, "select max(submitted) from reviews"),
        one(db, "select max(finished) from deployments"),
        one(db, "select max(max(created), max(coalesce(resolved, 0))) from incidents"),
        one(db, "select max(start) from sprints"),
    ]
    assert max(latest) < CUTOFF


def test_flows_cover_the_edge_cases(db):
    assert one(db, "select count(*) from work_items where resolution = 'Won''t Do'") > 10
    assert one(db, "select count(*) from work_items where status = 'Backlog' or status = 'Open'") > 50
    # back-moves: review -> first active status
    assert (
        one(
            db,
            "select count(*) from status_changes where from_status = 'In Review' and to_status = 'In Progress'",
        )
        > 5
    )
    # reopened: left a done status
    assert one(db, "select count(*) from status_changes where from_status in ('Done', 'Released')") > 5
    # skipped committed stage in a Scrum team
    assert (
        one(
            db,
            "select count(*) from status_changes where from_status = 'Backlog' and to_status = 'In Progress' and project = 'PAY'",
        )
        > 0
    )
    # closed without flow: straight from the backlog to done
    assert (
        one(
            db,
            "select count(*) from status_changes where from_status in ('Backlog', 'Open') and to_status in ('Done', 'Closed')",
        )
        > 20
    )
    assert (
        one(db, "select count(*) from status_changes where to_status in ('On Hold', 'Blocked')") > 10
    )  # unmapped
    assert one(db, "select count(*) from flags") > 10


def test_plat_519_blocked_detour_counts_as_waiting():
    """Issue 9 item 6, as reported: built as of 3 Dec 2026, PLAT-519 went In Progress 19 Nov 03:34:15
    -> Blocked (unmapped) 07:52:56 -> In Progress 23 Nov 04:29:27 -> Peer Review 24 Nov 04:07:08 ->
    Done 06:39:04. Carrying In Progress through Blocked made it 97.9% efficient; the rule says
    (4:18:41 + 23:37:41) / 123:04:49 = 22.7%."""
    db = new_db()
    build_sample(db, date(2026, 12, 3))
    platform = next(t for t in sample_teams() if t.name == "platform")
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    window = days_ending_today(90, platform.tz, now)
    result = CATALOGUE["flow-efficiency"].compute(TeamData(db, platform, now), window)
    plat_519 = next(i for i in result.items if i["key"] == "PLAT-519")
    assert (plat_519["hours"], plat_519["active_hours"]) == (123.0803, 27.9394)
    assert round(plat_519["efficiency"], 1) == 22.7
    assert plat_519["unmapped_hours"] == {"Blocked": 92.6086}
    assert any(n.startswith("items spent 28.7 d in Blocked, a status not mapped") for n in result.notes)


def test_sprints_change_scope_after_start(db):
    def after_start(change: str) -> int:
        return one(
            db,
            "select count(*) from sprint_events e join sprints s on s.source = e.source and s.id = e.sprint_id "
            "where e.change = ? and e.at > s.start and (s.complete is null or e.at < s.complete)",
            [change],
        )

    assert after_start("add") > 10 and after_start("remove") > 3
    assert one(db, "select count(distinct board) from sprints") == 2
    assert one(db, "select count(*) from sprints where state = 'active'") == 2
    assert one(db, "select count(*) from sprints where state = 'future'") == 2
    carried = "select count(*) from (select key from sprint_events where change = 'add' group by key having count(*) > 1)"
    assert one(db, carried) > 10


def test_pull_requests_cover_review_cases(db):
    assert one(db, "select count(*) from pull_requests where title = '<!channel> & <@U1> fix'") == 1
    assert one(db, "select count(*) from pull_requests where author_bot = 1") > 50
    assert one(db, "select count(*) from pull_requests where ready is not null") > 50  # drafts made ready
    assert one(db, "select count(*) from pull_requests where draft = 1") > 0
    assert one(db, "select count(*) from pull_requests where merged is null and closed is not null") > 0
    assert one(db, "select count(*) from pull_requests where title like 'Revert %'") > 0
    assert one(db, "select count(*) from pull_requests where title like 'Hotfix:%' and refs like '%\"Q%'") > 0
    assert one(db, "select count(*) from pull_requests where refs like '%PAY-%'") > 100
    states = {r[0] for r in db.execute("select distinct state from reviews")}
    assert states == {"APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"}
    assert one(db, "select count(*) from reviews where reviewer_bot = 1") > 50
    self_reviews = "select count(*) from reviews v join pull_requests p using (source, repo, number) where v.reviewer = p.author"
    assert one(db, self_reviews) > 10
    assert one(db, "select count(*) from reviews where submitted is null") == one(
        db, "select count(*) from reviews where state = 'PENDING'"
    )


def test_deployments_and_incidents(db):
    assert (
        one(db, "select count(*) from deployments where production = 1 and status in ('failure', 'error')")
        > 10
    )
    assert one(db, "select count(*) from deployments where production = 0") > 50
    # re-runs: one pipeline run with several deployment records
    assert (
        one(
            db, "select count(*) from (select run from deployments group by service, run having count(*) > 1)"
        )
        > 5
    )
    # redeploys: an already shipped sha deployed again by a new run (its compare is "identical")
    redeploys = (
        "select count(*) from (select sha from deployments where production = 1 and status = 'success' "
        "group by service, sha having count(distinct run) > 1)"
    )
    assert one(db, redeploys) > 0
    linked = "select count(distinct repo || number) from deployment_changes"
    merged = "select count(*) from pull_requests where merged is not null"
    assert one(db, linked) > 0.8 * one(db, merged)
    assert one(db, "select count(*) from incidents where resolved is null") > 0
    assert one(db, "select count(*) from incidents where resolved is not null") > 30


def test_payments_reviews_slow_down_recently(db):
    """The shift the demo shows: pickup time of the last 28 days against the 20 weeks before."""
    team = sample_teams()[0]
    data = TeamData(db, team, CUTOFF)
    window = days_ending_today(28, data.tz, datetime.fromtimestamp(CUTOFF - 1, UTC))
    base = baseline_window(window)
    recent, before = [], []
    for pr in data.pull_requests(base.start):
        if pr.reviews:
            first = pr.reviews[0]["submitted"]
            if window.contains(first):
                recent.append(first - pr.ready_at)
            elif base.contains(first):
                before.append(first - pr.ready_at)
    assert len(recent) >= 10 and len(before) >= 10
    assert stats.median(recent) > 1.5 * stats.median(before)
    assert stats.mann_whitney_p(recent, before) < 0.05


def test_sources_name_every_tool():
    assert {name: opts["kind"] for name, opts in SAMPLE_SOURCES.items()} == {
        "jira": "jira",
        "github": "github",
        "pagerduty": "pagerduty",
    }
