"""Issue 14: the figures, org roll-ups, stored results, experiments and nudges of one workspace are
never another's (metrics/results.py, org.py, org_digest.py, digest.py, experiments.py, nudges.py).

On one real database: workspace T1 has "pay" (project PAY, repo acme/pay, service SVC: 26 weeks of
history, ``test_results.history``) and "web" (project WEB: three items done in the window, a
deployment of acme/web); workspace T2 has its own "pay" on WEB's scope, with other targets. The data
is the deployment's: T2's "pay" reads WEB's rows exactly as T1's "web" does. Window: 5 Jan – 2 Feb
2026 (UTC), as of Monday 2 Feb.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import test_results
from builders import deploy, item, team, ts
from test_cli_workspaces import GRID, install
from test_nudges import kinds, stale_db
from test_results import assert_same, fresh, history, plain, window_of

from metrics import experiments as ex
from metrics import results
from metrics.catalogue.base import FAILED
from metrics.digest import build_digest
from metrics.errors import VsmError
from metrics.nudges import find_nudges, recently_nudged, record_nudged
from metrics.org import north_star_rollups, northstar, rollups
from metrics.org_digest import build_org_digest
from metrics.store import open_db
from metrics.teams import create_team, get_team, set_org, settings_log
from metrics.workspace import SINGLE

no_compute = test_results.no_compute  # the fixture: a figure computed, not read, is refused

T1, T2 = "T0AAA1", "T0BBB2"
NOW = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)
IDS = ["cycle-time", "throughput", "deployment-frequency"]
MINE = [*IDS, "pr-cycle-time"]
WEB = dict(jira_projects=["WEB"], repos=["acme/web"], services=["WEB"])


def build(db) -> None:
    history(db)
    for n, (done, deployed) in enumerate(
        (("2026-01-08 10:00", "2026-01-08 12:00"), ("2026-01-15 10:00", None), ("2026-01-22 10:00", None)),
        start=1,
    ):
        item(db, f"WEB-{n}", "2026-01-05 09:00", [("2026-01-06 09:00", "Selected"), (done, "Done")])
        if deployed:
            deploy(db, f"w{n}", deployed, service="acme/web", repo="acme/web")
    create_team(db, team(metrics=MINE, targets={"throughput": 5.0}), who="U1", ws=T1)
    create_team(db, team(name="web", channel="C3", metrics=MINE, **WEB), who="U1", ws=T1)
    create_team(db, team(channel="C2", metrics=MINE, targets={"throughput": 1.0}, **WEB), who="U2", ws=T2)


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "workspaces.db"
    db = open_db(p)
    build(db)
    db.conn.close()
    return p


@pytest.fixture
def db(path):
    d = open_db(path)
    yield d
    d.conn.close()


def stored(db, scope: str) -> dict[str, set[str]]:
    """Workspace -> the metrics stored for ``scope`` (a team's name, or "" for the org's figures)."""
    out: dict[str, set[str]] = {}
    for ws, metric in db.execute("select workspace, metric from results where scope = ?", [scope]):
        out.setdefault(ws, set()).add(metric)
    return out


def computed(found: list) -> bool:
    """Whether every figure was computed while ``no_compute`` refused it (a refused computation is a
    figure that could not be computed, as any failing one is: ``metrics.org.figure``)."""
    return all(r.no_data_reason == FAILED for r in found)


# -- figures ----------------------------------------------------------------------------------------------
def test_two_teams_of_one_name_have_their_own_figures_stored_and_read_back_apart(db, no_compute):
    w = window_of()
    one, two = get_team(db, "pay", ws=T1), get_team(db, "pay", ws=T2)
    expected = {T1: fresh(db, one, IDS, w, NOW), T2: fresh(db, two, IDS, w, NOW)}
    got = {T1: results.team_figures(db, one, IDS, w, NOW, ws=T1)}
    no_compute()
    assert computed(results.team_figures(db, two, IDS, w, NOW, ws=T2))  # T1's "pay" is not T2's
    no_compute(False)
    got[T2] = results.team_figures(db, two, IDS, w, NOW, ws=T2)
    assert stored(db, "pay") == {T1: set(IDS), T2: set(IDS)}  # neither replaced the other's
    no_compute()
    for ws in (T1, T2):
        again = results.team_figures(db, get_team(db, "pay", ws=ws), IDS, w, NOW, ws=ws)
        for first, back, want in zip(got[ws], again, expected[ws], strict=True):
            assert_same(first, want)
            assert_same(back, want)
    # Throughput: PAY has an item done a day, WEB three in four weeks.
    assert (expected[T1][1].sample_size, expected[T2][1].sample_size) == (28, 3)


def test_a_figure_stored_in_one_workspace_is_not_read_in_another_even_with_the_same_settings(db, no_compute):
    """Single mode's "pay" has exactly T1's settings (the same stamp): it still computes its own."""
    create_team(db, get_team(db, "pay", ws=T1), who="U0")
    w = window_of()
    results.team_figures(db, get_team(db, "pay", ws=T1), IDS, w, NOW, ws=T1)
    no_compute()
    assert computed(results.team_figures(db, get_team(db, "pay"), IDS, w, NOW))
    with pytest.raises(ValueError, match="used for workspace T0BBB2"):  # a reading is one workspace's
        results.figures_of(db, [], w, NOW, results.Reading(db, w, NOW, ws=T1), ws=T2)


# -- the org --------------------------------------------------------------------------------------------------
def test_an_org_roll_up_pools_only_its_own_workspaces_teams_and_stores_apart(db):
    w = window_of()
    one = results.org_rollups(db, ["throughput"], w, NOW, ws=T1)[0]
    two = results.org_rollups(db, ["throughput"], w, NOW, ws=T2)[0]
    assert [t.team for t in one.teams] == ["pay", "web"]
    assert [t.team for t in two.teams] == ["pay"]
    # T1 pools PAY's 28 items and WEB's 3; T2's one team pools to exactly its own figure.
    assert (one.sample_size, two.sample_size) == (31, 3)
    [own] = fresh(db, get_team(db, "pay", ws=T2), ["throughput"], w, NOW)
    assert (two.value, two.teams[0].value) == (own.value, own.value)
    assert [(t.team, t.target) for t in one.teams] == [("pay", 5.0), ("web", None)]
    assert two.teams[0].target == 1.0
    for ws, got in ((T1, one), (T2, two)):
        [direct] = rollups(db, ["throughput"], w, NOW, ws=ws)
        assert plain(got.to_json()) == plain(direct.to_json())
    assert stored(db, results.ORG) == {T1: {"throughput"}, T2: {"throughput"}}
    assert results.org_rollups(db, ["throughput"], w, NOW)[0].teams == []  # single mode has none


def test_each_workspaces_org_settings_choose_its_north_star_zone_and_digest(db):
    set_org(db, "north_star", ["throughput"], who="U1", ws=T1)
    set_org(db, "north_star", ["deployment-frequency", "throughput"], who="U2", ws=T2)
    set_org(db, "timezone", "Europe/London", who="U2", ws=T2)
    _w1, tz1, r1 = north_star_rollups(db, NOW, compute=results.org_rollups, ws=T1)
    w2, tz2, r2 = north_star_rollups(db, NOW, compute=results.org_rollups, ws=T2)
    assert (tz1, [r.metric.id for r in r1]) == ("UTC", ["throughput"])
    assert (tz2, [r.metric.id for r in r2]) == ("Europe/London", ["deployment-frequency", "throughput"])
    assert w2.tz.key == "Europe/London"
    assert [t.team for r in r2 for t in r.teams] == ["pay", "pay"]
    assert northstar(db, NOW)["metrics"] == []  # single mode: no North Star set, no team
    digests = {ws: build_org_digest(db, NOW, ws=ws) for ws in (T1, T2)}
    assert [r.metric.id for r in digests[T1].north_star] == ["throughput"]
    assert [t.team for t in digests[T1].north_star[0].teams] == ["pay", "web"]
    assert [r.metric.id for r in digests[T2].north_star] == ["deployment-frequency", "throughput"]
    assert {m.team for m in digests[T2].moved} <= {"pay"}
    # A team's digest reads its own workspace's North Star.
    team_digest = build_digest(db, get_team(db, "pay", ws=T2), NOW, ws=T2)
    assert [f.metric.id for f in team_digest.north_star] == ["deployment-frequency", "throughput"]
    assert [f.metric.id for f in team_digest.determinants] == ["cycle-time", "pr-cycle-time"]


def test_org_computations_of_two_workspaces_never_wait_for_each_other(path, monkeypatch):
    """T1's roll-up is held inside its computation until T2's has begun: were the two on one flight,
    T2 would wait for T1's lock and T1 would give up waiting (the assertion fails)."""
    w = window_of()
    began = {T1: threading.Event(), T2: threading.Event()}
    real = results.rollups

    def held(*a, ws, **k):
        began[ws].set()
        if ws == T1:
            assert began[T2].wait(20), "T2's computation waited for T1's"
        return real(*a, ws=ws, **k)

    monkeypatch.setattr(results, "rollups", held)
    got: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def read(ws: str) -> None:
        try:
            db = open_db(path)
            got[ws] = [t.team for t in results.org_rollups(db, ["throughput"], w, NOW, ws=ws)[0].teams]
            db.conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    first = threading.Thread(target=read, args=(T1,))
    first.start()
    assert began[T1].wait(20)
    second = threading.Thread(target=read, args=(T2,))
    second.start()
    first.join(60)
    second.join(60)
    assert not errors and not first.is_alive() and not second.is_alive()
    assert got == {T1: ["pay", "web"], T2: ["pay"]}


