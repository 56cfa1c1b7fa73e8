"""Smoke test of the benchmark at a tiny scale: the builder writes what it promises and the timing
loop reports one row per metric. No timing assertions: figures depend on the machine."""

from __future__ import annotations

import importlib.util
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import CUSTOM, Metric, Result
from metrics.errors import VsmError
from metrics.store import open_db

BENCH = Path(__file__).resolve().parent.parent / "bench"
END = date(2026, 3, 2)
SMALL = dict(items=2000, teams=5, prs=400, deployments=100, end=END)


def _load(name: str):
    """bench/ is not a package: load its scripts by path."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_db = _load("build_db")
metrics_bench = _load("metrics_bench")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.db"
    return path, build_db.build(path, **SMALL)


def count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_row_counts(built):
    path, params = built
    assert params["reused"] is False
    assert count(path, "select count(*) from work_items") == 2000
    assert count(path, "select count(*) from pull_requests") == 400
    assert count(path, "select count(*) from deployments") == 100
    assert count(path, "select count(*) from incidents") == 10  # default: deployments // 10 = 100 // 10
    assert count(path, "select count(*) from teams") == 5
    # 27 two-week sprints per scrum team (starts every 14 days over 364 days: offsets 0..26), and
    # teams 0 and 3 of 5 plan in sprints (every third team): 2 * 27 = 54.
    assert count(path, "select count(*) from sprints") == 54
    assert params["rows"]["work_items"] == 2000
    assert params["rows"]["transitions"] == count(path, "select count(*) from transitions")


def test_about_six_transitions_per_item(built):
    path, _ = built
    per_item = count(path, "select count(*) from transitions") / 2000
    assert 5.0 <= per_item <= 7.0


def test_every_team_has_its_own_project_repo_and_service(built):
    path, _ = built
    db = open_db(path, create=False)
    team = metrics_bench.pick_team(db)
    assert (team.name, team.jira_projects, team.repos, team.services, team.boards) == (
        "team-001",
        ["T001"],
        ["acme/team-001"],
        ["PSV001"],
        ["1001"],
    )
    assert [s["stage"] for s in team.workflow] == ["backlog", "committed", "in_progress", "review", "done"]
    # 2000 items / 5 teams = 400 items in the first team's project.
    assert count(path, "select count(*) from work_items where project = 'T001'") == 400


def test_deployment_changes_are_merged_prs_shipped_once_by_successful_production_runs(built):
    path, _ = built
    unmerged = count(
        path,
        "select count(*) from deployment_changes c join pull_requests p "
        "on p.repo = c.repo and p.number = c.number where p.merged is null",
    )
    wrong_deploy = count(
        path,
        "select count(*) from deployment_changes c join deployments d on d.id = c.deployment_id "
        "where d.production = 0 or d.status != 'success'",
    )
    twice = count(
        path,
        "select count(*) - count(distinct repo || '#' || number) from deployment_changes",
    )
    assert (unmerged, wrong_deploy, twice) == (0, 0, 0)
    assert count(path, "select count(*) from deployment_changes") > 0


def test_nothing_happens_after_now(built):
    path, params = built
    now = params["now"]
    later = count(
        path,
        f"select (select count(*) from transitions where at >= {now})"
        f" + (select count(*) from pull_requests where max(created, coalesce(merged, 0)) >= {now})"
        f" + (select count(*) from deployments where finished >= {now})",
    )
    assert later == 0


def test_same_parameters_reuse_the_file(built):
    path, params = built
    again = build_db.build(path, **SMALL)
    assert again["reused"] is True
    assert again["built_at"] == params["built_at"]


def test_the_same_seed_builds_the_same_rows(tmp_path, built):
    path, _ = built
    other = tmp_path / "other.db"
    build_db.build(other, **SMALL)
    digest = "select group_concat(key || status || updated, ',') from (select * from work_items order by key)"
    assert count(other, digest) == count(path, digest)


def test_changed_parameters_rebuild(tmp_path):
    path = tmp_path / "b.db"
    build_db.build(path, items=100, teams=2, prs=10, deployments=10, end=END)
    again = build_db.build(path, items=200, teams=2, prs=10, deployments=10, end=END)
    assert again["reused"] is False
    assert count(path, "select count(*) from work_items") == 200


def test_refuses_to_overwrite_a_database_that_is_not_a_bench(tmp_path):
    path = tmp_path / "vsm.db"
    open_db(path).conn.close()
    with pytest.raises(VsmError, match="not a bench database"):
        build_db.build(path, items=10, teams=1, prs=1, deployments=1, end=END)
    assert path.exists()


def test_timing_returns_one_row_per_catalogue_metric(built):
    path, params = built
    db = open_db(path, create=False)
    team = metrics_bench.pick_team(db)
    rows = metrics_bench.time_metrics(db, team, params["now"], repeat=1)
    assert [r["metric"] for r in rows] == list(CATALOGUE)
    for r in rows:
        assert "error" in r or {"p50_ms", "p95_ms", "max_ms", "pass"} <= set(r)


class _Fine(Metric):
    id, kind = "fine", CUSTOM

    def compute(self, data, window):
        return Result(self.id, data.team.name, window, 1, "items", 1, None, [])


class _Broken(Metric):
    id, kind = "broken", CUSTOM

    def compute(self, data, window):
        raise ValueError("not yet")


def test_a_metric_that_raises_is_a_failing_row_and_the_others_are_still_timed(built):
    path, params = built
    db = open_db(path, create=False)
    team = metrics_bench.pick_team(db)
    catalogue = {"broken": _Broken(), "fine": _Fine()}
    rows = metrics_bench.time_metrics(db, team, params["now"], repeat=3, catalogue=catalogue)
    assert rows[0] == {"metric": "broken", "error": "ValueError: not yet", "pass": False}
    assert rows[1]["metric"] == "fine" and rows[1]["pass"] is True
    assert rows[1]["p50_ms"] <= rows[1]["p95_ms"] <= rows[1]["max_ms"]
    digest = metrics_bench.time_digest(
        db, team, params["now"], repeat=2, catalogue=catalogue, skip={"broken"}
    )
    assert digest["metrics"] == 1
    ok, misses = metrics_bench.verdict({"metrics": rows, "peak_mb": 301.0})
    assert not ok
    assert misses == ["broken: raised ValueError: not yet", "peak memory 301 MB > 300 MB"]


def test_timing_phase_reports_the_team_window_and_memory(built):
    path, _ = built
    out = metrics_bench.timing_phase(path, None, 1)
    assert out["team"] == "team-001"
    # 90 local days ending 2026-03-02 (Europe/London): 2025-12-03 to 2026-03-02 inclusive.
    assert out["window"] == "2025-12-03 – 2026-03-02"
    assert len(out["metrics"]) == len(CATALOGUE)
    assert out["peak_mb"] > 0


def test_the_http_bench_drives_vsm_serve_http_with_idle_connections_held():
    """`make bench-http` at a tiny scale: the server it starts answers every signed command while the
    idle connections stay open (a bench that answered none would print FAIL, not raise)."""
    r = _load("http_bench").run(idle=2, requests_n=4, clients=2)
    assert (r["count"], r["failed"], r["warm_up"], r["open_at_end"]) == (4, [], "acknowledged", 2)
