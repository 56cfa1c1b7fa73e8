"""Stored figures (metrics/results.py) are never other than what recomputing gives: compared with a
fresh ``Metric.compute`` / ``metrics.org.rollups`` after a sync, a team settings change, an org change
and across a day boundary; read from the store when nothing changed (no computation at all).

Team "pay" (project PAY, repo acme/pay, service SVC, UTC) has 26 weeks of history: one item done a
day (cycle time 20 to 28 h), a PR merged and deployed every weekday, an incident a fortnight.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from builders import deploy, incident, item, new_db, pr, sprint, team, ts
from fakes.jira import FakeJira
from test_sync_engine import jira_source

from bot.cli import main
from metrics import results
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Metric
from metrics.dataset import TeamData
from metrics.digest import digest_window
from metrics.org import org_window, rollups
from metrics.store import open_db
from metrics.teams import create_team, get_team, save_team, set_org
from metrics.timeutil import Window, complete_days, dates_window, zone

NOW = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)  # a Monday
START = ts("2025-08-04 00:00")  # 26 weeks before
EVERY = sorted(CATALOGUE)


def history(
    db, project: str = "PAY", repo: str = "acme/pay", service: str = "SVC", upto: float | None = None
):
    """One item done a day, a PR merged and deployed each weekday, an incident every 14 days."""
    day, n, end = START, 0, upto or NOW.timestamp()
    while day + 86400 <= end:
        n += 1
        committed = day + 3600
        hours = 20 + (n * 7) % 9
        when = lambda h, c=committed: datetime.fromtimestamp(c + h * 3600, UTC).isoformat()  # noqa: E731
        item(
            db,
            f"{project}-{n}",
            when(-1),
            [(when(0), "Selected"), (when(2), "In Progress"), (when(hours), "Done")],
        )
        weekday = datetime.fromtimestamp(day, UTC).weekday()
        if weekday < 5:
            pr(
                db,
                n,
                when(0),
                repo=repo,
                first_commit=when(0),
                merged=when(6),
                reviews=[(when(3), "bob", "APPROVED")],
            )
            deploy(db, f"d{project}{n}", when(7), service=repo, repo=repo, prs=[n])
        if n % 14 == 0:
            incident(db, f"I-{project}-{n}", when(8), when(10), service=service)
        day += 86400


def plain(value: object) -> object:
    return json.loads(json.dumps(value))


def assert_same(cached, fresh) -> None:
    """Every field a stored figure keeps, equal as JSON (lists and tuples alike)."""
    assert (cached.metric, cached.team, cached.window) == (fresh.metric, fresh.team, fresh.window)
    for f in results.RESULT_FIELDS:
        assert plain(getattr(cached, f)) == plain(getattr(fresh, f)), (cached.metric, f)


def fresh(db, t, ids, window, now):
    data = TeamData(db, t, now)
    return [CATALOGUE[m].compute(data, window) for m in ids]


@pytest.fixture
def db():
    d = new_db()
    history(d)
    create_team(d, team(metrics=["cycle-time", "throughput", "deployment-frequency"]), who="U0")
    return d


@pytest.fixture
def no_compute():
    """``no_compute()`` makes any computation fail (what is then returned was read from the store);
    ``no_compute(False)`` lets them run again."""
    patch = pytest.MonkeyPatch()

    def refuse(self, data, window):
        raise AssertionError(f"{self.id} computed, not read from the store")

    def switch(on: bool = True):
        if not on:
            patch.undo()
            return
        patch.setattr(Metric, "compute", refuse)
        for m in CATALOGUE.values():
            if "compute" in type(m).__dict__:
                patch.setattr(type(m), "compute", refuse)

    yield switch
    patch.undo()


def window_of(now=NOW) -> Window:
    return complete_days(28, zone("UTC"), now)


# -- every metric, stored and read back -------------------------------------------------------------------
def test_every_metric_read_back_is_the_figure_compute_gives_with_no_computation(db, no_compute):
    t, w = get_team(db, "pay"), window_of()
    first = results.team_figures(db, t, EVERY, w, NOW)
    expected = fresh(db, t, EVERY, w, NOW)
    no_compute()
    again = results.team_figures(db, t, EVERY, w, NOW)
    for a, b, c in zip(first, again, expected, strict=True):
        assert_same(a, c)
        assert_same(b, c)
        assert list(b.items) == []  # the explain items are not stored (said in the docstring)
    assert any(r.signal for r in expected) or any(r.signal_note for r in expected)


def test_a_window_that_has_not_ended_is_computed_every_time_never_stored(db):
    t = get_team(db, "pay")
    running = Window(window_of().since, window_of().until + timedelta(days=1))  # holds today
    [r] = results.team_figures(db, t, ["throughput"], running, NOW)
    assert_same(r, fresh(db, t, ["throughput"], running, NOW)[0])
    assert db.execute("select count(*) from results").fetchone()[0] == 0


def test_a_read_only_database_computes_and_stores_nothing(tmp_path):
    path = tmp_path / "r.db"
    d = open_db(path)
    history(d)
    create_team(d, team(metrics=["cycle-time"]), who="U0")
    d.conn.close()
    ro = open_db(path, readonly=True)
    t = get_team(ro, "pay")
    [r] = results.team_figures(ro, t, ["cycle-time"], window_of(), NOW)
    assert_same(r, fresh(ro, t, ["cycle-time"], window_of(), NOW)[0])
    assert ro.execute("select count(*) from results").fetchone()[0] == 0


# -- what invalidates a stored figure -----------------------------------------------------------------------
def test_new_data_is_never_answered_from_the_store(db):
    t, w = get_team(db, "pay"), window_of()
    before = results.team_figures(db, t, EVERY, w, NOW)
    version = results.data_version(db)
    for k in range(5):  # five more items done in the window, in one transaction
        item(
            db,
            f"PAY-X{k}",
            "2026-01-20 09:00",
            [("2026-01-20 10:00", "Selected"), ("2026-01-27 10:00", "Done")],
        )
    assert results.data_version(db) > version
    after = results.team_figures(db, t, EVERY, w, NOW)
    for a, b in zip(after, fresh(db, t, EVERY, w, NOW), strict=True):
        assert_same(a, b)
    throughput = EVERY.index("throughput")
    assert after[throughput].value != before[throughput].value


def test_a_rolled_back_write_leaves_the_data_version_a_committed_one_bumps_it(db):
    version = results.data_version(db)
    with pytest.raises(RuntimeError), db.atomic():
        db.execute("update incidents set resolved = resolved + 1")
        raise RuntimeError("the sync failed part-way")
    assert results.data_version(db) == version
    db.execute("update sync_status set last_error = 'x'")  # no row: nothing written, nothing bumped
    assert results.data_version(db) == version
    db["sync_status"].insert({"source": "jira", "stream": "issues", "last_success": "2026-02-02T10:00:00Z"})
    assert results.data_version(db) == version + 1


def test_a_workflow_mapping_change_is_computed_anew(db):
    t, w = get_team(db, "pay"), window_of()
    before = results.team_figures(db, t, ["cycle-time", "throughput"], w, NOW)
    changed = get_team(db, "pay")
    for stage in changed.workflow:  # "In Progress" now commits the work: cycle times 2 h shorter
        if stage["stage"] == "committed":
            stage["statuses"] = ["In Progress"]
        if stage["stage"] == "in_progress":
            stage["statuses"] = ["Selected"]
    save_team(db, changed, who="U0")
    t2 = get_team(db, "pay")
    after = results.team_figures(db, t2, ["cycle-time", "throughput"], w, NOW)
    for a, b in zip(after, fresh(db, t2, ["cycle-time", "throughput"], w, NOW), strict=True):
        assert_same(a, b)
    assert after[0].value != before[0].value


def test_across_a_day_boundary_the_running_week_is_no_longer_partial(db):
    t = get_team(db, "pay")
    w = dates_window("2026-01-01", "2026-01-29", zone("UTC"))  # its last week runs to Mon 2 Feb
    sunday, monday = datetime(2026, 2, 1, 23, 0, tzinfo=UTC), datetime(2026, 2, 2, 1, 0, tzinfo=UTC)
    [a] = results.team_figures(db, t, ["throughput"], w, sunday)
    assert a.series[-1].get("partial") is True
    [b] = results.team_figures(db, t, ["throughput"], w, monday)
    assert_same(b, fresh(db, t, ["throughput"], w, monday)[0])
    assert "partial" not in b.series[-1]


def test_a_sprint_ending_during_the_day_is_counted_once_it_ended(db):
    """Sprint S1 (19 Jan – Fri 30 Jan 15:00, still open in Jira) holds seven items: its figures
    count it from 15:00 on, in the week of 26 Jan, a day after the window ended."""
    create_team(db, team(name="scrum", channel="C3", boards=["1"]), who="U0")
    t = get_team(db, "scrum")
    keys = [f"PAY-{n}" for n in range(170, 177)]
    sprint(
        db,
        "S1",
        "2026-01-19 08:00",
        "2026-01-30 15:00",
        events=[(k, "2026-01-19 07:00", "add") for k in keys],
    )
    w = dates_window("2026-01-01", "2026-01-30", zone("UTC"))
    morning, evening = ts("2026-01-30 10:00"), ts("2026-01-30 18:00")
    ids = ["sprint-completion", "sprint-scope-change"]
    [before, _] = results.team_figures(db, t, ids, w, morning)
    after = results.team_figures(db, t, ids, w, evening)
    for a, b in zip(after, fresh(db, t, ids, w, evening), strict=True):
        assert_same(a, b)
    assert before.series[-1]["value"] is None and after[0].series[-1]["value"] is not None


# -- the org roll-up ------------------------------------------------------------------------------------------
@pytest.fixture
def org_db(db):
    history(db, "WEB", "acme/web", "WEB")
    create_team(
        db,
        team(name="web", channel="C2", jira_projects=["WEB"], repos=["acme/web"], services=["WEB"]),
        who="U0",
    )
    set_org(db, "north_star", ["lead-time-for-changes", "deployment-frequency", "wip"], who="U0")
    return db


def assert_same_rollups(cached, computed) -> None:
    assert [plain(r.to_json()) for r in cached] == [plain(r.to_json()) for r in computed]
    for a, b in zip(cached, computed, strict=True):
        assert (a.verdict, a.previous_note, a.no_data_reason, a.contributors, a.poolable) == (
            b.verdict,
            b.previous_note,
            b.no_data_reason,
            b.contributors,
            b.poolable,
        )
        for x, y in zip(a.teams, b.teams, strict=True):
            assert_same(x.result, y.result)


NS = ["lead-time-for-changes", "deployment-frequency", "wip"]


def test_org_rollups_read_back_equal_rollups_with_no_computation(org_db, no_compute):
    w = org_window({}, NOW)
    first = results.org_rollups(org_db, NS, w, NOW, targets={"deployment-frequency": 4})
    computed = rollups(org_db, NS, w, NOW, targets={"deployment-frequency": 4})
    no_compute()
    again = results.org_rollups(org_db, NS, w, NOW, targets={"deployment-frequency": 4})
    assert_same_rollups(first, computed)
    assert_same_rollups(again, computed)
    assert again[1].target == 4 and again[1].on_target is True


def test_org_changes_targets_north_star_and_time_zone_are_what_recomputing_gives(org_db):
    w = org_window({}, NOW)
    results.org_rollups(org_db, NS, w, NOW, targets={"deployment-frequency": 4})
    # a target changed: judged on the stored figure, as rollups judges it
    assert_same_rollups(
        results.org_rollups(org_db, NS, w, NOW, targets={"deployment-frequency": 9}),
        rollups(org_db, NS, w, NOW, targets={"deployment-frequency": 9}),
    )
    # another North Star metric
    other = ["cycle-time", "deployment-frequency"]
    assert_same_rollups(results.org_rollups(org_db, other, w, NOW), rollups(org_db, other, w, NOW))
    # another time zone: another window
    tokyo = org_window({"timezone": "Asia/Tokyo"}, NOW)
    assert_same_rollups(results.org_rollups(org_db, NS, tokyo, NOW), rollups(org_db, NS, tokyo, NOW))


def test_a_team_change_or_new_data_reaches_the_org_figure(org_db):
    w = org_window({}, NOW)
    before = results.org_rollups(org_db, NS, w, NOW)
    web = get_team(org_db, "web")
    web.repos = ["acme/web", "acme/pay"]  # web now shares pay's repository
    save_team(org_db, web, who="U0")
    shared = results.org_rollups(org_db, NS, w, NOW)
    assert_same_rollups(shared, rollups(org_db, NS, w, NOW))
    assert shared[1].teams[1].value != before[1].teams[1].value
    deploy(org_db, "late", "2026-01-30 10:00", service="acme/web", repo="acme/web", prs=[])
    assert_same_rollups(results.org_rollups(org_db, NS, w, NOW), rollups(org_db, NS, w, NOW))


# -- warming after a sync ----------------------------------------------------------------------------------
JIRA_TEAM = """
[org]
north_star = ["throughput"]