# -- experiments ------------------------------------------------------------------------------------------------
def test_an_experiment_is_listed_stopped_and_concluded_only_in_its_own_workspace(db):
    start = NOW.timestamp()
    mine = ex.start(db, "pay", "pr-cycle-time", "pair on every review", 4, "U1", start, ws=T1)
    assert mine.workspace == T1 and ex.get(db, mine.id, ws=T1).workspace == T1
    assert [e.id for e in ex.running(db, "pay", ws=T1)] == [mine.id]
    assert ex.experiments(db, "pay", ws=T2) == [] and ex.running(db, "pay", ws=T2) == []
    with pytest.raises(VsmError, match=f"pay has no experiment #{mine.id}"):
        ex.stop(db, mine.id, "pay", "U9", start + 3 * 86400, ws=T2)
    with pytest.raises(VsmError, match=f"pay has no experiment #{mine.id}"):
        ex.stop(db, mine.id, "pay", "U9", start + 3 * 86400)  # single mode's neither
    assert ex.get(db, mine.id, ws=T1).running
    with pytest.raises(VsmError, match="is not one of workspace T0BBB2's"):
        ex.progress(db, mine, start + 86400, ws=T2)
    # One running experiment per team and metric within a workspace, not across them.
    theirs = ex.start(db, "pay", "pr-cycle-time", "smaller pull requests", 4, "U2", start, ws=T2)
    with pytest.raises(ex.Refused, match=f"already runs experiment #{mine.id}"):
        ex.start(db, "pay", "pr-cycle-time", "again", 4, "U1", start + 60, ws=T1)
    later = NOW + timedelta(days=1)
    assert [
        p.experiment.id for p in build_digest(db, get_team(db, "pay", ws=T2), later, ws=T2).experiments
    ] == [theirs.id]
    # T2 stops its own; the verdict job (every workspace's) concludes T1's at its end.
    stopped = ex.stop(db, theirs.id, "pay", "U2", start + 3 * 86400, ws=T2)
    assert (stopped.state, stopped.workspace) == ("stopped", T2)
    assert [e.id for e in ex.due(db, mine.ends)] == [mine.id]
    ex.conclude(db, ex.due(db, mine.ends)[0], mine.ends + 3600)
    until = mine.ends + 7200
    assert [e.id for e in ex.concluded_between(db, start, until, ws=T1)] == [mine.id]
    assert [e.id for e in ex.concluded_between(db, start, until, ws=T2)] == [theirs.id]
    assert ex.concluded_between(db, start, until) == []
    assert [e.id for e in ex.concluded_for(db, "pay", start, until, ws=T2)] == [theirs.id]
    next_day = datetime.fromtimestamp(until, UTC) + timedelta(days=1)  # the org digest's days are complete
    assert [e.id for e in build_org_digest(db, next_day, ws=T1).concluded] == [mine.id]
    # Each start and verdict is in its own workspace's settings log.
    log = {ws: [(r["who"], r["what"]) for r in settings_log(db, "pay", ws=ws)][1:] for ws in (T1, T2)}
    assert [who for who, _what in log[T1]] == ["U1", ex.BOT]
    assert log[T1][0][1].startswith(f"started experiment #{mine.id}")
    assert [who for who, _what in log[T2]] == ["U2", "U2"]
    assert log[T2][1][1].startswith(f"stopped experiment #{theirs.id} on PR cycle time")
    assert settings_log(db, "pay") == []


