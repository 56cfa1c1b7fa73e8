"""The sample history: deterministic, complete, realistic enough for the demo to show a real signal."""

from __future__ import annotations

import dataclasses
import io
import json
from contextlib import redirect_stdout
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import metrics.sample.delivery
from bot.cli import main
from metrics import experiments as ex
from metrics import stats
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import baseline_window
from metrics.dataset import TeamData
from metrics.digest import digest_window
from metrics.normalise import NORMALISED_TABLES
from metrics.org import org_window
from metrics.sample import (
    SAMPLE_EXPERIMENTS,
    SAMPLE_ORG,
    SAMPLE_SOURCES,
    build_sample,
    sample_teams,
    seed_sample,
    simulate,
)
from metrics.teams import check_org, get_org, get_team, list_teams, seed_from_config, settings_log
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


# -- the sample's improvement experiments (issue 13: `make demo` shows a running and a concluded one) ----
DEMO_NOW = "2026-11-25T15:00:00Z"  # tests/test_cli.py's pinned clock


@pytest.fixture(scope="module")
def seeded():
    """The sample ending before END, seeded as `vsm demo` seeds it: teams, org, experiments."""
    db = new_db()
    build_sample(db, END)
    return db, seed_sample(db, END)


def test_one_experiment_ran_its_course_and_one_is_running(seeded):
    db, (concluded, running) = seeded
    assert [(e.team, e.metric, e.state) for e in (concluded, running)] == [
        ("mobile", "pr-review-time", "concluded"),
        ("payments", "pr-pickup-time", "running"),
    ]
    # Over before the history's end, and judged at its end over all of it, as the verdict job does.
    assert concluded.ends < CUTOFF
    assert concluded.concluded_at == concluded.measured_until == concluded.ends
    assert not concluded.stopped_early
    # Started in the last few weeks, ends after the sample's "now": nothing left due.
    assert CUTOFF - 3 * WEEK < running.started < CUTOFF < running.ends
    assert running.verdict is None and ex.due(db, CUTOFF) == []
    assert [e.id for e in ex.experiments(db, "mobile")] == [concluded.id]
    assert [e.id for e in ex.running(db, "payments")] == [running.id]


def test_the_verdict_is_what_the_test_gives_on_the_sample_data(seeded):
    """Recomputed here: the windows by hand (the 28 local days before the start, and the 28 from
    it), the PR review times from the catalogue, Mann–Whitney from metrics.stats."""
    db, (exp, _) = seeded
    tz = ZoneInfo("America/New_York")
    start = datetime.fromtimestamp(exp.started, tz)
    assert (start.weekday(), start.hour, start.minute) == (0, 10, 0)  # a Monday 10:00 in New York
    assert exp.ends == (start + timedelta(days=28)).timestamp()  # wall-clock days, across the DST change
    since = (start - timedelta(days=28)).timestamp()
    metric = CATALOGUE["pr-review-time"]
    obs, _ = metric.observations(TeamData(db, get_team(db, "mobile"), exp.ends), since, exp.ends)
    before = [o.value for o in obs if since <= o.at < exp.started]
    during = [o.value for o in obs if exp.started <= o.at < exp.ends]
    p = stats.mann_whitney_p(during, before)
    assert min(len(before), len(during)) >= stats.MIN_SIDE
    assert p < stats.ALPHA and stats.median(during) < stats.median(before)  # significant, and lower is better
    assert exp.verdict == ex.IMPROVED
    assert exp.result["test"] == {
        "name": ex.MANN_WHITNEY,
        "p": round(p, 6),
        "n_before": len(before),
        "n_during": len(during),
        "alpha": stats.ALPHA,
    }
    assert [r["metric"] for r in exp.north_star] == SAMPLE_ORG["north_star"]  # beside it, as context


def test_without_the_change_in_the_data_the_same_experiment_is_no_improvement(monkeypatch):
    """The verdict is the data's, not the sample's say: the same experiment on the history without
    its change (reviews as far from the merge as before the start) is not judged improved."""
    unchanged = tuple(dataclasses.replace(t, review_to_merge=1.0) for t in SAMPLE_EXPERIMENTS)
    monkeypatch.setattr(metrics.sample.delivery, "SAMPLE_EXPERIMENTS", unchanged)
    db = new_db()
    build_sample(db, END)
    concluded, _ = seed_sample(db, END)
    assert (concluded.state, concluded.verdict) == ("concluded", ex.NO_CHANGE)