[[team]]
name = "payments"
channel = "C1"
jira_projects = ["PAY"]
metrics = ["cycle-time", "throughput", "wip"]

[team.workflow]
backlog = ["To Do"]
in_progress = ["In Progress"]
done = ["Done"]
"""


def test_vsm_sync_stores_the_figures_the_digests_read_and_a_later_sync_is_never_answered_stale(
    tmp_path, monkeypatch, no_compute
):
    jira = FakeJira("jira-token-good")
    try:
        now = time.time()
        for n in range(1, 7):
            jira.add(f"PAY-{n}", now - 20 * 86400)
            jira.move_status(f"PAY-{n}", now - (19 - n) * 86400, "In Progress")
        for n in (1, 2, 3):
            jira.move_status(f"PAY-{n}", now - (10 - n) * 86400, "Done", resolution="Done")
        config = tmp_path / "vsm.toml"
        config.write_text(jira_source(jira.url) + JIRA_TEAM)
        monkeypatch.setenv("JIRA_TOKEN", "jira-token-good")
        path = tmp_path / "s.db"
        assert main(["sync", "--config", str(config), "--db", str(path)]) == 0
        db = open_db(path, create=False)
        at = datetime.fromtimestamp(time.time(), UTC)
        t = get_team(db, "payments")
        ids = ["throughput", "cycle-time", "wip"]
        w = digest_window(t, at)
        expected = fresh(db, t, ids, w, at)
        no_compute()  # the sync stored them: reading them computes nothing
        for a, b in zip(results.team_figures(db, t, ids, w, at), expected, strict=True):
            assert_same(a, b)
        no_compute(False)
        jira.move_status("PAY-4", now - 3 * 86400, "Done", resolution="Done")
        assert main(["sync", "--config", str(config), "--db", str(path)]) == 0
    finally:
        jira.close()
    after = results.team_figures(db, t, ids, w, at)
    for a, b in zip(after, fresh(db, t, ids, w, at), strict=True):
        assert_same(a, b)
    assert after[0].sample_size == expected[0].sample_size + 1


def test_a_failing_warm_is_logged_and_never_fails_the_sync(db, monkeypatch, caplog):
    def broken(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(results, "warm", broken)
    with caplog.at_level(logging.WARNING, logger="metrics.results"):
        results.after_sync(db, NOW)
    assert "figures not stored after the sync (RuntimeError: disk full)" in caplog.text
    assert db.execute("select count(*) from flows").fetchone()[0] > 0  # the flows were still stored


def test_a_team_whose_figures_fail_leaves_the_org_figure_to_the_others_and_nothing_stored(tmp_path, caplog):
    """bravo's stored workflow lost its statuses (a damaged row): computing its figures raises. The
    org figure pools alpha and charlie (4 distinct items in 4 weeks: 1.0/wk, not the 1.3/wk of all
    three), bravo's row says it could not be computed, the failure is logged, and the metric is not
    stored: the next reading, once bravo is repaired, pools all three."""
    from test_org_slack import break_workflow, build_org

    path = tmp_path / "org.db"
    end = datetime(2026, 11, 25, 12, tzinfo=UTC)
    build_org(path, end.date())
    good = open_db(path).execute("select settings from teams where name = 'bravo'").fetchone()[0]
    break_workflow(path)
    db = open_db(path)
    window = org_window({}, end)
    [org] = results.org_rollups(db, ["throughput"], window, end)
    assert org.value == 1.0 and org.contributors == ["alpha", "charlie"]
    bravo = next(t for t in org.teams if t.team == "bravo")
    assert bravo.value is None and "could not be computed" in bravo.result.no_data_reason
    assert "bravo's data could not be loaded: KeyError" in caplog.text
    assert db.execute("select count(*) from results where metric = 'throughput'").fetchone()[0] == 0
    db.execute("update teams set settings = ? where name = 'bravo'", [good])
    db.conn.commit()
    [org] = results.org_rollups(db, ["throughput"], window, end)
    assert org.value == 1.25 and org.contributors == ["alpha", "bravo", "charlie"]  # shown as 1.3/wk


# -- every field of a stored figure, read first -------------------------------------------------------------
DEFAULTED = ("signal_note", "limits", "signal_detail", "previous_note", "no_data_reason")


def test_each_field_read_first_on_a_figure_read_back_is_the_one_stored(db, no_compute):
    """A figure read back decodes its rest on first use: whichever field is read first, even one
    ``Result`` defaults to None (a team with no data: its no-data reason; a signal's detail), it is
    the stored one. Forty quick items in January give pay's flow metrics a signal."""
    for k in range(40):
        day = f"2026-01-{12 + k % 18:02d}"
        item(db, f"PAY-S{k}", f"{day} 08:00", [(f"{day} 09:00", "Selected"), (f"{day} 11:00", "Done")])
    create_team(
        db,
        team(name="web", channel="C2", jira_projects=["NOPE"], repos=["acme/none"], services=["X"]),
        who="U0",
    )
    w = window_of()
    for name in ("pay", "web"):
        t = get_team(db, name)
        expected = fresh(db, t, EVERY, w, NOW)
        results.team_figures(db, t, EVERY, w, NOW)  # computed and stored
        no_compute()
        for f in results.RESULT_FIELDS:
            for got, want in zip(results.team_figures(db, t, EVERY, w, NOW), expected, strict=True):
                assert isinstance(got, results.StoredResult)
                assert plain(getattr(got, f)) == plain(getattr(want, f)), (name, want.metric, f)
        no_compute(False)
        if name == "web":
            assert all(r.no_data_reason for r in expected)
    pay = fresh(db, get_team(db, "pay"), EVERY, w, NOW)
    web = fresh(db, get_team(db, "web"), EVERY, w, NOW)
    for f in DEFAULTED:  # each defaulted field holds something in some figure: the test can fail
        assert any(getattr(r, f) is not None for r in pay + web), f


def test_a_field_set_on_a_figure_read_back_stands_when_the_rest_is_decoded(db):
    t, w = get_team(db, "pay"), window_of()
    results.team_figures(db, t, ["cycle-time"], w, NOW)
    [r] = results.team_figures(db, t, ["cycle-time"], w, NOW)
    r.notes = ["set by a surface"]
    assert r.notes == ["set by a surface"] and r.series == plain(
        fresh(db, t, ["cycle-time"], w, NOW)[0].series
    )


# -- what does not throw a stored figure away ----------------------------------------------------------------
def test_a_syncs_bookkeeping_leaves_the_data_version_what_figures_read_from_sync_status_bumps_it(db):
    def bumped(sql: str, params=()) -> bool:
        before = results.data_version(db)
        db.execute(sql, params)
        return results.data_version(db) != before

    assert bumped("insert into sync_status (source, stream, updated) values ('jira', 'issues', 'a')")
    upsert = (
        "insert into sync_status (source, stream, cursor, updated) values ('jira', 'issues', '{}', 'b') "
        "on conflict(source, stream) do update set cursor = excluded.cursor, updated = excluded.updated"
    )
    assert not bumped(upsert)  # a checkpoint: the cursor and the time
    assert not bumped("update sync_status set last_error = 'x', updated = 'c'")  # a failed sync
    assert not bumped("update sync_status set last_success = '', rows_changed = 3")  # still never synced
    assert bumped("update sync_status set last_success = '2026-02-01T10:00:00Z'")  # its first success
    assert not bumped("update sync_status set last_success = '2026-02-02T10:00:00Z', rows_changed = 0")
    assert not bumped(
        "insert into sync_status (source, stream, updated) values ('jira', 'issues', 'd') "
        "on conflict(source, stream) do nothing"
    )
    assert bumped("update sync_status set stream = 'sprints'")
    assert bumped("update sync_status set last_success = null")
    assert bumped("delete from sync_status")


def stored_rows(db) -> dict:
    return {
        (s, m): (st, c) for s, m, st, c in db.execute("select scope, metric, stamp, computed from results")
    }


def test_a_snooze_a_target_or_nudge_settings_keep_the_teams_and_the_orgs_stored_figures(org_db, no_compute):
    w = org_window({}, NOW)
    computed = results.org_rollups(org_db, NS, w, NOW)
    results.team_figures(org_db, get_team(org_db, "web"), ["cycle-time"], w, NOW)
    before = stored_rows(org_db)
    web = get_team(org_db, "web")
    web.snooze_until = "2026-03-01T00:00:00+00:00"
    web.targets = {"deployment-frequency": 3.0}
    web.nudges, web.nudge_repeat_hours, web.stale_pr_hours = ["target"], 24.0, 12.0
    web.metrics = ["throughput"]
    web.digest = {"day": "fri", "time": "16:00", "period_days": 28}
    save_team(org_db, web, who="U0")
    no_compute()
    again = results.org_rollups(org_db, NS, w, NOW)
    [cycle] = results.team_figures(org_db, get_team(org_db, "web"), ["cycle-time"], w, NOW)
    assert stored_rows(org_db) == before  # nothing computed again, nothing stored again
    assert [plain(r.value) for r in again] == [plain(r.value) for r in computed]
    assert again[1].teams[1].target == 3.0  # the new target, judged on the stored figure
    assert cycle.value is not None and cycle.no_data_reason is None


def test_a_workflow_or_scope_change_is_computed_anew_for_the_team_and_the_org(org_db):
    w = org_window({}, NOW)
    results.org_rollups(org_db, NS, w, NOW)
    first = stored_rows(org_db)
    web = get_team(org_db, "web")
    web.services = ["WEB", "SVC"]  # a scope change
    save_team(org_db, web, who="U0")
    assert_same_rollups(results.org_rollups(org_db, NS, w, NOW), rollups(org_db, NS, w, NOW))
    second = stored_rows(org_db)
    for m in NS:
        assert second[("web", m)][0] != first[("web", m)][0] and second[("", m)][0] != first[("", m)][0]
        assert second[("pay", m)][0] == first[("pay", m)][0]  # pay's own settings did not change
    web = get_team(org_db, "web")
    for stage in web.workflow:  # a workflow change: "In Progress" now commits the work
        if stage["stage"] == "committed":
            stage["statuses"] = ["In Progress"]
        if stage["stage"] == "in_progress":
            stage["statuses"] = ["Selected"]
    save_team(org_db, web, who="U0")
    assert_same_rollups(results.org_rollups(org_db, NS, w, NOW), rollups(org_db, NS, w, NOW))
    third = stored_rows(org_db)
    for m in NS:
        assert third[("web", m)][0] != second[("web", m)][0] and third[("", m)][0] != second[("", m)][0]


# -- one computation of the org's figures at a time ----------------------------------------------------------
def test_concurrent_readers_of_the_same_missing_org_figures_wait_for_one_computation(tmp_path, monkeypatch):
    """Thread A computes the org figures and is held inside the computation until thread B has
    looked at the store (found them missing) and gone on: B waits for A and reads what A stored."""
    import threading

    path = tmp_path / "flight.db"
    d = open_db(path)
    history(d)
    create_team(d, team(metrics=["cycle-time"]), who="U0")
    d.conn.close()
    w = org_window({}, NOW)
    computing, b_looked = threading.Event(), threading.Event()
    calls: list[str] = []
    real_rollups, real_stored = results.rollups, results._stored

    def held_rollups(*a, **k):
        calls.append(threading.current_thread().name)
        computing.set()
        assert b_looked.wait(30), "B never read the store"
        return real_rollups(*a, **k)

    def watched_stored(*a, **k):
        out = real_stored(*a, **k)
        if threading.current_thread().name == "B":
            b_looked.set()
        return out

    monkeypatch.setattr(results, "rollups", held_rollups)
    monkeypatch.setattr(results, "_stored", watched_stored)
    got: dict[str, list] = {}
    errors: list[BaseException] = []

    def read(name: str) -> None:
        try:
            db = open_db(path)
            got[name] = [plain(r.to_json()) for r in results.org_rollups(db, NS, w, NOW)]
            db.conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    a = threading.Thread(target=read, args=("A",), name="A")
    a.start()
    assert computing.wait(30)
    b = threading.Thread(target=read, args=("B",), name="B")
    b.start()
    a.join(60)
    b.join(60)
    assert not errors and not a.is_alive() and not b.is_alive()
    assert calls == ["A"]  # B did not compute: it read what A stored
    assert got["A"] == got["B"]
    fresh_db = open_db(path)
    assert got["B"] == [plain(r.to_json()) for r in rollups(fresh_db, NS, w, NOW)]


# -- the readers waiting for a computation that stored nothing take its result ------------------------------
def broken_bravo_org(tmp_path) -> tuple:
    """``build_org``'s three teams, bravo's stored workflow damaged (computing its figures raises, its
    row is FAILED, the throughput figure is not stored): the database's path, the window and its end."""
    from test_org_slack import break_workflow, build_org

    path = tmp_path / "org.db"
    end = datetime(2026, 11, 25, 12, tzinfo=UTC)
    build_org(path, end.date())
    break_workflow(path)
    return path, org_window({}, end), end


def fly(monkeypatch, path, window, end, *, targets: dict[str, dict], fail: Exception | None = None) -> tuple:
    """Readers named by ``targets`` (each with its org targets) read the throughput roll-up on ``path``
    at once: the first (A) is held inside its computation until every other has joined the flight
    (looked at the store, found nothing, and is waiting for A). ``fail``: A's computation raises it.
    Returns the threads that computed, what each got (its roll-ups, or the error it raised)."""
    import threading

    first, *others = targets
    computing, all_waiting = threading.Event(), threading.Event()
    calls: list[str] = []
    joined: list[str] = []
    real_rollups, real_seat = results.rollups, results._Seat

    def held_rollups(*a, **k):
        calls.append(threading.current_thread().name)
        if threading.current_thread().name == first:
            computing.set()
            assert all_waiting.wait(30), "the other readers never joined the flight"
        if fail is not None:
            raise fail
        return real_rollups(*a, **k)

    class WatchedSeat(real_seat):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            joined.append(threading.current_thread().name)
            if set(others) <= set(joined):
                all_waiting.set()

    monkeypatch.setattr(results, "rollups", held_rollups)
    monkeypatch.setattr(results, "_Seat", WatchedSeat)
    got: dict[str, object] = {}

    def read(name: str) -> None:
        db = open_db(path)
        try:
            got[name] = results.org_rollups(db, ["throughput"], window, end, targets=targets[name])
        except Exception as exc:  # noqa: BLE001 - what the reader got, checked by the test
            got[name] = exc
        finally:
            db.conn.close()

    threads = {name: threading.Thread(target=read, args=(name,), name=name) for name in targets}
    threads[first].start()
    assert computing.wait(30)
    for name in others:
        threads[name].start()
    for t in threads.values():
        t.join(60)
    assert not any(t.is_alive() for t in threads.values())
    monkeypatch.setattr(results, "_Seat", real_seat)
    return calls, got


def test_readers_waiting_for_a_roll_up_a_team_failed_take_the_first_ones_and_compute_nothing(
    tmp_path, monkeypatch
):
    """bravo's figures fail, so the throughput figure is never stored: the three readers waiting while A
    computed take A's roll-up (one computation for four, not four in turn), each judged on its own org
    target; nothing is kept once they have it, and a reader after them computes again (a failure is
    tried again next time)."""
    path, window, end = broken_bravo_org(tmp_path)
    targets = {"A": {}, "B": {"throughput": 2.0}, "C": {}, "D": {"throughput": 0.5}}
    calls, got = fly(monkeypatch, path, window, end, targets=targets)
    assert calls == ["A"]
    assert all(isinstance(r, list) for r in got.values()), got
    for name, [org] in got.items():
        assert org.value == 1.0 and org.contributors == ["alpha", "charlie"], name
        bravo = next(t for t in org.teams if t.team == "bravo")
        assert bravo.value is None and "could not be computed" in bravo.result.no_data_reason
        assert [t.target for t in org.teams] == [0.5, 5.0, None]  # each team's own target, as stored
    assert [got[n][0].to_json() for n in "AC"] == [got["A"][0].to_json()] * 2
    assert (got["B"][0].target, got["B"][0].on_target) == (2.0, False)
    assert (got["D"][0].target, got["D"][0].on_target) == (0.5, True)
    assert got["A"][0].target is None and got["B"][0].teams is not got["A"][0].teams  # each its own copy
    assert results._flights == {}  # the flight and what it landed left with its last reader
    db = open_db(path)
    assert db.execute("select count(*) from results where metric = 'throughput'").fetchone()[0] == 0
    [later] = results.org_rollups(db, ["throughput"], window, end)
    assert calls == ["A", "MainThread"] and later.value == 1.0  # computed again, after the flight


def test_readers_waiting_for_a_computation_that_raised_get_its_error_without_computing(tmp_path, monkeypatch):
    """A's computation raises: the three readers waiting for it raise the same error (its type and
    message) rather than each computing again in turn; a reader after them computes again."""
    path, window, end = broken_bravo_org(tmp_path)
    targets = {"A": {}, "B": {}, "C": {}, "D": {}}
    calls, got = fly(monkeypatch, path, window, end, targets=targets, fail=OSError(5, "disk gone"))
    assert calls == ["A"]
    assert all(isinstance(e, OSError) and (e.errno, e.strerror) == (5, "disk gone") for e in got.values()), (
        got
    )
    assert all(got[n].__cause__ is got["A"] for n in "BCD")  # the holder's error, each raising its own copy
    assert results._flights == {}
    db = open_db(path)
    with pytest.raises(OSError, match="disk gone"):
        results.org_rollups(db, ["throughput"], window, end)
    assert calls == ["A", "MainThread"]  # tried again, after the flight