# -- nudges ---------------------------------------------------------------------------------------------------
def test_what_one_workspace_was_nudged_about_is_not_remembered_for_another():
    db = stale_db()
    at = datetime.fromtimestamp(ts("2026-01-10 12:00"), UTC)
    t = team(nudges=["stale-prs"], nudge_repeat_hours=72)
    [nudge] = find_nudges(db, t, at, ws=T1)
    record_nudged(db, t, nudge, at.timestamp(), ws=T1)
    assert db.execute("select workspace, team, subject from nudge_log").fetchall() == [
        (T1, "pay", "acme/pay#1")
    ]
    assert recently_nudged(db, t, "stale-prs", at.timestamp(), ws=T1) == {"acme/pay#1"}
    assert find_nudges(db, t, at, ws=T1) == []
    assert recently_nudged(db, t, "stale-prs", at.timestamp(), ws=T2) == set()
    assert kinds(find_nudges(db, t, at, ws=T2)) == {"stale-prs": ["acme/pay#1"]}
    assert kinds(find_nudges(db, t, at)) == {"stale-prs": ["acme/pay#1"]}


# -- after a sync ---------------------------------------------------------------------------------------------
def test_a_sync_warms_every_workspaces_figures_and_single_modes_stay_where_they_were(path, db, no_compute):
    create_team(db, team(metrics=IDS), who="U0")  # single mode's "pay"
    set_org(db, "north_star", ["throughput"], who="U0")
    set_org(db, "north_star", ["throughput"], who="U1", ws=T1)
    set_org(db, "north_star", ["deployment-frequency"], who="U2", ws=T2)
    install(path, team_id=T1)
    install(path, team_id=T2)
    assert results.workspaces(db) == [SINGLE, T1, T2]
    assert results.after_sync(db, NOW) > 0  # the flows of every workspace's teams replayed
    assert stored(db, "pay") == {
        SINGLE: {"throughput", "cycle-time", "deployment-frequency"},
        T1: {"throughput", "cycle-time", "deployment-frequency", "pr-cycle-time"},
        T2: {"deployment-frequency", "cycle-time", "throughput", "pr-cycle-time"},
    }
    assert stored(db, "web") == {T1: {"throughput", "cycle-time", "deployment-frequency", "pr-cycle-time"}}
    assert stored(db, results.ORG) == {
        SINGLE: {"throughput"},
        T1: {"throughput"},
        T2: {"deployment-frequency"},
    }
    no_compute()  # every workspace's digests now read what the sync stored
    for ws in (SINGLE, T1, T2):
        org = build_org_digest(db, NOW, ws=ws)
        assert org.north_star[0].teams
    t = get_team(db, "pay")
    assert [r.value for r in results.team_figures(db, t, IDS, window_of(), NOW)] == [
        r.value for r in results.team_figures(db, t, IDS, window_of(), NOW, ws=SINGLE)
    ]