def test_the_change_moves_only_mobiles_reviews_after_its_start(monkeypatch):
    """The change draws nothing from the simulation's generator: without it every payload is the
    same except the reviews of mobile's PRs merged after the experiment started."""
    with_change = {(s, k, i): (u, p) for s, k, i, u, p in simulate(END).raw_rows()}
    monkeypatch.setattr(metrics.sample.delivery, "SAMPLE_EXPERIMENTS", ())
    without = {(s, k, i): (u, p) for s, k, i, u, p in simulate(END).raw_rows()}
    assert with_change.keys() == without.keys()
    changed = [k for k in with_change if with_change[k] != without[k]]
    assert {(s, k) for s, k, _ in changed} == {("github", "pull_reviews")}
    assert {i.split("#")[0] for _, _, i in changed} <= {"acme/mobile-app", "acme/mobile-backend"}
    started = SAMPLE_EXPERIMENTS[0].started(int(CUTOFF))
    merged = {
        f"{p['base']['repo']['full_name']}#{p['number']}": parse_instant(p["merged_at"])
        for (_, kind, _), (_, p) in with_change.items()
        if kind == "pull" and p.get("merged_at")
    }
    assert len(changed) > 20 and all(merged[i] >= started for _, _, i in changed)


@pytest.mark.parametrize("offset", range(7))  # every weekday the history can end on
def test_the_conclusion_falls_in_its_digest_window_and_the_running_one_runs_on(offset):
    """Whatever day the demo runs and at whatever hour: the concluded experiment's verdict lies in
    mobile's digest window and the org digest's, and the running one started before the day and
    ends after it."""
    cutoff = int(CUTOFF) + offset * 86400
    mobile = next(t for t in sample_teams() if t.name == "mobile")
    concluded, running = SAMPLE_EXPERIMENTS
    ends = ex.end_of(concluded.started(cutoff), concluded.weeks, mobile.timezone)
    for hour in range(24):
        now = datetime.fromtimestamp(cutoff + hour * 3600, UTC)
        assert digest_window(mobile, now).contains(ends)
        assert org_window(SAMPLE_ORG, now).contains(ends)
    started = running.started(cutoff)
    payments = next(t for t in sample_teams() if t.name == "payments")
    assert (
        cutoff - 3 * WEEK < started and ex.end_of(started, running.weeks, payments.timezone) > cutoff + 86400
    )


def test_every_start_and_the_verdict_are_in_the_settings_log(seeded):
    db, (concluded, running) = seeded
    rows = [r for t in ("mobile", "payments") for r in settings_log(db, t) if "experiment" in r["change"]]
    said = [(r["team"], r["who"], r["what"]) for r in rows]
    assert said == [
        (
            "mobile",
            "U0SAMPLEMOB",
            f"started experiment #{concluded.id} on PR review time ({concluded.change}) for 4 weeks",
        ),
        (
            "mobile",
            ex.BOT,
            f"experiment #{concluded.id} on PR review time ({concluded.change}) ended: improved",
        ),
        (
            "payments",
            "U0SAMPLEPAY",
            f"started experiment #{running.id} on PR pickup time ({running.change}) for 6 weeks",
        ),
    ]


def test_two_seeded_builds_are_equal(seeded):
    """The data, the experiments and the settings; only the audit columns differ, which record when
    a row was written (the wall clock, as every audit row does)."""
    db, _ = seeded
    again = new_db()
    build_sample(again, END)
    seed_sample(again, END)
    assert dump(again) == dump(db)
    for sql in (
        "select * from experiments order by id",
        "select name, channel, timezone, settings from teams order by name",
        "select * from org order by key",
        "select team, who, what, change from settings_log order by id",
    ):
        assert list(again.query(sql)) == list(db.query(sql)), sql