def test_a_sync_warms_single_mode_and_installed_workspaces_only(path, db):
    """T2 was uninstalled (its teams wait for a reinstall or `vsm forget-workspace`): nobody reads its
    figures, so no sync computes them. Single mode is warmed with no installation (SLACK_BOT_TOKEN), and
    an org-wide Grid install, keyed by its enterprise, as any installed workspace."""
    create_team(db, team(metrics=IDS), who="U0")
    create_team(db, team(channel="C7", metrics=IDS), who="U3", ws=GRID)
    install(path, team_id=T1)
    install(path, team_id=None, enterprise_id=GRID, org_wide=True)
    assert results.workspaces(db) == [SINGLE, GRID, T1]
    done = results.warm(db, NOW)
    assert (done["workspaces"], done["teams"], done["failed"]) == (3, 4, 0)
    assert set(stored(db, "pay")) == {SINGLE, GRID, T1}
    assert stored(db, "web") == {T1: set(MINE)}


def test_one_workspace_whose_figures_fail_holds_up_no_other_workspaces(path, db, caplog):
    """T1's org settings row is damaged (not JSON): warming it raises. The failure is logged with the
    workspace, counted, and the workspaces after it (T2) are still warmed; T1's figures are left to their
    first reader."""
    for ws in (T1, T2):
        install(path, team_id=ws)
    set_org(db, "north_star", ["throughput"], who="U1", ws=T1)
    db.execute("update org set value = '{damaged' where workspace = ?", [T1])
    db.conn.commit()
    with caplog.at_level(logging.ERROR, logger="metrics.results"):
        done = results.warm(db, NOW)
    assert (done["workspaces"], done["failed"], done["teams"]) == (1, 1, 1)
    assert f"figures of workspace {T1} not stored: JSONDecodeError" in caplog.text
    assert stored(db, "pay") == {T2: set(MINE)}
    assert stored(db, "web") == {}