def test_the_org_settings_are_the_ones_interface_shows(seeded):
    db, _ = seeded
    for key, value in SAMPLE_ORG.items():
        check_org(key, value)
    org = get_org(db)
    assert (org["channel"], org["timezone"]) == ("C0SAMPLEORG", "Europe/London")
    assert org["digest"] == {"day": "mon", "time": "08:00", "period_days": 28}
    assert set(org["targets"]) == set(org["north_star"])
    assert org["channel"] not in {t.channel for t in sample_teams()}  # a leadership channel, no team's


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`vsm demo` through the command line's entry point, with the clock pinned; then `run` runs
    another `vsm` command on the database it built."""
    cwd = tmp_path_factory.mktemp("demo")
    path = cwd / "demo.db"

    def run(*args: str) -> str:
        out = io.StringIO()
        with pytest.MonkeyPatch.context() as mp, redirect_stdout(out):
            mp.chdir(cwd)
            mp.setenv("VSM_NOW", DEMO_NOW)
            mp.delenv("VSM_CONFIG", raising=False)
            assert main(list(args)) == 0
        return out.getvalue()

    return path, run, run("demo", "--db", str(path))


def digest_section(output: str, team: str) -> str:
    return output.split(f"══ {team} · value-stream digest")[1].split("══ ")[0]


def test_the_demo_shows_the_concluded_and_the_running_experiment(demo):
    path, _, out = demo
    concluded, running = SAMPLE_EXPERIMENTS
    mobile = [line for line in digest_section(out, "mobile").splitlines() if concluded.change in line]
    assert len(mobile) == 1 and "PR review time" in mobile[0] and ex.IMPROVED in mobile[0]
    payments = [line for line in digest_section(out, "payments").splitlines() if running.change in line]
    assert len(payments) == 1 and "PR pickup time" in payments[0] and "week 3 of 6" in payments[0]
    assert concluded.change not in digest_section(out, "payments") + digest_section(out, "platform")
    hints = out.split("Explore it further:")[1]
    assert f"vsm northstar --db {path}" in hints
    assert f"vsm experiments --team mobile --db {path}   # its improvement experiments (concluded)" in hints
    assert f"vsm experiments --team payments --db {path}   # its improvement experiments (running)" in hints


def test_vsm_experiments_on_the_demo_database(demo):
    path, run, _ = demo
    concluded, running = SAMPLE_EXPERIMENTS
    text = run("experiments", "--team", "mobile", "--db", str(path))
    lines = text.splitlines()
    assert lines[0] == "mobile: 1 experiment, newest first"
    assert lines[2] == "#1 PR review time: improved"
    assert lines[3] == f"  Tried: {concluded.change}"
    assert lines[4] == "  4 weeks from Mon 19 Oct 2026 10:00 EDT; ran its course"
    assert lines[5].startswith("  During: p50 ") and lines[5].endswith(
        "PRs), Mon 19 Oct 2026 10:00 EDT to Mon 16 Nov 2026 10:00 EST"
    )
    assert lines[6].endswith("PRs), Mon 21 Sep 2026 10:00 EDT to Mon 19 Oct 2026 10:00 EDT")
    assert lines[7] == "  PR review time moved the better way, and the test says the change is real."
    assert lines[8].startswith("  Mann–Whitney U test, two-sided, α = 0.05: p < 0.001; ")
    assert lines[9] == "  mobile's North Star figures over the same windows:"
    assert [line.split(":")[0] for line in lines[10:12]] == [
        "    Lead time for changes",
        "    Deployment frequency",
    ]
    assert lines[12:] == [
        "  The North Star over the same two windows, for context: not the experiment's effect."
    ]
    as_json = json.loads(run("experiments", "--team", "mobile", "--db", str(path), "--json"))
    assert [(e["state"], e["verdict"], e["started"]) for e in as_json] == [
        ("concluded", "improved", "2026-10-19T14:00:00Z")
    ]
    text = run("experiments", "--team", "payments", "--db", str(path))
    assert text.splitlines()[2:6] == [
        "#2 PR pickup time: running until Mon 21 Dec 2026 09:30 GMT",
        f"  Trying: {running.change}",
        "  Week 3 of 6, from Mon 9 Nov 2026 09:30 GMT",
        text.splitlines()[5],
    ]
    assert (
        text.splitlines()[5].startswith("  So far: p50 ")
        and " PRs); the same length of time before it: p50 " in text
    )
    assert "platform: no experiments yet" in run("experiments", "--team", "platform", "--db", str(path))


def test_vsm_northstar_on_the_demo_database_shows_the_sample_org(demo):
    path, run, _ = demo
    text = run("northstar", "--db", str(path))
    assert text.splitlines()[0].startswith("North Star · 2026-10-28 – 2026-11-24 (Europe/London) · ")
    lead, frequency = (line for line in text.splitlines() if line.startswith("  ") and line[2] != " ")
    # The org's figure with its change, the signal rules' verdict and the sample org's targets.
    assert lead.startswith("  Lead time for changes: p50 ") and "org target: off target (≤ 7.0 d)" in lead
    assert (
        frequency.startswith("  Deployment frequency: ") and "org target: on target (≥ 20.0/wk)" in frequency
    )
    assert "previous period" in lead or "↑" in lead or "↓" in lead or "no change" in lead
    assert all(f"    {t.name}: " in text for t in sample_teams())
